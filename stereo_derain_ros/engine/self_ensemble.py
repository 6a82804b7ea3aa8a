"""Self-ensemble: average the network over the flips that keep a rectified pair rectified.

A rectified pair stays a valid pair under two flips: upside down (rows stay epipolar lines) and
mirrored with the views swapped (a mirrored left view is a right view, and disparities stay
positive). Rain stays rain under both. The network is not exactly equivariant to either, so its
errors differ between the flipped passes and their mean is closer to the clean pair: measured
on the shipped weights, four passes gain on every held-out set (docs/model_card.md). Each pass
is a full forward, so the cost is the number of passes.
"""

from collections.abc import Callable

import torch

PairForward = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
_ROWS, _COLUMNS = -2, -1


def _upside_down(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return left.flip(_ROWS), right.flip(_ROWS)


def _mirrored(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror both views and swap them; its own inverse."""
    return right.flip(_COLUMNS), left.flip(_COLUMNS)


def _both(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _mirrored(*_upside_down(left, right))


def _identity(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return left, right


# In the order passes add them; each is its own inverse, so it also maps the outputs back.
_TRANSFORMS = (_identity, _upside_down, _mirrored, _both)


def self_ensemble(forward: PairForward, left: torch.Tensor, right: torch.Tensor,
                  passes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the mean of `forward` over the first `passes` flips, mapped back to the pair.

    The flips are taken in the order identity, upside down, mirrored, both (`passes` 1, 2 or 4,
    checked by `EngineConfig`); one pass calls `forward` on the pair as it is and adds nothing.
    """
    total_left, total_right = forward(left, right)
    if passes == 1:
        return total_left, total_right
    for transform in _TRANSFORMS[1:passes]:
        out_left, out_right = transform(*forward(*transform(left, right)))
        total_left, total_right = total_left + out_left, total_right + out_right
    return total_left / passes, total_right / passes
