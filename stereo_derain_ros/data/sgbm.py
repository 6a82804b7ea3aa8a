"""The one SGBM matcher of the package, with fixed settings (see `evaluation.disparity`).

It lives in the data layer because the reserved real pairs without ground truth take the
disparity that places their rain from it; the evaluation scores every pair with the same call.
"""

import cv2
import numpy as np

from stereo_derain_ros.pixels import to_uint8

BLOCK_SIZE = 5


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return image if image.dtype == np.uint8 else to_uint8(image)


def sgbm_disparity(left: np.ndarray, right: np.ndarray, num_disparities: int) -> np.ndarray:
    """Return the left-view SGBM disparity in px (float32; NaN where SGBM found no match).

    Images are H×W×3 RGB, uint8 or float in [0, 1].
    """
    if left.shape != right.shape or left.ndim != 3 or left.shape[2] != 3:
        raise ValueError(f'expected two H×W×3 images of one shape, got {left.shape} and '
                         f'{right.shape}')
    if num_disparities <= 0 or num_disparities % 16:
        raise ValueError(f'num_disparities must be a positive multiple of 16, got '
                         f'{num_disparities}')
    matcher = cv2.StereoSGBM_create(
        minDisparity=0, numDisparities=num_disparities, blockSize=BLOCK_SIZE,
        P1=8 * 3 * BLOCK_SIZE ** 2, P2=32 * 3 * BLOCK_SIZE ** 2, disp12MaxDiff=1,
        uniquenessRatio=10, speckleWindowSize=100, speckleRange=2, preFilterCap=63,
        mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY)
    left_bgr = cv2.cvtColor(_to_uint8(left), cv2.COLOR_RGB2BGR)
    right_bgr = cv2.cvtColor(_to_uint8(right), cv2.COLOR_RGB2BGR)
    raw = matcher.compute(left_bgr, right_bgr).astype(np.float32) / 16.0
    raw[raw < 0] = np.nan
    return raw
