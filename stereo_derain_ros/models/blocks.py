"""Building blocks shared by several models (NAFNet-style, docs/references.md §3)."""

import torch
from torch import nn
import torch.nn.functional as F


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of an N x C x H x W map."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias,
                              self.eps)
        return normed.permute(0, 3, 1, 2)


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    """Halve the channels by multiplying the two halves: NAFNet's activation-free nonlinearity."""
    first, second = x.chunk(2, dim=1)
    return first * second


class LocalMean(nn.Module):
    """Mean over a window x window neighbourhood of each pixel (borders: over what exists).

    Replaces NAFNet's global pooling in the channel attention so that a block sees the same
    statistics on a training crop, a tile and a full frame (the motivation of TLC). It sums in
    fp32 whatever the autocast: box sums of bf16 maps came out wrong by as much as the means
    themselves at 1/4 resolution (docs/model_card.md, "bf16 on the CPU").
    """

    def __init__(self, window: int) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return _box_sum(x, self.window) / _box_sum(torch.ones_like(x[:1, :1]), self.window)


def _box_sum(x: torch.Tensor, window: int) -> torch.Tensor:
    """Sum over the window around each pixel, clipped at the borders (zeros padded around).

    Sliding sums by doubling rather than differences of cumulative sums: torch scans a
    cumulative sum one element at a time, and differences of large running totals lose the
    small sums between them. The shipped bandnet on a 640×360 pair ran in 0.89× its time in
    fp32 and 0.92× in bf16 (one thread, AMD EPYC), its means within 8e-7 of fp64's.
    """
    before, after = window // 2, (window - 1) // 2
    padded = F.pad(x, (before, after, before, after))
    return _sliding_sum(_sliding_sum(padded, window, 2), window, 3)


def _sliding_sum(x: torch.Tensor, window: int, dim: int) -> torch.Tensor:
    """Sum every run of `window` consecutive entries along `dim` (window - 1 fewer entries).

    Runs of 1, 2, 4, ... entries each come from two of the previous length, and the runs of the
    lengths in `window`'s binary form are added end to end: about 2 log2(window) passes over the
    map whatever the window.
    """
    length = x.shape[dim]
    count = length - window + 1
    total, covered, runs, run = None, 0, x, 1
    while run <= window:
        if window & run:
            part = runs.narrow(dim, covered, count)
            total = part if total is None else total + part
            covered += run
        if 2 * run <= window:
            size = length - 2 * run + 1
            runs = runs.narrow(dim, 0, size) + runs.narrow(dim, run, size)
        run *= 2
    return total


class NAFBlock(nn.Module):
    """Activation-free block: depthwise-conv mixer + simplified channel attention, gated FFN.

    `pool_window` None pools the channel attention over the whole image (NAFNet); a window
    pools over each pixel's neighbourhood instead. Both residual branches are scaled by
    per-channel factors initialised to zero (skip-init), so a fresh block is the identity and
    deep stacks train stably without normalisation tricks.
    """

    def __init__(self, channels: int, pool_window: int | None = None) -> None:
        super().__init__()
        hidden = 2 * channels
        self.norm1 = LayerNorm2d(channels)
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        pool = nn.AdaptiveAvgPool2d(1) if pool_window is None else LocalMean(pool_window)
        self.channel_attention = nn.Sequential(pool, nn.Conv2d(channels, channels, 1))
        self.project = nn.Conv2d(channels, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.ffn_expand = nn.Conv2d(channels, hidden, 1)
        self.ffn_project = nn.Conv2d(channels, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = simple_gate(self.depthwise(self.expand(self.norm1(x))))
        y = self.project(y * self.channel_attention(y))
        x = x + self.beta * y
        y = self.ffn_project(simple_gate(self.ffn_expand(self.norm2(x))))
        return x + self.gamma * y
