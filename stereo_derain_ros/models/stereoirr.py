"""StereoIRR (Wei et al., arXiv 2211.10104), rebuilt from the paper's figure and abstract.

The paper's code was never released and its text gives no block internals (docs/references.md §2),
so only the topology is the paper's; every internal below is this package's choice:
- Feature extraction (shared by both views, as the paper says): conv3x3 3 -> C0, GELU. (Full
  resolution is the expensive place for blocks; the MAC budget below leaves none there.)
- Long-range and cross-view interaction (LCI): two weight-shared branches (run as one batch) of
  stages arranged as a U: encoder stages at 1, 1/2, ... 1/2^(L-1), a bottleneck stage at 1/2^L,
  decoder stages mirrored. This U-shape matches the figure's stage boxes that shrink toward the
  middle and grow again.
  - A stage is a sequence of basic blocks: the ResNet/EDSR "BasicBlock" (conv3x3, GELU, conv3x3,
    identity skip, no normalisation). The authors' SGINet used an EDSR-style harness, and
    normalisation-free blocks avoid batch statistics in a two-image batch.
  - Resampling: down is a stride-2 conv3x3 (C -> 2C); up is a 1x1 conv (C -> 2C) followed by
    pixel shuffle (-> C/2).
  - Long-range skips (dashed in the figure) link symmetric stages: each encoder stage's output is
    added to the input of the decoder stage at the same resolution.
  - Dual-view mutual attention (DMA) sits between every pair of consecutive stages (after each
    stage but the last), at that stage's resolution.
- DMA: each view is the key for the other, giving two attention maps. Per view, n = LN(x) (channel
  LayerNorm), q = Wq n, k = Wk n, v = Wv x (1x1 convs, shared by both views; Wk has no bias,
  since q . b is the same for every key of a query and softmax ignores it). The left view
  reads softmax(q_L k_R^T / sqrt(C)) v_R, the right view softmax(q_R k_L^T / sqrt(C)) v_L, row by
  row along the epipolar lines and under the non-negative-disparity band of `parallax.py` (so
  `set_max_disparity` bounds cost); the read goes through a 1x1 Wo and a zero-initialised
  per-channel scale into the view's features.
- Residual prediction: conv3x3 C0 -> 3 on the last decoder stage; the residual is added to each
  rainy input.

Sizing: APANet's Table II lists StereoIRR at 39.69 M parameters and 9.26 G MACs (128x128 pair).
So few MACs per parameter mean most weights sit deep in the U. The default here has six levels
(1 to 1/32; widths 32, 64, 128, 256, 512 and an 832-wide bottleneck at 1/32) with one basic block
per stage, eleven stages and ten DMAs: 38.42 M parameters and 9.29 G MACs for one 128x128 pair
(torch FLOP counter), within 4 % of both numbers. Inputs must be multiples of 32.
"""

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from stereo_derain_ros.models.base import ParallaxModule, StereoDerainModel
from stereo_derain_ros.models.blocks import LayerNorm2d
from stereo_derain_ros.models.parallax import image_from_rows, parallax_attention, rows_from_image
from stereo_derain_ros.models.registry import register_model


class BasicBlock(nn.Module):
    """conv3x3 -> GELU -> conv3x3 plus the input (no normalisation)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(x)))


class DualViewMutualAttention(ParallaxModule):
    """DMA: each view queries the other (its own query, the other's key and value), row-wise."""

    def __init__(self, channels: int, scale: int) -> None:
        super().__init__(scale)
        self.norm = LayerNorm2d(channels)
        self.query = nn.Conv2d(channels, channels, 1)
        # No bias: q . b would be the same for every key of a query, which softmax ignores.
        self.key = nn.Conv2d(channels, channels, 1, bias=False)
        self.value = nn.Conv2d(channels, channels, 1)
        self.project = nn.Conv2d(channels, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, both: torch.Tensor) -> torch.Tensor:
        normed = self.norm(both)
        query_left, query_right = rows_from_image(self.query(normed)).chunk(2)
        key_left, key_right = rows_from_image(self.key(normed)).chunk(2)
        value_left, value_right = rows_from_image(self.value(both)).chunk(2)
        to_left = parallax_attention(query_left, key_right, value_right, 'left',
                                     self.max_disparity)
        to_right = parallax_attention(query_right, key_left, value_left, 'right',
                                      self.max_disparity)
        read = image_from_rows(torch.cat([to_left, to_right]), both.shape[0])
        return both + self.beta * self.project(read)


@register_model('stereoirr', 'StereoIRR (after arXiv 2211.10104): U of basic-block stages with '
                'dual-view mutual attention')
class StereoIRR(StereoDerainModel):
    @dataclass
    class Config:
        widths: tuple[int, ...] = (32, 64, 128, 256, 512, 832)
        encoder_blocks: tuple[int, ...] = (1, 1, 1, 1, 1)
        middle_blocks: int = 1
        decoder_blocks: tuple[int, ...] = (1, 1, 1, 1, 1)
        max_disparity: int | None = None


    def __init__(self, config: Config) -> None:
        super().__init__()
        levels = len(config.widths) - 1
        if levels < 1 or len(config.encoder_blocks) != levels or len(
                config.decoder_blocks) != levels:
            raise ValueError('need widths for L+1 levels and L encoder/decoder block counts, got '
                             f'widths={config.widths}, encoder_blocks={config.encoder_blocks}, '
                             f'decoder_blocks={config.decoder_blocks}')
        widths = config.widths
        self.pad_multiple = 2 ** levels
        self.features = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1), nn.GELU())
        self.encoders = nn.ModuleList(self._stage(widths[level], blocks)
                                      for level, blocks in enumerate(config.encoder_blocks))
        self.encoder_attention = nn.ModuleList(DualViewMutualAttention(widths[level], 2 ** level)
                                               for level in range(levels))
        self.downs = nn.ModuleList(
            nn.Conv2d(widths[level], widths[level + 1], 3, stride=2, padding=1)
            for level in range(levels))
        self.middle = self._stage(widths[levels], config.middle_blocks)
        self.middle_attention = DualViewMutualAttention(widths[levels], 2 ** levels)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[level + 1], 4 * widths[level], 1), nn.PixelShuffle(2))
            for level in range(levels))
        self.decoders = nn.ModuleList(self._stage(widths[level], blocks)
                                      for level, blocks in enumerate(config.decoder_blocks))
        # The last decoder stage (full resolution) feeds the output, not another stage.
        self.decoder_attention = nn.ModuleList(
            DualViewMutualAttention(widths[level], 2 ** level) for level in range(1, levels))
        self.residual = nn.Conv2d(widths[0], 3, 3, padding=1)
        self.set_max_disparity(config.max_disparity)

    @staticmethod
    def _stage(channels: int, blocks: int) -> nn.Sequential:
        return nn.Sequential(*(BasicBlock(channels) for _ in range(blocks)))

    def correction(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features(images)
        skips = []
        for encoder, attention, down in zip(self.encoders, self.encoder_attention, self.downs):
            x = attention(encoder(x))
            skips.append(x)
            x = down(x)
        x = self.middle_attention(self.middle(x))
        for level in reversed(range(len(self.decoders))):
            x = self.decoders[level](self.ups[level](x) + skips[level])
            if level > 0:
                x = self.decoder_attention[level - 1](x)
        return self.residual(x)
