"""What every stereo deraining model shares: the pair interface and disparity-band control."""

import math

import torch
from torch import nn


class ParallaxModule(nn.Module):
    """A cross-view module working at `scale` (input pixels per feature column).

    Holds the disparity band in feature columns, so one model-wide value in input pixels can be
    converted per level: ceil(d / scale) keeps every match the input band allows.
    """

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.max_disparity: int | None = None

    def set_input_max_disparity(self, disparity: int | None) -> None:
        self.max_disparity = None if disparity is None else math.ceil(disparity / self.scale)


class StereoDerainModel(nn.Module):
    """Base of all registered models: forward(left, right) -> (left_out, right_out).

    Inputs are N x 3 x H x W RGB in [0, 1] with H and W multiples of `pad_multiple`; outputs have
    the same shape and are not clamped. Both views go through the network as one batch,
    torch.cat([left, right]) (so cross-view modules find the left view in the first half), and
    the network predicts the correction that is added to its input.
    """

    pad_multiple: int = 1

    def forward(self, left: torch.Tensor, right: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_pair(left, right)
        images = torch.cat([left, right])
        out = self.correction(images) + images
        return out[:left.shape[0]], out[left.shape[0]:]

    def correction(self, images: torch.Tensor) -> torch.Tensor:
        """Return what to add to `images` (2N x 3 x H x W: the left views, then the right)."""
        raise NotImplementedError

    def set_max_disparity(self, disparity: int | None) -> None:
        """Limit cross-view attention to disparities <= `disparity` input pixels (None: no limit).

        A no-op for models without cross-view attention.
        """
        valid_int = isinstance(disparity, int) and not isinstance(disparity, bool)
        if disparity is not None and not (valid_int and disparity >= 0):
            raise ValueError(
                f'max disparity must be a non-negative int (pixels) or None, got {disparity!r}')
        for module in self.modules():
            if isinstance(module, ParallaxModule):
                module.set_input_max_disparity(disparity)

    def check_pair(self, left: torch.Tensor, right: torch.Tensor) -> None:
        """Raise ValueError naming the problem when a pair cannot go through the model."""
        if left.shape != right.shape:
            raise ValueError(f'left and right must have the same shape, got {tuple(left.shape)} '
                             f'and {tuple(right.shape)}')
        if left.dim() != 4 or left.shape[1] != 3:
            raise ValueError(f'expected N x 3 x H x W images, got shape {tuple(left.shape)}')
        height, width = left.shape[-2:]
        if height % self.pad_multiple or width % self.pad_multiple:
            raise ValueError(f'H and W must be multiples of {self.pad_multiple}, '
                             f'got {height} x {width}; pad the input first')
