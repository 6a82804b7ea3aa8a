"""The PyTorch backend: eager (or compiled) torch on the CPU or a CUDA device.

This is the only module that places inference on torch devices (resolved by `engine.devices`)
and precisions (resolved by `engine.precision`). Every CUDA-specific step (pinned staging
buffers, non-blocking copies, cache release after an out-of-memory error) sits behind an
`if self._cuda` branch, so the CPU path stays plain torch. Both devices run
channels_last by default: on the CPU it keeps the per-pixel LayerNorm and the 1x1 convolutions
from copying every feature map between layouts.
"""

import logging

import torch
from torch import nn

from stereo_derain_ros.engine.backend import prepared_model
from stereo_derain_ros.engine.config import EngineConfig
from stereo_derain_ros.engine.devices import resolve_device
from stereo_derain_ros.engine.precision import autocast, resolve_precision

LOGGER = logging.getLogger(__name__)


class TorchBackend:
    """Run a torch model on one device, moving it to the CPU when asked to fall back."""

    def __init__(self, config: EngineConfig, model: nn.Module | None) -> None:
        self.config = config
        self.model, self.info = prepared_model(config, model)
        self._staging: dict[str, torch.Tensor] = {}
        self._move_to(resolve_device(config.device))

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def precision(self) -> str:
        return self._precision

    def forward(self, left: torch.Tensor,
                right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._channels_last:
            left = left.contiguous(memory_format=torch.channels_last)
            right = right.contiguous(memory_format=torch.channels_last)
        else:
            left, right = left.contiguous(), right.contiguous()
        with autocast(self._device, self._precision):
            out_left, out_right = self._forward_module(left, right)
        return out_left.float(), out_right.float()

    def upload(self, name: str, images: torch.Tensor) -> torch.Tensor:
        """Move raw integer images to the device; on CUDA through a reused pinned buffer."""
        if not self._cuda:
            return images
        staging = self._staging_buffer(f'in_{name}', images)
        staging.copy_(images)
        return staging.to(self._device, non_blocking=True)

    def download(self, name: str, images: torch.Tensor) -> torch.Tensor:
        """Bring results to the host; on CUDA through a reused pinned buffer, then copied out."""
        if not self._cuda:
            return images
        staging = self._staging_buffer(f'out_{name}', images)
        staging.copy_(images, non_blocking=True)
        torch.cuda.current_stream(self._device).synchronize()
        return staging.clone()

    def move_to_cpu(self) -> str | None:
        if not self._cuda:
            return None
        self._move_to(torch.device('cpu'))
        return 'moved the model to the CPU'

    def release_memory(self) -> None:
        if self._cuda:
            torch.cuda.empty_cache()

    def synchronize(self) -> None:
        """Wait for queued device work (warm-up must really have run before the first frame)."""
        if self._cuda:
            torch.cuda.synchronize(self._device)

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
        self._channels_last = self.config.channels_last
        self._staging.clear()
        memory_format = torch.channels_last if self._channels_last else torch.contiguous_format
        self.model.to(device=device, memory_format=memory_format)
        self._forward_module = self.model
        if self.config.compile:
            self._forward_module = torch.compile(self.model)
        LOGGER.info('model %s on %s, precision %s', self.info.name, device, self._precision)
