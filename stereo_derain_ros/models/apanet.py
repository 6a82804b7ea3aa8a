"""APANet (Wang et al., IEEE TCI 2025), reimplemented from docs/references.md §1.

A siamese 4-level Restormer-style U-Net (widths 32/64/128/256, [4, 6, 6, 8] blocks, mirrored in
the decoder). Every block is an EAM (external-attention transformer block, applied to both views
with the same weights) followed by an APAM (row-wise cross-view attention under the triangular
non-negative-disparity mask). Resampling is conv3x3 + pixel-unshuffle / shuffle; the top decoder
level stays at 64 channels after concatenating the skip (no 1x1 reduction); each view's output
is conv3x3(features) + that view's input.

Departure from the original, by design of this package: APAM runs through `parallax.py`, so
`set_max_disparity(d)` narrows the triangular mask to a band and makes memory linear in width
(the original materialises W x W scores and cannot run a full KITTI frame on a CPU). With the
default max_disparity=None it computes exactly the original's masked attention.
"""

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from stereo_derain_ros.models.base import ParallaxModule, StereoDerainModel
from stereo_derain_ros.models.blocks import LayerNorm2d
from stereo_derain_ros.models.parallax import (
    image_from_rows,
    parallax_attention_pair,
    rows_from_image,
)
from stereo_derain_ros.models.registry import register_model


class ExternalAttention(nn.Module):
    """Attention against two learned memories of `slots` entries instead of the tokens themselves.

    Double normalisation: softmax over the tokens of the image (each slot's distribution over
    pixels), then L1 over the slots; cost is linear in the number of pixels.
    """

    def __init__(self, channels: int, slots: int) -> None:
        super().__init__()
        self.memory_key = nn.Linear(channels, slots, bias=False)
        self.memory_value = nn.Linear(slots, channels, bias=False)
        nn.init.normal_(self.memory_key.weight, std=1e-3)
        nn.init.normal_(self.memory_value.weight, std=1e-3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        attention = torch.softmax(self.memory_key(tokens), dim=1)
        attention = attention / (attention.sum(dim=2, keepdim=True) + 1e-9)
        return self.memory_value(attention)


class GatedFeedForward(nn.Module):
    """1x1 expand to 2C, depthwise 3x3, GELU(first half) * second half, 1x1 back to C."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(channels, 2 * channels, 1)
        self.depthwise = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1, groups=2 * channels)
        self.project = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = self.depthwise(self.expand(x)).chunk(2, dim=1)
        return self.project(F.gelu(first) * second)


class ExternalAttentionBlock(nn.Module):
    """EAM: pre-norm external attention and gated FFN, each behind a zero-initialised scale."""

    def __init__(self, channels: int, slots: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels, eps=1e-5)
        self.attention = ExternalAttention(channels, slots)
        self.norm2 = nn.LayerNorm(channels, eps=1e-5)
        self.feed_forward = GatedFeedForward(channels)
        self.beta = nn.Parameter(torch.zeros(channels))
        self.gamma = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.beta * self.attention(self.norm1(tokens))
        x = tokens.transpose(1, 2).reshape(batch, channels, height, width)
        normed = self.norm2(tokens).transpose(1, 2).reshape(batch, channels, height, width)
        return x + self.gamma[:, None, None] * self.feed_forward(normed)


class AsymmetricParallaxAttention(ParallaxModule):
    """APAM: SCAM-style cross attention per row with the non-negative-disparity (band) mask.

    Separate LN + 1x1 query projections and 1x1 value projections per view; one score matrix
    and its transpose serve both directions; zero-initialised per-channel output scales.
    """

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__(scale)
        self.norm_left = LayerNorm2d(channels)
        self.norm_right = LayerNorm2d(channels)
        self.query_left = nn.Conv2d(channels, channels, 1)
        self.query_right = nn.Conv2d(channels, channels, 1)
        self.value_left = nn.Conv2d(channels, channels, 1)
        self.value_right = nn.Conv2d(channels, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, left: torch.Tensor, right: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        to_left, to_right = parallax_attention_pair(
            rows_from_image(self.query_left(self.norm_left(left))),
            rows_from_image(self.query_right(self.norm_right(right))),
            rows_from_image(self.value_left(left)),
            rows_from_image(self.value_right(right)),
            self.max_disparity)
        batch = left.shape[0]
        return (left + self.beta * image_from_rows(to_left, batch),
                right + self.gamma * image_from_rows(to_right, batch))


class DerainBlock(nn.Module):
    """EAM on both views (shared weights, one batch), then APAM between them."""

    def __init__(self, channels: int, slots: int, scale: int) -> None:
        super().__init__()
        self.intra_view = ExternalAttentionBlock(channels, slots)
        self.cross_view = AsymmetricParallaxAttention(channels, scale)

    def forward(self, both: torch.Tensor) -> torch.Tensor:
        # EAM normalises over each image's own tokens, so batching the views changes nothing.
        return torch.cat(self.cross_view(*self.intra_view(both).chunk(2)))


def _stage(channels: int, blocks: int, slots: int, scale: int) -> nn.Sequential:
    return nn.Sequential(*(DerainBlock(channels, slots, scale) for _ in range(blocks)))


@register_model('apanet', 'APANet (TCI 2025): U-Net of external attention + triangular-mask '
                'parallax attention')
class APANet(StereoDerainModel):
    @dataclass
    class Config:
        width: int = 32
        blocks: tuple[int, int, int, int] = (4, 6, 6, 8)
        slots: int = 64
        max_disparity: int | None = None

    pad_multiple = 8

    def __init__(self, config: Config) -> None:
        super().__init__()
        if len(config.blocks) != 4:
            raise ValueError(f'APANet has 4 levels: blocks needs 4 counts, got {config.blocks}')
        c, slots = config.width, config.slots
        b1, b2, b3, b4 = config.blocks
        self.project_in = nn.Conv2d(3, c, 3, padding=1)
        self.encoder1 = _stage(c, b1, slots, 1)
        self.down1 = self._down(c)
        self.encoder2 = _stage(2 * c, b2, slots, 2)
        self.down2 = self._down(2 * c)
        self.encoder3 = _stage(4 * c, b3, slots, 4)
        self.down3 = self._down(4 * c)
        self.latent = _stage(8 * c, b4, slots, 8)
        self.up3 = self._up(8 * c)
        self.reduce3 = nn.Conv2d(8 * c, 4 * c, 1, bias=False)
        self.decoder3 = _stage(4 * c, b3, slots, 4)
        self.up2 = self._up(4 * c)
        self.reduce2 = nn.Conv2d(4 * c, 2 * c, 1, bias=False)
        self.decoder2 = _stage(2 * c, b2, slots, 2)
        self.up1 = self._up(2 * c)
        self.decoder1 = _stage(2 * c, b1, slots, 1)
        self.project_out = nn.Conv2d(2 * c, 3, 3, padding=1)
        self.set_max_disparity(config.max_disparity)

    @staticmethod
    def _down(channels: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False),
                             nn.PixelUnshuffle(2))

    @staticmethod
    def _up(channels: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False),
                             nn.PixelShuffle(2))

    def correction(self, images: torch.Tensor) -> torch.Tensor:
        level1 = self.encoder1(self.project_in(images))
        level2 = self.encoder2(self.down1(level1))
        level3 = self.encoder3(self.down2(level2))
        x = self.latent(self.down3(level3))
        x = self.decoder3(self.reduce3(torch.cat([self.up3(x), level3], 1)))
        x = self.decoder2(self.reduce2(torch.cat([self.up2(x), level2], 1)))
        x = self.decoder1(torch.cat([self.up1(x), level1], 1))
        return self.project_out(x)
