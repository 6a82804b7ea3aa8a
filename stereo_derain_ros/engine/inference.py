"""DerainEngine: numpy stereo pairs in, derained numpy pairs out, on whichever device is asked.

This is the only module that chooses torch devices and precisions. Every CUDA-specific step
(autocast, channels_last, pinned staging buffers, non-blocking copies, cache release after an
out-of-memory error) sits behind an `if self._cuda` branch, so the CPU path stays plain torch.
"""

from collections.abc import Sequence
import logging

import numpy as np
import torch
from torch import nn

from stereo_derain_ros.engine.checkpoint import build_model_from_checkpoint
from stereo_derain_ros.engine.config import DEFAULT_MODEL, EngineConfig, tile_shape
from stereo_derain_ros.engine.devices import resolve_device
from stereo_derain_ros.engine.errors import EngineError
from stereo_derain_ros.engine.layout import (
    describe_pair,
    from_model_tensor,
    host_array,
    host_tensor,
    ImageLayout,
    pad_to_multiple,
    to_model_tensor,
)
from stereo_derain_ros.engine.precision import autocast, AUTOCAST_DTYPES
from stereo_derain_ros.engine.receptive_field import PROBE_SIZE, receptive_radius
from stereo_derain_ros.engine.shared_pooling import global_pools
from stereo_derain_ros.engine.tiling import round_up, tile_stride, tiled_forward
from stereo_derain_ros.engine.weights import require_packaged_weights
from stereo_derain_ros.models import build_model, model_config, model_name

LOGGER = logging.getLogger(__name__)


def resolve_precision(spec: str, device: torch.device) -> str:
    """Pick fp32 on CPU and fp16 autocast for auto on CUDA (every CUDA GPU runs it fast)."""
    if device.type != 'cuda':
        if spec in AUTOCAST_DTYPES:
            LOGGER.warning('precision %s applies to CUDA only; running fp32 on %s', spec, device)
        return 'fp32'
    return 'fp16' if spec == 'auto' else spec


class DerainEngine:
    """Derain rectified stereo pairs with one model on one device.

    Construction builds the model (from a checkpoint, the packaged weights, or untrained when
    allowed), moves it to the device and runs a warm-up pass, so the first real frame is not slow.
    Pass `model` to wrap a model already in memory (e.g. one just trained) instead.
    """

    def __init__(self, config: EngineConfig | None = None, *,
                 model: nn.Module | None = None) -> None:
        self.config = config = config or EngineConfig()
        if model is not None and config.weights is not None:
            raise ValueError('give either a model or config.weights, not both')
        if model is not None:
            self._model, self.weights_source = model, 'in-memory model'
        else:
            self._model, self.weights_source = _load_model(config)
        self._model.eval()
        self.model_name = model_name(self._model)
        if config.max_disparity is not None:
            self._model.set_max_disparity(config.max_disparity)
        self.max_disparity = _band_of(self._model, config.max_disparity)
        self.pad_multiple = int(getattr(self._model, 'pad_multiple', 1))
        self._margin = config.tile_margin
        self._pools = global_pools(self._model)
        self._tile = None if config.tile is None else self._checked_tile(config.tile)
        self._staging: dict[str, torch.Tensor] = {}
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self._move_to(resolve_device(config.device))
        if config.tile is not None and self.max_disparity is None:
            LOGGER.warning('tiling without max_disparity: matches farther apart than a tile '
                           'cannot be seen')
        if config.warmup_shape is not None:
            self._warm_up(tuple(config.warmup_shape))

    @property
    def model(self) -> nn.Module:
        return self._model

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def tile(self) -> tuple[int, int] | None:
        """Return the tile (height, width) in use, or None when whole images are processed."""
        return self._tile

    def derain(self, left: np.ndarray, right: np.ndarray,
               channel_order: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Derain one pair; the outputs have the inputs' shape, dtype and channel order.

        `channel_order` is 'rgb', 'bgr' or 'mono'; None means mono for H×W or H×W×1 images and
        rgb for H×W×3. The two views must have the same shape and dtype.
        """
        lefts, rights = self.derain_batch([left], [right], channel_order)
        return lefts[0], rights[0]

    def derain_batch(
            self, lefts: Sequence[np.ndarray], rights: Sequence[np.ndarray],
            channel_order: str | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Derain equal-size pairs in one model call (for bag processing); see `derain`."""
        if len(lefts) != len(rights):
            raise ValueError(f'got {len(lefts)} left images but {len(rights)} right images')
        if not lefts:
            return [], []
        layout = describe_pair(lefts[0], rights[0], channel_order)
        for index, (left, right) in enumerate(zip(lefts, rights)):
            if describe_pair(left, right, channel_order) != layout:
                raise ValueError(
                    f'pair {index} is {left.shape} {left.dtype} but pair 0 is {layout.shape} '
                    f'{layout.dtype}; a batch needs equal-size pairs')
        # One pair (the node's case) is viewed as a batch of one, not copied by np.stack.
        stacked_left, stacked_right = ((lefts[0][None], rights[0][None]) if len(lefts) == 1
                                       else (np.stack(lefts), np.stack(rights)))
        while True:
            try:
                out_left, out_right = self._derain_arrays(stacked_left, stacked_right, layout)
                break
            except torch.OutOfMemoryError as error:
                if not self.config.auto_fallback:
                    raise
                if self._cuda:
                    torch.cuda.empty_cache()
                step = self.fall_back()
                LOGGER.error('out of memory on %s x %s images (%s); %s and retrying',
                             layout.height, layout.width, str(error).splitlines()[0], step)
        return list(out_left), list(out_right)

    def fall_back(self) -> str:
        """Take the next step to use less memory: tiling first, then the CPU; say what was done.

        Raises EngineError when already tiling on the CPU.
        """
        if self._tile is None:
            self._tile = self._checked_tile(self.config.fallback_tile)
            return f'switched to tiles of {self._tile[0]}x{self._tile[1]} px'
        if self._cuda:
            self._move_to(torch.device('cpu'))
            return 'moved the model to the CPU'
        raise EngineError('out of memory while tiling on the CPU; nothing left to fall back to '
                          '(use a smaller tile)')

    def _derain_arrays(self, lefts: np.ndarray, rights: np.ndarray,
                       layout: ImageLayout) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            left = to_model_tensor(self._upload('left', lefts), layout)
            right = to_model_tensor(self._upload('right', rights), layout)
            outputs = dict(zip(('left', 'right'), self._run(left, right)))
            left_out, right_out = (
                host_array(self._download(name, from_model_tensor(images, layout)), layout)
                for name, images in outputs.items())
            return left_out, right_out

    def _run(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model on N×3×H×W float views of any size: pad, (tile,) crop."""
        height, width = left.shape[-2:]
        left = pad_to_multiple(left, self.pad_multiple)
        right = pad_to_multiple(right, self.pad_multiple)
        if self._tile is None:
            out_left, out_right = self._forward(left, right)
        else:
            out_left, out_right = tiled_forward(
                self._forward, left, right, tile=self._tile, overlap=self.config.tile_overlap,
                context=self.max_disparity or 0, margin=self._margin or 0,
                multiple=self.pad_multiple, tile_batch=self.config.tile_batch, pools=self._pools)
        if not (torch.isfinite(out_left).all() and torch.isfinite(out_right).all()):
            # Clamping would turn NaN into black images that look like results.
            raise EngineError('the model produced NaN or infinite values, so there is no image '
                              'to return; expected weights whose outputs stay finite')
        return out_left[..., :height, :width], out_right[..., :height, :width]

    def _forward(self, left: torch.Tensor,
                 right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._channels_last:
            left = left.contiguous(memory_format=torch.channels_last)
            right = right.contiguous(memory_format=torch.channels_last)
        else:
            left, right = left.contiguous(), right.contiguous()
        with autocast(self._device, self._precision):
            out_left, out_right = self._forward_module(left, right)
        return out_left.float(), out_right.float()

    def _upload(self, name: str, images: np.ndarray) -> torch.Tensor:
        """Move raw integer images to the device; on CUDA through a reused pinned buffer."""
        host = host_tensor(images)
        if not self._cuda:
            return host
        staging = self._staging_buffer(f'in_{name}', host)
        staging.copy_(host)
        return staging.to(self._device, non_blocking=True)

    def _download(self, name: str, images: torch.Tensor) -> torch.Tensor:
        """Bring results to the host; on CUDA through a reused pinned buffer, then copied out."""
        if not self._cuda:
            return images
        staging = self._staging_buffer(f'out_{name}', images)
        staging.copy_(images, non_blocking=True)
        torch.cuda.current_stream(self._device).synchronize()
        return staging.clone()

    def _staging_buffer(self, key: str, like: torch.Tensor) -> torch.Tensor:
        buffer = self._staging.get(key)
        if buffer is None or buffer.shape != like.shape or buffer.dtype != like.dtype:
            buffer = torch.empty(like.shape, dtype=like.dtype, pin_memory=True)
            self._staging[key] = buffer
        return buffer

    def _move_to(self, device: torch.device) -> None:
        self._device = device
        self._cuda = device.type == 'cuda'
        self._precision = resolve_precision(self.config.precision, device)
        channels_last = self.config.channels_last
        self._channels_last = self._cuda if channels_last is None else channels_last
        self._staging.clear()
        memory_format = torch.channels_last if self._channels_last else torch.contiguous_format
        self._model.to(device=device, memory_format=memory_format)
        self._forward_module = self._model
        if self.config.compile:
            self._forward_module = torch.compile(self._model)
        LOGGER.info('model %s on %s, precision %s', self.model_name, device, self._precision)

    def _warm_up(self, shape: tuple[int, int]) -> None:
        height, width = (round_up(size, self.pad_multiple) for size in shape)
        images = torch.full((1, 3, height, width), 0.5, device=self._device)
        with torch.inference_mode():
            self._forward(images, images)
        if self._cuda:
            torch.cuda.synchronize(self._device)

    @property
    def tile_margin(self) -> int | None:
        """Return the pixels a tile's output is not trusted next to an inner edge.

        None until a tile is first asked for (the radius is measured then) unless configured.
        """
        return self._margin

    def _measured_margin(self, height: int, width: int) -> int:
        """Measure the receptive radius once (see `receptive_field`), when tiling is first needed.

        The probe is no larger than the tile, so that it fits wherever the tile will.
        """
        if self._margin is None:
            size = max(self.pad_multiple, min(PROBE_SIZE, height, width))
            self._margin = receptive_radius(self._model, self.pad_multiple, size,
                                            next(self._model.parameters()).device)
            LOGGER.info('model %s: receptive radius %d px, the margin of every tile',
                        self.model_name, self._margin)
        return self._margin

    def _checked_tile(self, tile: int | tuple[int, int]) -> tuple[int, int]:
        """Round a tile up to the model's multiple and check it leaves room past the margins.

        Refuses a tile with no trusted part; warns when less than half of it is new pixels.
        """
        height, width = (round_up(size, self.pad_multiple) for size in tile_shape(tile))
        context, margin = self.max_disparity or 0, self._measured_margin(height, width)
        overlap = self.config.tile_overlap
        strides = (tile_stride(height, overlap, 0, margin, self.pad_multiple),
                   tile_stride(width, overlap, context, margin, self.pad_multiple))
        if min(strides) < 1:
            raise ValueError(
                f'tile {height}x{width} is too small: it needs a height above 2 x margin + '
                f'overlap ({2 * margin + overlap}) and a width above max_disparity + 2 x margin '
                f'+ overlap ({context + 2 * margin + overlap}); margin {margin} px is the '
                f"model's receptive radius")
        if strides[0] < height / 2 or strides[1] < width / 2:
            LOGGER.warning(
                'tile %dx%d advances only %dx%d px per tile (2 x %d px receptive margin, %d px '
                'disparity band, %d px blend), so most of the work is done twice or more; '
                'tiles of at least %dx%d px waste less', height, width, *strides, margin,
                context, overlap, 2 * (2 * margin + overlap),
                2 * (context + 2 * margin + overlap))
        return height, width


def _band_of(model: nn.Module, override: int | None) -> int | None:
    """Return the disparity band in force: the override, else the model's configured one."""
    if override is not None:
        return override
    return model_config(model).get('max_disparity')


def _load_model(config: EngineConfig) -> tuple[nn.Module, str]:
    """Build the model the config asks for and say where its weights came from.

    The source string is what diagnostics and reports show, so that a run on untrained weights
    can never pass for a run on the packaged ones.
    """
    if config.weights is not None:
        model = build_model_from_checkpoint(config.weights, expected_model=config.model)
        return model, str(config.weights)
    name = config.model or DEFAULT_MODEL
    if config.allow_untrained:
        LOGGER.warning('running model %s with UNTRAINED weights (testing only)', name)
        return build_model(name, **config.model_overrides), 'untrained'
    packaged = require_packaged_weights(name)
    return build_model_from_checkpoint(packaged, expected_model=name), f'packaged:{packaged.name}'

