"""Conversion between the images callers hold and the tensors models take.

Callers hold H×W or H×W×C arrays, uint8 or uint16, in RGB, BGR or mono order; models take float
N×3×H×W RGB in [0, 1] with H and W multiples of `pad_multiple`. Integers travel to the device as
they are (a quarter of the bytes of float32) and are scaled there. uint16 travels as int16 bits,
because CUDA kernels cover int16 everywhere but torch.uint16 only partly.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

CHANNEL_ORDERS = ('rgb', 'bgr', 'mono')
_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


@dataclass(frozen=True)
class ImageLayout:
    """What an input looked like, so the output can be given back in the same form."""

    shape: tuple[int, ...]
    dtype: np.dtype
    channel_order: str

    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    @property
    def scale(self) -> float:
        return _SCALES[self.dtype]


def describe_image(image: np.ndarray, channel_order: str | None, name: str) -> ImageLayout:
    """Check one image and return its layout; `channel_order` None means mono or rgb by shape."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f'{name} image must be a numpy array, got {type(image).__name__}')
    if image.dtype not in _SCALES:
        raise ValueError(f'{name} image has dtype {image.dtype}; expected uint8 or uint16')
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(
            f'{name} image has shape {image.shape}; expected H×W (mono) or H×W×C with C 1 or 3')
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 4:
        raise ValueError(
            f'{name} image has 4 channels (rgba/bgra); drop the alpha channel first: the models '
            'take 3-channel or mono images')
    if channels not in (1, 3):
        raise ValueError(f'{name} image has {channels} channels; expected 1 (mono) or 3')
    if channel_order is None:
        channel_order = 'mono' if channels == 1 else 'rgb'
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(
            f'unknown channel order {channel_order!r}; '
            f'expected one of {", ".join(CHANNEL_ORDERS)}')
    if (channel_order == 'mono') != (channels == 1):
        raise ValueError(
            f'{name} image has {channels} channel(s) but channel order {channel_order!r} '
            'was given')
    return ImageLayout(tuple(image.shape), image.dtype, channel_order)


def describe_pair(left: np.ndarray, right: np.ndarray,
                  channel_order: str | None) -> ImageLayout:
    """Check a stereo pair; both views must share shape and dtype to be processed together."""
    left_layout = describe_image(left, channel_order, 'left')
    right_layout = describe_image(right, channel_order, 'right')
    if left_layout != right_layout:
        raise ValueError(
            f'left and right images differ: left is {left.shape} {left.dtype}, right is '
            f'{right.shape} {right.dtype}; a rectified stereo pair must match in shape and dtype')
    return left_layout


def host_tensor(images: np.ndarray) -> torch.Tensor:
    """Wrap N×H×W(×C) uint8/uint16 images as a CPU tensor without copying (uint16 as int16)."""
    images = np.ascontiguousarray(images)
    if images.dtype == np.uint16:
        images = images.view(np.int16)
    return torch.from_numpy(images)


def host_array(raw: torch.Tensor, layout: ImageLayout) -> np.ndarray:
    """Return the numpy view of a CPU tensor from `from_model_tensor` in the caller's dtype."""
    return raw.numpy().view(layout.dtype)


def to_model_tensor(raw: torch.Tensor, layout: ImageLayout) -> torch.Tensor:
    """Turn raw N×H×W(×C) images from `host_tensor` (on any device) into float N×3×H×W RGB."""
    if raw.dtype == torch.int16:
        raw = raw.to(torch.int32).bitwise_and_(0xFFFF)
    images = raw.float().mul_(1.0 / layout.scale)
    if images.dim() == 3:
        images = images.unsqueeze(-1)
    images = images.permute(0, 3, 1, 2)
    if layout.channel_order == 'mono':
        return images.expand(-1, 3, -1, -1)
    if layout.channel_order == 'bgr':
        return images.flip(1)
    return images


def from_model_tensor(images: torch.Tensor, layout: ImageLayout) -> torch.Tensor:
    """Turn model output N×3×H×W into N×H×W(×C) integers in the caller's layout.

    uint16 layouts come back as int16 bits; `host_array` views them as uint16 on the host.
    """
    images = images.float()
    if layout.channel_order == 'mono':
        images = images.mean(dim=1, keepdim=True)
    elif layout.channel_order == 'bgr':
        images = images.flip(1)
    images = images.clamp(0.0, 1.0).mul_(layout.scale).round_()
    images = images.permute(0, 2, 3, 1)
    if len(layout.shape) == 2:
        images = images.squeeze(-1)
    if layout.dtype == np.uint16:
        return images.to(torch.int32).to(torch.int16)
    return images.to(torch.uint8)


def pad_to_multiple(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom and right edges of N×C×H×W so H and W are multiples of `multiple`.

    Reflection needs a border larger than the pad; tiny images are reflected repeatedly, and a
    one-pixel side is replicated, so any size works.
    """
    height, width = images.shape[-2:]
    images = _pad_end(images, -height % multiple, dim=-2)
    return _pad_end(images, -width % multiple, dim=-1)


def _pad_end(images: torch.Tensor, amount: int, dim: int) -> torch.Tensor:
    while amount:
        size = images.shape[dim]
        step = min(amount, size - 1) if size > 1 else amount
        padding = (0, step, 0, 0) if dim == -1 else (0, 0, 0, step)
        images = F.pad(images, padding, mode='reflect' if size > 1 else 'replicate')
        amount -= step
    return images
