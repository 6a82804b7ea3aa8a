"""The one SGBM matcher of the package, with fixed settings (see `evaluation.disparity`).

A neutral module beside the layers, because three of them match with it: the reserved real
pairs without ground truth (data) take the disparity that places their rain from it, the
evaluation scores every pair with the same call, and the engine's second-view fusion finds
where each pixel lies in the other view with it. Beside the matcher, the two warps by disparity
they share: a view resampled at its matches in the other view, and a left disparity map carried
over to the right view.
"""

import cv2
import numpy as np

from stereo_derain_ros.pixels import as_uint8

BLOCK_SIZE = 5


def sgbm_disparity(left: np.ndarray, right: np.ndarray, num_disparities: int) -> np.ndarray:
    """Return the left-view SGBM disparity in px (float32; NaN where SGBM found no match).

    Images are H×W×3 RGB, uint8 or float in [0, 1]. SGBM matches no pixel among the leftmost
    `num_disparities` columns, so a view no wider than that has no match at all (OpenCV's
    matcher fails on one, or crashes the process).
    """
    if left.shape != right.shape or left.ndim != 3 or left.shape[2] != 3:
        raise ValueError(f'expected two H×W×3 images of one shape, got {left.shape} and '
                         f'{right.shape}')
    if num_disparities <= 0 or num_disparities % 16:
        raise ValueError(f'num_disparities must be a positive multiple of 16, got '
                         f'{num_disparities}')
    if left.shape[1] <= num_disparities:
        return np.full(left.shape[:2], np.nan, np.float32)
    matcher = cv2.StereoSGBM_create(
        minDisparity=0, numDisparities=num_disparities, blockSize=BLOCK_SIZE,
        P1=8 * 3 * BLOCK_SIZE ** 2, P2=32 * 3 * BLOCK_SIZE ** 2, disp12MaxDiff=1,
        uniquenessRatio=10, speckleWindowSize=100, speckleRange=2, preFilterCap=63,
        mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)
    left_bgr = cv2.cvtColor(as_uint8(left), cv2.COLOR_RGB2BGR)
    right_bgr = cv2.cvtColor(as_uint8(right), cv2.COLOR_RGB2BGR)
    raw = matcher.compute(left_bgr, right_bgr).astype(np.float32) / 16.0
    raw[raw < 0] = np.nan
    return raw


class MatchWarp:
    """Resample images of the other view at each pixel's match, for one disparity map.

    `view` is the view the disparity belongs to: a left pixel at column x sees the scene point
    that the right view shows at x - d, a right pixel the one the left view shows at x + d.
    Bilinear; a pixel whose disparity is NaN or whose match falls outside the other view takes
    its own column and is not `known`. One map serves every image warped with it.
    """

    def __init__(self, disparity: np.ndarray, view: str) -> None:
        if view not in ('left', 'right'):
            raise ValueError(f"view must be 'left' or 'right', got {view!r}")
        height, width = disparity.shape
        columns, self._rows = np.meshgrid(np.arange(width, dtype=np.float32),
                                          np.arange(height, dtype=np.float32))
        finite = np.isfinite(disparity)
        direction = -1.0 if view == 'left' else 1.0
        self._columns = columns + direction * np.where(finite, disparity, 0.0).astype(np.float32)
        self.known = finite & (self._columns >= 0) & (self._columns <= width - 1)

    def __call__(self, other: np.ndarray) -> np.ndarray:
        """Return `other` (H×W or H×W×C float32) resampled at the matches."""
        return cv2.remap(other, self._columns, self._rows, interpolation=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)


def warp_from_other_view(other: np.ndarray, disparity: np.ndarray,
                         view: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the other view resampled at each pixel's match, and where that match is known.

    See `MatchWarp`, which warps several images of one view with one map.
    """
    warp = MatchWarp(disparity, view)
    return warp(other), warp.known


def warp_disparity_to_right(disparity_left: np.ndarray) -> np.ndarray:
    """Forward-warp left disparity to the right view, nearest surface winning; holes are +inf."""
    height, width = disparity_left.shape
    disparities = disparity_left.ravel()
    pixels = np.flatnonzero(np.isfinite(disparities))
    values = disparities[pixels]
    columns = pixels % width
    targets = np.round(columns - values).astype(np.int64)
    inside = (targets >= 0) & (targets < width)
    result = np.full(height * width, -np.inf, dtype=np.float32)
    np.maximum.at(result, (pixels - columns + targets)[inside],
                  values[inside].astype(np.float32))
    result[result == -np.inf] = np.inf
    return result.reshape(height, width)
