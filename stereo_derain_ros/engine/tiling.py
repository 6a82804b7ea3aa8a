"""Stereo tiling: bound memory by running the model on windows cut at the same place in both views.

A left-view pixel at column x looks for its match in right-view columns [x - d, x]; a right-view
pixel at x looks in left-view columns [x, x + d]. A tile therefore gives a trustworthy left output
only `context` (= d) columns after its left edge and a trustworthy right output only until
`context` columns before its right edge, unless that edge is the image border, where the band is
cut by the camera anyway. Each view gets its own blending weights: zero on the columns without
their band, a linear ramp over `overlap` pixels where neighbouring tiles meet, one elsewhere.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

StereoForward = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TilePlan:
    """Tile positions along one axis and each view's blending weights along it."""

    starts: tuple[int, ...]
    size: int
    left_weights: tuple[torch.Tensor, ...]
    right_weights: tuple[torch.Tensor, ...]


def round_up(value: int, multiple: int) -> int:
    """Return the smallest multiple of `multiple` that is at least `value`."""
    return -(-value // multiple) * multiple


def plan_axis(length: int, size: int, overlap: int, context: int) -> TilePlan:
    """Place tiles of `size` along an axis of `length` so the trusted parts overlap by `overlap`.

    The stride is size - context - overlap; the last tile is pushed back to end at the border.
    """
    if size >= length:
        ones = torch.ones(length)
        return TilePlan((0,), length, (ones,), (ones,))
    stride = size - context - overlap
    if stride < 1:
        raise ValueError(
            f'tile size {size} is too small for {overlap} px overlap plus {context} px of '
            f'disparity context; use tiles larger than {context + overlap}')
    starts = list(range(0, length - size, stride)) + [length - size]
    left_weights, right_weights = [], []
    for start in starts:
        at_start, at_end = start == 0, start + size == length
        left_weights.append(_ramp_weights(size, overlap, context, 0, at_start, at_end))
        right_weights.append(_ramp_weights(size, overlap, 0, context, at_start, at_end))
    return TilePlan(tuple(starts), size, tuple(left_weights), tuple(right_weights))


def _ramp_weights(size: int, overlap: int, skip_start: int, skip_end: int,
                  at_start: bool, at_end: bool) -> torch.Tensor:
    """Build 1-D weights: zero on skipped columns, ramps inside the image, never zero elsewhere."""
    weights = torch.ones(size)
    ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
    if not at_start:
        weights[:skip_start] = 0.0
        weights[skip_start:skip_start + overlap] = ramp
    if not at_end:
        end = size - skip_end
        weights[end:] = 0.0
        weights[end - overlap:end] = ramp.flip(0)
    return weights


def tiled_forward(forward: StereoForward, left: torch.Tensor, right: torch.Tensor, *,
                  tile: tuple[int, int], overlap: int, context: int,
                  tile_batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `forward` over tiles of N×3×H×W views and blend the results into full images.

    H and W must already suit the model, and `tile` must be a multiple of what the model needs;
    tiles of several images in the batch and up to `tile_batch` positions run together.
    """
    count, _, height, width = left.shape
    rows = plan_axis(height, tile[0], overlap, 0)
    columns = plan_axis(width, tile[1], overlap, context)
    out_left = torch.zeros_like(left, dtype=torch.float32)
    out_right = torch.zeros_like(right, dtype=torch.float32)
    norm_left = torch.zeros(height, width, device=left.device)
    norm_right = torch.zeros(height, width, device=left.device)
    windows = [(row, column) for row in range(len(rows.starts))
               for column in range(len(columns.starts))]
    for first in range(0, len(windows), tile_batch):
        group = windows[first:first + tile_batch]
        crops = [_window(rows, columns, row, column) for row, column in group]
        left_in = torch.cat([left[..., ys, xs] for ys, xs in crops])
        right_in = torch.cat([right[..., ys, xs] for ys, xs in crops])
        left_out, right_out = forward(left_in, right_in)
        for index, ((row, column), (ys, xs)) in enumerate(zip(group, crops)):
            batch = slice(index * count, (index + 1) * count)
            weight_left = torch.outer(rows.left_weights[row], columns.left_weights[column])
            weight_right = torch.outer(rows.right_weights[row], columns.right_weights[column])
            weight_left = weight_left.to(left.device)
            weight_right = weight_right.to(left.device)
            out_left[..., ys, xs] += left_out[batch].float() * weight_left
            out_right[..., ys, xs] += right_out[batch].float() * weight_right
            norm_left[ys, xs] += weight_left
            norm_right[ys, xs] += weight_right
    return out_left / norm_left, out_right / norm_right


def _window(rows: TilePlan, columns: TilePlan, row: int, column: int) -> tuple[slice, slice]:
    top, left = rows.starts[row], columns.starts[column]
    return slice(top, top + rows.size), slice(left, left + columns.size)
