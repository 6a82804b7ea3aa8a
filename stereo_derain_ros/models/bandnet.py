"""BandNet: the package's default real-time stereo deraining network (and its mono ablation).

BANDed parallax-attention NETwork. Design, for >= 30 pairs/s at 1280x720 on a GPU and usable
speed on a CPU:
- Pixel-unshuffle x4 on entry: all work happens at 1/4 resolution or below, while the 48
  unshuffled channels keep every input pixel, so thin rain streaks stay visible to the network.
- A 3-level U-Net (1/4, 1/8, 1/16) of NAFNet blocks (depthwise conv, simple gate, simplified
  channel attention, LayerNorm2d): cheap per pixel, no activations, zero-initialised branches.
  Skips are added (no concat + 1x1), downsampling is a stride-2 2x2 conv, upsampling a 1x1 conv +
  pixel shuffle.
- Siamese: both views run through the same weights as one batch.
- Banded cross-view attention (SCAM-style, shared logits per direction pair) after the stages at
  1/8 and 1/16 resolution, where a 192 px band is only 24 or 12 feature columns wide, so the
  stereo exchange costs a few percent of the network. Its residual scales start at zero, so a
  fresh stereo model equals the mono one and learns how much to trust the other view.
- Output: pixel-shuffle back to full resolution, plus the input (global residual per view).

`bandnet_mono` is the same network with `stereo=False`: the cross-view modules are not built,
so each view is derained on its own (the ablation that shows what the second view is worth).
"""

from dataclasses import dataclass

import torch
from torch import nn

from stereo_derain_ros.models.base import ParallaxModule, StereoDerainModel
from stereo_derain_ros.models.blocks import LayerNorm2d, NAFBlock
from stereo_derain_ros.models.parallax import (
    image_from_rows,
    parallax_attention_pair,
    rows_from_image,
)
from stereo_derain_ros.models.registry import register_model


class SiameseParallaxAttention(ParallaxModule):
    """Banded cross-view exchange with one set of weights for both views.

    Scores S[i, j] = q_left[i] . q_right[j] / sqrt(C) with q = 1x1(LN(x)), values v = 1x1(x);
    each view adds its band-limited read of the other, scaled per channel. At a zero initial
    scale the query and value projections get no gradient until the scale drifts away from zero,
    which a short run may never see; a small non-zero start lets them learn from step one.
    """

    def __init__(self, channels: int, scale: int, initial_scale: float = 0.0) -> None:
        super().__init__(scale)
        self.norm = LayerNorm2d(channels)
        self.query = nn.Conv2d(channels, channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.beta = nn.Parameter(torch.full((1, channels, 1, 1), float(initial_scale)))

    def forward(self, left: torch.Tensor, right: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        both = torch.cat([left, right])
        queries = rows_from_image(self.query(self.norm(both))).chunk(2)
        values = rows_from_image(self.value(both)).chunk(2)
        to_left, to_right = parallax_attention_pair(queries[0], queries[1], values[0], values[1],
                                                    self.max_disparity)
        batch = left.shape[0]
        return (left + self.beta * image_from_rows(to_left, batch),
                right + self.beta * image_from_rows(to_right, batch))


class Stage(nn.Module):
    """NAF blocks on both views (one batch), then an optional cross-view exchange."""

    def __init__(self, channels: int, blocks: int, cross_view_scale: int | None,
                 pool_window: int | None = None, cross_view_init: float = 0.0) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(NAFBlock(channels, pool_window) for _ in range(blocks)))
        self.cross_view = None
        if cross_view_scale:
            # Drawn from a forked random state, so that every later layer gets the same initial
            # weights as in the mono model: at one seed, stereo and its ablation differ only by
            # the cross-view modules, not by a different random draw of everything else.
            with torch.random.fork_rng(devices=[]):
                self.cross_view = SiameseParallaxAttention(channels, cross_view_scale,
                                                           cross_view_init)

    def forward(self, both: torch.Tensor) -> torch.Tensor:
        both = self.blocks(both)
        if self.cross_view is None:
            return both
        return torch.cat(self.cross_view(*both.chunk(2)))


@register_model('bandnet', 'real-time default: NAFNet U-Net at 1/4-1/16 res, banded parallax '
                'attention at 1/8 and 1/16')
@register_model('bandnet_mono', 'bandnet without cross-view attention (monocular ablation)',
                stereo=False)
class BandNet(StereoDerainModel):
    @dataclass
    class Config:
        width: int = 32
        unshuffle: int = 4
        encoder_blocks: tuple[int, ...] = (2, 2)
        middle_blocks: int = 4
        decoder_blocks: tuple[int, ...] = (2, 2)
        stereo: bool = True
        cross_view_levels: tuple[int, ...] = (1, 2)
        max_disparity: int | None = 192
        # Initial per-channel scale of each cross-view read (0: a fresh model equals the mono one).
        cross_view_init: float = 0.0
        # Channel-attention pooling window in input pixels; None pools over the whole image.
        pool_window: int | None = None


    def __init__(self, config: Config) -> None:
        super().__init__()
        if len(config.encoder_blocks) != len(config.decoder_blocks):
            raise ValueError('encoder_blocks and decoder_blocks must have the same length, got '
                             f'{config.encoder_blocks} and {config.decoder_blocks}')
        levels = len(config.encoder_blocks)
        self.pad_multiple = config.unshuffle * 2 ** levels
        unshuffled = 3 * config.unshuffle ** 2
        widths = [config.width * 2 ** level for level in range(levels + 1)]

        def window(level: int) -> int | None:
            if config.pool_window is None:
                return None
            return max(1, config.pool_window // (config.unshuffle * 2 ** level))

        def cross_view(level: int) -> int | None:
            if config.stereo and level in config.cross_view_levels:
                return config.unshuffle * 2 ** level
            return None

        self.entry = nn.Sequential(nn.PixelUnshuffle(config.unshuffle),
                                   nn.Conv2d(unshuffled, widths[0], 3, padding=1))
        self.encoders = nn.ModuleList(
            Stage(widths[level], blocks, cross_view(level), window(level),
                  config.cross_view_init)
            for level, blocks in enumerate(config.encoder_blocks))
        self.downs = nn.ModuleList(nn.Conv2d(widths[level], widths[level + 1], 2, stride=2)
                                   for level in range(levels))
        self.middle = Stage(widths[levels], config.middle_blocks, cross_view(levels),
                            window(levels), config.cross_view_init)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[level + 1], 2 * widths[level + 1], 1),
                          nn.PixelShuffle(2))
            for level in range(levels))
        self.decoders = nn.ModuleList(
            Stage(widths[level], blocks, cross_view(level), window(level),
                  config.cross_view_init)
            for level, blocks in enumerate(config.decoder_blocks))
        self.exit = nn.Sequential(nn.Conv2d(widths[0], unshuffled, 3, padding=1),
                                  nn.PixelShuffle(config.unshuffle))
        self.set_max_disparity(config.max_disparity)

    def correction(self, images: torch.Tensor) -> torch.Tensor:
        x = self.entry(images)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for level in reversed(range(len(self.decoders))):
            x = self.decoders[level](self.ups[level](x) + skips[level])
        return self.exit(x)
