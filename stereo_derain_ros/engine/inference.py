"""DerainEngine: numpy stereo pairs in, derained numpy pairs out, on whichever backend is asked.

The engine owns what every backend shares: image layouts, padding to the model's multiple,
tiling, and the fall-back ladder after an out-of-memory error (tiles first, then the CPU). The
network itself runs in a backend (`engine.backend`): eager torch or ONNX Runtime.
"""

from collections.abc import Sequence
import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from stereo_derain_ros.engine.backend import create_backend
from stereo_derain_ros.engine.config import EngineConfig, tile_shape
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
from stereo_derain_ros.engine.receptive_field import PROBE_SIZE, receptive_radius
from stereo_derain_ros.engine.refinement import (
    COLOUR_REFINER,
    load_colour_refiner,
    load_refiner,
    refine_views,
    REFINER_DERAINER,
    views_are_grey,
)
from stereo_derain_ros.engine.self_ensemble import self_ensemble
from stereo_derain_ros.engine.shared_pooling import global_pools
from stereo_derain_ros.engine.tiling import round_up, tile_stride, tiled_forward
from stereo_derain_ros.engine.view_fusion import fuse_views, load_fusion_gate
from stereo_derain_ros.engine.weights import packaged_weights
from stereo_derain_ros.models.refiner import Refiner

LOGGER = logging.getLogger(__name__)


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
        if config.threads is not None:
            # Before the backend starts: onnxruntime takes its thread count from torch's.
            torch.set_num_threads(config.threads)
            # OpenCV runs the view fusion's SGBM (on every core by default) and warps.
            cv2.setNumThreads(config.threads)
        self._backend = create_backend(config, model)
        info = self._backend.info
        self.model_name, self.weights_source = info.name, info.weights_source
        self.max_disparity, self.pad_multiple = info.max_disparity, info.pad_multiple
        self._margin = config.tile_margin
        self._pools = [] if self.model is None else global_pools(self.model)
        self._tile = None if config.tile is None else self._checked_tile(config.tile)
        self._refiner = self._chosen_refiner(info.weights_file)
        # See refiner_for.
        self._colour_refiner = (load_colour_refiner() if self._refiner is not None
                                and self.config.refiner is None else None)
        self._fusion_gate = (load_fusion_gate(config.view_fusion_gate) if config.view_fusion
                             else None)
        if config.tile is not None and self.max_disparity is None:
            LOGGER.warning('tiling without max_disparity: matches farther apart than a tile '
                           'cannot be seen')
        if config.warmup_shape is not None:
            self._warm_up(tuple(config.warmup_shape))

    def _chosen_refiner(self, weights_file: str | None) -> Refiner | None:
        """Return the refiner to run: the one configured, else the packaged one where it fits.

        The packaged refiner learnt what the packaged weights of REFINER_DERAINER leave; behind
        other weights it would correct errors they do not make, so there it stays off unless a
        refiner is named.
        """
        if not self.config.refine:
            return None
        if self.config.refiner is not None:
            return load_refiner(self.config.refiner)
        packaged = packaged_weights(REFINER_DERAINER)
        if (weights_file is None or packaged is None
                or Path(weights_file).resolve() != packaged.resolve()):
            LOGGER.info('refine: the packaged refiner follows the packaged %s weights, not %s; '
                        'running without it (stereo-derain train-refiner fits one to yours)',
                        REFINER_DERAINER, self.weights_source)
            return None
        return load_refiner()

    @property
    def refines(self) -> bool:
        """Tell whether a refiner corrects the network's output."""
        return self._refiner is not None

    @property
    def refiner_source(self) -> str | None:
        """Return where the refiner in use came from (as `weights_source` says it), or None."""
        if self._refiner is None:
            return None
        if self.config.refiner is not None:
            return self.config.refiner
        source = f'packaged:{Refiner.name}.safetensors'
        if self._colour_refiner is not None:
            source += f' (colour pairs: {COLOUR_REFINER}.safetensors)'
        return source

    def refiner_for(self, grey: bool) -> Refiner | None:
        """Return the refiner run on grey pairs or on colour ones (None: refine is off).

        The packaged refiners come as a pair, one fitted on colour pairs alone; a named refiner
        serves every pair.
        """
        if self._colour_refiner is not None and not grey:
            return self._colour_refiner
        return self._refiner

    @property
    def model(self) -> nn.Module | None:
        """Return the torch model (None when an ONNX file runs without one)."""
        return self._backend.model

    @property
    def backend(self) -> str:
        return self.config.backend

    @property
    def device(self) -> torch.device:
        return self._backend.device

    @property
    def precision(self) -> str:
        return self._backend.precision

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
                self._backend.release_memory()
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
        step = self._backend.move_to_cpu()
        if step is not None:
            return step
        raise EngineError('out of memory while tiling on the CPU; nothing left to fall back to '
                          '(use a smaller tile)')

    def _derain_arrays(self, lefts: np.ndarray, rights: np.ndarray,
                       layout: ImageLayout) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            left, right = (to_model_tensor(self._backend.upload(name, host_tensor(images)), layout)
                           for name, images in (('left', lefts), ('right', rights)))
            outputs = dict(zip(('left', 'right'), self._run(left, right)))
            left_out, right_out = (
                host_array(self._backend.download(name, from_model_tensor(images, layout)),
                           layout)
                for name, images in outputs.items())
            return left_out, right_out

    def _run(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model on N×3×H×W float views of any size, over `self_ensemble` flips.

        Then the refiner and the second-view fusion, where they are on.
        """
        out_left, out_right = self_ensemble(self._run_once, left, right,
                                            self.config.self_ensemble)
        if self._refiner is not None:
            grey = views_are_grey(left, right)
            out_left, out_right = refine_views(self.refiner_for(grey), left, right, out_left,
                                               out_right, self._backend.precision, grey=grey)
        if self._fusion_gate is not None:
            out_left, out_right = fuse_views(self._fusion_gate, left, right, out_left, out_right,
                                             self.config.view_fusion_disparity_range,
                                             self._backend.precision)
        if not (torch.isfinite(out_left).all() and torch.isfinite(out_right).all()):
            # Clamping would turn NaN into black images that look like results.
            raise EngineError('the model produced NaN or infinite values, so there is no image '
                              'to return; expected weights whose outputs stay finite')
        return out_left, out_right

    def _run_once(self, left: torch.Tensor,
                  right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model once: pad, (tile,) crop."""
        height, width = left.shape[-2:]
        left = pad_to_multiple(left, self.pad_multiple)
        right = pad_to_multiple(right, self.pad_multiple)
        if self._tile is None:
            out_left, out_right = self._backend.forward(left, right)
        else:
            out_left, out_right = tiled_forward(
                self._backend.forward, left, right, tile=self._tile,
                overlap=self.config.tile_overlap, context=self.max_disparity or 0,
                margin=self._margin or 0, multiple=self.pad_multiple,
                tile_batch=self.config.tile_batch, pools=self._pools)
        return out_left[..., :height, :width], out_right[..., :height, :width]

    def _warm_up(self, shape: tuple[int, int]) -> None:
        height, width = (round_up(size, self.pad_multiple) for size in shape)
        images = torch.full((1, 3, height, width), 0.5, device=self._backend.device)
        with torch.inference_mode():
            self._backend.forward(images, images)
        self._backend.synchronize()

    @property
    def tile_margin(self) -> int | None:
        """Return the pixels a tile's output is not trusted next to an inner edge.

        None until a tile is first asked for (the radius is measured then) unless configured.
        """
        return self._margin

    def _measured_margin(self, height: int, width: int) -> int:
        """Measure the receptive radius once (see `receptive_field`), when tiling is first needed.

        The probe is no larger than the tile, so that it fits wherever the tile will. A backend
        without a torch model cannot be probed: its margin is `tile_margin`, else 0.
        """
        if self._margin is None and self.model is None:
            LOGGER.warning('the %s backend cannot measure the receptive field; tiles trust '
                           'their outputs up to the edges (set tile_margin)', self.backend)
            self._margin = 0
        if self._margin is None:
            size = max(self.pad_multiple, min(PROBE_SIZE, height, width))
            self._margin = receptive_radius(self.model, self.pad_multiple, size, self.device)
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
                f'overlap ({2 * margin + overlap}) and a width above 2 x (max_disparity + '
                f'margin) + overlap ({2 * (context + margin) + overlap}); margin {margin} px is '
                f"the model's receptive radius")
        if strides[0] < height / 2 or strides[1] < width / 2:
            LOGGER.warning(
                'tile %dx%d advances only %dx%d px per tile (2 x %d px receptive margin, 2 x %d '
                'px disparity band, %d px blend), so most of the work is done twice or more; '
                'tiles of at least %dx%d px waste less', height, width, *strides, margin,
                context, overlap, 2 * (2 * margin + overlap),
                2 * (2 * (context + margin) + overlap))
        return height, width
