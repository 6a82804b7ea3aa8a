"""Stereo tiling: bound memory by running the model on windows cut at the same place in both views.

A left-view pixel at column x looks for its match in right-view columns [x - d, x]; a right-view
pixel at x looks in left-view columns [x, x + d]. The exchange is stacked, though: the right-view
features a left pixel reads at a later layer have already read the left view up to d columns
further right, so after two exchanges every pixel of either view depends on both views d columns
to either side. A tile's output is therefore trusted only `context` (= d) columns away from an
inner edge on both sides, in both views (with context on one side only, a 1000 x 1482 rainy
frame differed from the untiled output by up to 6/255 on 0.04 % of its values; with both sides,
by at most 1/255). Convolutions add a `margin` (the receptive radius) at every inner edge. Each
tile gets blending weights: zero where its output is not trusted, a linear ramp over `overlap`
pixels where neighbouring tiles meet, one elsewhere. Global pooling layers get the whole image's
means (`shared_pooling`).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from stereo_derain_ros.engine.shared_pooling import SharedPooling

StereoForward = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TilePlan:
    """Tile positions along one axis and their blending weights along it."""

    starts: tuple[int, ...]
    size: int
    weights: tuple[torch.Tensor, ...]


def round_up(value: int, multiple: int) -> int:
    """Return the smallest multiple of `multiple` that is at least `value`."""
    return -(-value // multiple) * multiple


def tile_stride(size: int, overlap: int, context: int, margin: int, multiple: int) -> int:
    """Return how far apart tiles of `size` start: past both margins, both bands and the blend."""
    return (size - 2 * (context + margin) - overlap) // multiple * multiple


def plan_axis(length: int, size: int, overlap: int, context: int, margin: int = 0,
              multiple: int = 1) -> TilePlan:
    """Place tiles of `size` along an axis of `length` so the trusted parts overlap by `overlap`.

    A tile's output is trusted `context` + `margin` pixels (the disparity band and the model's
    receptive radius) away from an edge inside the image. The stride (`tile_stride`) is
    size - 2 (context + margin) - overlap, rounded down to `multiple`: tiles must start on the
    model's grid (pixel-unshuffle and stride-2 phases), or their features are not the whole
    image's. The last tile is pushed back to end at the border (on the grid too when `length` and
    `size` are multiples).
    """
    if size >= length:
        return TilePlan((0,), length, (torch.ones(length),))
    stride = tile_stride(size, overlap, context, margin, multiple)
    if stride < 1:
        raise ValueError(
            f'tile size {size} is too small for {overlap} px overlap plus 2 x {context} px of '
            f'disparity context and 2 x {margin} px of receptive field; use tiles larger than '
            f'{2 * (context + margin) + overlap + multiple - 1}')
    starts = list(range(0, length - size, stride)) + [length - size]
    weights = tuple(_ramp_weights(size, overlap, context + margin, start == 0,
                                  start + size == length) for start in starts)
    return TilePlan(tuple(starts), size, weights)


def _ramp_weights(size: int, overlap: int, skip: int, at_start: bool, at_end: bool
                  ) -> torch.Tensor:
    """Build 1-D weights: zero on skipped columns, ramps inside the image, never zero elsewhere."""
    weights = torch.ones(size)
    ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
    if not at_start:
        weights[:skip] = 0.0
        weights[skip:skip + overlap] = ramp
    if not at_end:
        end = size - skip
        weights[end:] = 0.0
        weights[end - overlap:end] = ramp.flip(0)
    return weights


def tiled_forward(forward: StereoForward, left: torch.Tensor, right: torch.Tensor, *,
                  tile: tuple[int, int], overlap: int, context: int, margin: int = 0,
                  multiple: int = 1, tile_batch: int = 1, pools: Sequence[nn.Module] = ()
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `forward` over tiles of N×3×H×W views and blend the results into full images.

    H, W and `tile` must be multiples of `multiple`, what the model needs;
    tiles of several images in the batch and up to `tile_batch` positions run together.
    `pools` are the model's global pooling layers: given, a first pass over the tiles
    estimates the whole image's means and the second, which makes the output, uses them (see
    `shared_pooling`).
    """
    plans = (plan_axis(left.shape[-2], tile[0], overlap, 0, margin, multiple),
             plan_axis(left.shape[-1], tile[1], overlap, context, margin, multiple))
    windows = [(row, column) for row in range(len(plans[0].starts))
               for column in range(len(plans[1].starts))]
    groups = [windows[first:first + tile_batch] for first in range(0, len(windows), tile_batch)]
    weights = _normalised_weights(plans, windows, left.device)
    sharing = SharedPooling(list(pools), left.shape[0]) if pools else None
    if sharing is not None:
        for group in groups:
            _run_group(forward, sharing, plans, weights, group, left, right)
        sharing.finish_pass()
        sharing.recording = False
    out_left = torch.zeros_like(left, dtype=torch.float32)
    out_right = torch.zeros_like(right, dtype=torch.float32)
    for group in groups:
        outputs = _run_group(forward, sharing, plans, weights, group, left, right)
        for index, window in enumerate(group):
            ys, xs = _window(plans, window)
            batch = slice(index * left.shape[0], (index + 1) * left.shape[0])
            out_left[..., ys, xs] += outputs[0][batch].float() * weights[window]
            out_right[..., ys, xs] += outputs[1][batch].float() * weights[window]
    return out_left, out_right


def _normalised_weights(plans: tuple[TilePlan, TilePlan], windows: list[tuple[int, int]],
                        device: torch.device) -> dict[tuple[int, int], torch.Tensor]:
    """Return each window's weights divided so that they sum to one per pixel."""
    raw = {(row, column): torch.outer(plans[0].weights[row], plans[1].weights[column]).to(device)
           for row, column in windows}
    height = plans[0].starts[-1] + plans[0].size
    width = plans[1].starts[-1] + plans[1].size
    norm = torch.zeros(height, width, device=device)
    for window, weight in raw.items():
        ys, xs = _window(plans, window)
        norm[ys, xs] += weight
    return {window: weight / norm[ys, xs]
            for window, weight in raw.items() for ys, xs in [_window(plans, window)]}


def _run_group(forward: StereoForward, sharing: SharedPooling | None,
               plans: tuple[TilePlan, TilePlan], weights: dict, group: list[tuple[int, int]],
               left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    crops = [_window(plans, window) for window in group]
    left_in = torch.cat([left[..., ys, xs] for ys, xs in crops])
    right_in = torch.cat([right[..., ys, xs] for ys, xs in crops])
    if sharing is None:
        return forward(left_in, right_in)
    per_sample = torch.stack([weights[window] for window in group
                              for _ in range(left.shape[0])])  # (tiles x images) x H x W
    return sharing.run(forward, per_sample, left_in, right_in)


def _window(plans: tuple[TilePlan, TilePlan], window: tuple[int, int]) -> tuple[slice, slice]:
    rows, columns = plans
    top, left = rows.starts[window[0]], columns.starts[window[1]]
    return slice(top, top + rows.size), slice(left, left + columns.size)
