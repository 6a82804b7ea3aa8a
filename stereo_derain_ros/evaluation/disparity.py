"""OpenCV SGBM disparity with fixed settings, scored against ground truth (EPE, bad-3px).

The clean, rainy and derained pairs of one sample are matched with identical settings so that the
difference in their scores measures only what the rain (or its removal) does to stereo matching,
which is what users downstream of `stereo_image_proc` care about.

Fixed settings (documented in docs/training.md): `StereoSGBM` in `MODE_SGBM_3WAY`, minDisparity 0,
blockSize 5, P1 = 8·3·5², P2 = 32·3·5², disp12MaxDiff 1, uniquenessRatio 10,
speckleWindowSize 100, speckleRange 2, preFilterCap 63. numDisparities is the ground truth's
largest finite disparity plus 8, rounded up to a multiple of 16 (at least 16), or 128 without
ground truth. Scoring skips the leftmost numDisparities columns, where the search range leaves the
image, and the pixels whose ground truth is invalid (inf/NaN/≤0). An SGBM pixel without a match
counts as bad in bad-3px and is left out of the EPE; `density` says how many pixels matched.
"""

from dataclasses import dataclass
import math

import numpy as np

from stereo_derain_ros.sgbm import sgbm_disparity

DEFAULT_NUM_DISPARITIES = 128
BAD_THRESHOLD_PX = 3.0


@dataclass(frozen=True)
class DisparityScore:
    epe: float
    bad3: float
    density: float

    def as_dict(self) -> dict[str, float]:
        return {'epe': self.epe, 'bad3': self.bad3, 'density': self.density}


def num_disparities_for(ground_truth: np.ndarray | None) -> int:
    """Return the SGBM search range for a sample: GT maximum + 8 px, a multiple of 16."""
    if ground_truth is None:
        return DEFAULT_NUM_DISPARITIES
    finite = ground_truth[np.isfinite(ground_truth)]
    if finite.size == 0:
        return DEFAULT_NUM_DISPARITIES
    return max(16, int(math.ceil((float(finite.max()) + 8.0) / 16.0)) * 16)


def right_view_disparity(left: np.ndarray, right: np.ndarray,
                         num_disparities: int) -> np.ndarray:
    """Return the right-view disparity by matching the mirrored pair (right becomes left)."""
    mirrored = sgbm_disparity(right[:, ::-1].copy(), left[:, ::-1].copy(), num_disparities)
    return mirrored[:, ::-1].copy()


def score_disparity(estimate: np.ndarray, ground_truth: np.ndarray,
                    num_disparities: int) -> DisparityScore:
    """Score an SGBM disparity map against dense ground truth (see the module docstring)."""
    if estimate.shape != ground_truth.shape:
        raise ValueError(f'disparity shapes differ: {estimate.shape} vs {ground_truth.shape}')
    valid = np.isfinite(ground_truth) & (ground_truth > 0)
    valid[:, :num_disparities] = False
    total = int(valid.sum())
    if total == 0:
        return DisparityScore(epe=math.nan, bad3=math.nan, density=math.nan)
    matched = valid & np.isfinite(estimate)
    error = np.abs(estimate[matched] - ground_truth[matched])
    bad = int((error > BAD_THRESHOLD_PX).sum()) + (total - int(matched.sum()))
    epe = float(error.mean()) if error.size else math.nan
    return DisparityScore(epe=epe, bad3=bad / total, density=float(matched.sum()) / total)
