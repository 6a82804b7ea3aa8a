"""Second-view fusion: where the network took rain away, move towards the other view's pixel.

What the network leaves of a streak in one view mostly lies over background that the other view
sees clear, since a streak sits at its own depth and the background at another (docs/model_card.md,
"What the second view is worth"). The network's own exchange runs at 1/8 and 1/16 resolution, too
coarse to carry that detail, so this step matches the derained pair at full resolution with the
package's SGBM and, on the pixels of each view that the network darkened (it found rain there) and
whose match in the other view agrees within a few grey levels (`FusionSettings`), moves part of the
way to that match. Where the network changed nothing (rain-free frames) it changes nothing either.
The settings were chosen on training photographs with fresh rain, never on the held-out sets
(`tools/view_fusion_tuning.py`). The right view's disparity is the left one's splatted onto the
right view, which costs no second match. It runs on the host (SGBM is OpenCV's, on the CPU)
whatever the network's device.
"""

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from stereo_derain_ros.pixels import to_uint8
from stereo_derain_ros.sgbm import sgbm_disparity, warp_from_other_view


@dataclass(frozen=True)
class FusionSettings:
    """How far a view moves towards its match; the defaults are the engine's.

    `agree_grey`: grey levels (0-255) within which a view and the other view's match must agree
    to be blended; beyond it the match is another surface or a streak the network left in the
    other view. `full_weight_grey`: the network's darkening (grey levels) at which the blend
    reaches its full weight; it rises linearly from none, so pixels the network hardly touched
    stay as they are. `max_weight`: the largest share of the other view's pixel taken (0.5: a
    mean of the two views).
    """

    agree_grey: float = 30.0
    full_weight_grey: float = 10.0
    max_weight: float = 0.5


_CHANNEL_SUM = np.ones((1, 3), np.float32)


def right_disparity_from_left(disparity: np.ndarray) -> np.ndarray:
    """Return the right view's disparity (NaN where unseen) from the left view's.

    Each matched left pixel x lands on the right pixel x - d; where two land on one pixel, the
    larger disparity (the nearer surface, the one the right view sees) wins.
    """
    height, width = disparity.shape
    splatted = np.full(height * width, -1.0, np.float32)
    rows, columns = np.nonzero(np.isfinite(disparity))
    values = disparity[rows, columns]
    targets = np.rint(columns - values).astype(np.int64)
    inside = targets >= 0
    np.maximum.at(splatted, rows[inside] * width + targets[inside], values[inside])
    splatted[splatted < 0] = np.nan
    return splatted.reshape(height, width)


def blend_view(rainy: np.ndarray, derained: np.ndarray, other: np.ndarray,
               disparity: np.ndarray, view: str,
               settings: FusionSettings = FusionSettings()) -> np.ndarray:
    """Blend one derained view towards the other derained view at its disparity (NaN: none).

    Images are H×W×3 float32 in [0, 1]; `view` ('left' or 'right') names the blended view.
    """
    warped, known = warp_from_other_view(other, disparity, view)
    gap = warped - derained
    # Channel sums of 0-1 values are grey levels times 3 / 255 (cv2.transform: a fast sum).
    per_grey = np.float32(3.0 / 255.0)
    darkened = cv2.transform(rainy - derained, _CHANNEL_SUM)
    slope = np.float32(settings.max_weight / (settings.full_weight_grey * per_grey))
    weight = np.clip(darkened * slope, 0.0, settings.max_weight)
    weight[~known | (np.abs(cv2.transform(gap, _CHANNEL_SUM))
                     >= settings.agree_grey * per_grey)] = 0.0
    return derained + weight[..., None] * gap


def fuse_views(rainy_left: torch.Tensor, rainy_right: torch.Tensor, left: torch.Tensor,
               right: torch.Tensor, disparity_range: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse N×3×H×W derained views (floats in [0, 1], any device) with their rainy inputs.

    `disparity_range` is SGBM's search range in pixels (a positive multiple of 16); the leftmost
    that many columns of the left view have no match and stay as the network left them.
    """
    views = [np.ascontiguousarray(tensor.float().permute(0, 2, 3, 1).cpu().numpy())
             for tensor in (rainy_left, rainy_right, left, right)]
    fused_left, fused_right = [], []
    for rainy_l, rainy_r, out_l, out_r in zip(*views):
        disparity = sgbm_disparity(to_uint8(out_l), to_uint8(out_r), disparity_range)
        fused_left.append(blend_view(rainy_l, out_l, out_r, disparity, 'left'))
        fused_right.append(blend_view(rainy_r, out_r, out_l,
                                      right_disparity_from_left(disparity), 'right'))
    return tuple(torch.from_numpy(np.stack(fused)).permute(0, 3, 1, 2).to(left.device)
                 for fused in (fused_left, fused_right))
