"""The clean rectified stereo scene that rain is rendered into, and the real Middlebury pair."""

from dataclasses import dataclass, replace
import functools

import cv2
import numpy as np

from stereo_derain_ros.sgbm import warp_disparity_to_right


@dataclass(frozen=True)
class StereoScene:
    """A clean rectified pair with dense disparity in both views and the camera geometry.

    Disparity follows the rectified convention: a left pixel at column x sees the same point as
    the right pixel at column x - d, and depth is Z = focal_px * baseline_m / (d + doffs_px).
    Invalid disparity is +inf.
    """

    left: np.ndarray
    right: np.ndarray
    disparity_left: np.ndarray
    disparity_right: np.ndarray
    focal_px: float
    baseline_m: float
    doffs_px: float = 0.0
    source: str = ''

    def __post_init__(self):
        if self.left.shape != self.right.shape or self.left.ndim != 3 or self.left.shape[2] != 3:
            raise ValueError(f'scene views must be two H x W x 3 images of one size, got '
                             f'{self.left.shape} and {self.right.shape}')
        if self.left.dtype != np.uint8 or self.right.dtype != np.uint8:
            raise ValueError(f'scene views must be uint8 RGB, got {self.left.dtype}')
        for name in ('disparity_left', 'disparity_right'):
            disparity = getattr(self, name)
            if disparity.shape != self.left.shape[:2]:
                raise ValueError(f'{name} has shape {disparity.shape}, expected '
                                 f'{self.left.shape[:2]} like the images')

    @property
    def size(self) -> tuple[int, int]:
        """Return (width, height) in pixels."""
        return self.left.shape[1], self.left.shape[0]

    def depth(self, view: str) -> np.ndarray:
        """Return metric depth per pixel of one view ('left' or 'right'), holes filled."""
        disparity = self.disparity_left if view == 'left' else self.disparity_right
        filled = fill_invalid_disparity(disparity)
        return (self.focal_px * self.baseline_m / np.maximum(filled + self.doffs_px, 1e-3)
                ).astype(np.float32)

    def crop(self, x: int, y: int, width: int, height: int) -> 'StereoScene':
        """Return the same window of both views; disparity keeps its meaning for a shared crop."""
        window = (slice(y, y + height), slice(x, x + width))
        return replace(self, left=self.left[window].copy(), right=self.right[window].copy(),
                       disparity_left=self.disparity_left[window].copy(),
                       disparity_right=self.disparity_right[window].copy())

    def resized(self, scale: float) -> 'StereoScene':
        """Return the scene scaled by `scale`; disparity, focal length and doffs scale with it."""
        width, height = self.size
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        actual = size[0] / width

        def image(array):
            return cv2.resize(array, size, interpolation=cv2.INTER_AREA)

        def disparity(array):
            # Nearest keeps +inf holes as holes instead of smearing them into valid pixels.
            return cv2.resize(array, size, interpolation=cv2.INTER_NEAREST) * np.float32(actual)

        return replace(self, left=image(self.left), right=image(self.right),
                       disparity_left=disparity(self.disparity_left),
                       disparity_right=disparity(self.disparity_right),
                       focal_px=self.focal_px * actual, doffs_px=self.doffs_px * actual)

    def swapped_mirror(self) -> 'StereoScene':
        """Return the pair mirrored horizontally with the views swapped (still a valid pair)."""
        return replace(self, left=self.right[:, ::-1].copy(), right=self.left[:, ::-1].copy(),
                       disparity_left=self.disparity_right[:, ::-1].copy(),
                       disparity_right=self.disparity_left[:, ::-1].copy())


def fill_invalid_disparity(disparity: np.ndarray) -> np.ndarray:
    """Fill non-finite disparity along each row with the smaller (background) valid neighbour.

    Holes are mostly occlusions, which belong to the farther surface; rows with no valid pixel
    at all get the image's smallest valid disparity.
    """
    disparity = np.asarray(disparity, dtype=np.float32)
    valid = np.isfinite(disparity)
    if valid.all():
        return disparity
    if not valid.any():
        raise ValueError('disparity has no finite value to fill holes from')
    height, width = disparity.shape
    columns = np.arange(width)
    last_left = np.maximum.accumulate(np.where(valid, columns, -1), axis=1)
    next_right = np.minimum.accumulate(np.where(valid, columns, width)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(height)[:, None]
    fallback = np.float32(disparity[valid].min())
    from_left = np.where(last_left >= 0, disparity[rows, np.clip(last_left, 0, width - 1)],
                         np.inf)
    from_right = np.where(next_right < width,
                          disparity[rows, np.clip(next_right, 0, width - 1)], np.inf)
    nearest = np.minimum(from_left, from_right)
    nearest = np.where(np.isfinite(nearest), nearest, fallback)
    return np.where(valid, disparity, nearest).astype(np.float32)


# Middlebury 2014 Motorcycle at the quarter resolution scikit-image ships (741 x 500).
MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_BASELINE_M = 0.193001
MOTORCYCLE_DOFFS_PX = 31.086


@functools.lru_cache(maxsize=1)
def _motorcycle_full() -> StereoScene:
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()
    disparity = np.where(np.isfinite(disparity), disparity, np.inf).astype(np.float32)
    return StereoScene(left=left, right=right, disparity_left=disparity,
                       disparity_right=warp_disparity_to_right(disparity),
                       focal_px=MOTORCYCLE_FOCAL_PX, baseline_m=MOTORCYCLE_BASELINE_M,
                       doffs_px=MOTORCYCLE_DOFFS_PX, source='middlebury-motorcycle')


def motorcycle_scene(scale: float = 1.0) -> StereoScene:
    """Return the Middlebury Motorcycle pair from scikit-image, optionally downscaled.

    The right disparity is the left ground truth forward-warped with a z-buffer (holes +inf).
    """
    scene = _motorcycle_full()
    return scene if scale == 1.0 else scene.resized(scale)
