"""The classical stereo deraining baseline: per-pixel minimum of a view and the other view warped.

Rain streaks are mostly brighter than the background and lie at their own depth, not the scene's,
so after warping the right view onto the left with the scene's disparity a streak rarely covers
the same scene point in both; the darker of the two values is then usually rain-free. Disparity
comes from SGBM on the rainy pair itself (no ground truth), as a user would have it. Pixels
without a disparity keep their own value.
"""

import numpy as np

from stereo_derain_ros.evaluation.disparity import right_view_disparity, sgbm_disparity
from stereo_derain_ros.sgbm import warp_from_other_view


def _warp_min(image: np.ndarray, other: np.ndarray, disparity: np.ndarray,
              view: str) -> np.ndarray:
    warped, known = warp_from_other_view(other, disparity, view)
    return np.where(known[..., None], np.minimum(image, warped), image)


def stereo_min_baseline(left: np.ndarray, right: np.ndarray,
                        num_disparities: int) -> tuple[np.ndarray, np.ndarray]:
    """Derain an H×W×3 float [0, 1] pair with the warped per-pixel minimum, both views."""
    left = np.ascontiguousarray(left, dtype=np.float32)
    right = np.ascontiguousarray(right, dtype=np.float32)
    left_disparity = sgbm_disparity(left, right, num_disparities)
    right_disparity = right_view_disparity(left, right, num_disparities)
    left_out = _warp_min(left, right, left_disparity, 'left')
    right_out = _warp_min(right, left, right_disparity, 'right')
    return left_out, right_out
