"""The classical stereo deraining baseline: per-pixel minimum of a view and the other view warped.

Rain streaks are mostly brighter than the background and lie at their own depth, not the scene's,
so after warping the right view onto the left with the scene's disparity a streak rarely covers
the same scene point in both; the darker of the two values is then usually rain-free. Disparity
comes from SGBM on the rainy pair itself (no ground truth), as a user would have it. Pixels
without a disparity keep their own value.
"""

import cv2
import numpy as np

from stereo_derain_ros.evaluation.disparity import right_view_disparity, sgbm_disparity


def _warp_min(view: np.ndarray, other: np.ndarray, disparity: np.ndarray,
              sign: float) -> np.ndarray:
    height, width = disparity.shape
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float32),
                                np.arange(height, dtype=np.float32))
    known = np.isfinite(disparity)
    map_x = columns + sign * np.where(known, disparity, 0.0).astype(np.float32)
    warped = cv2.remap(other, map_x, rows, interpolation=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    usable = known & (map_x >= 0) & (map_x <= width - 1)
    return np.where(usable[..., None], np.minimum(view, warped), view)


def stereo_min_baseline(left: np.ndarray, right: np.ndarray,
                        num_disparities: int) -> tuple[np.ndarray, np.ndarray]:
    """Derain an H×W×3 float [0, 1] pair with the warped per-pixel minimum, both views."""
    left = np.ascontiguousarray(left, dtype=np.float32)
    right = np.ascontiguousarray(right, dtype=np.float32)
    left_disparity = sgbm_disparity(left, right, num_disparities)
    right_disparity = right_view_disparity(left, right, num_disparities)
    # A left pixel at column x sees the scene point that the right view shows at x - d.
    left_out = _warp_min(left, right, left_disparity, -1.0)
    right_out = _warp_min(right, left, right_disparity, 1.0)
    return left_out, right_out
