"""Clean stereo scenes: the real Middlebury pair and procedural scenes with exact disparity."""

import cv2
import numpy as np
import pytest
from scipy import ndimage

from stereo_derain_ros.rain import motorcycle_scene, procedural_scene
from stereo_derain_ros.rain.scene import fill_invalid_disparity


def warp_right_to_left(scene):
    """Return the right image warped into the left view, and pixels seen by both views."""
    height, width = scene.disparity_left.shape
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    disparity = fill_invalid_disparity(scene.disparity_left)
    map_x = xs - disparity
    warped = cv2.remap(scene.right, map_x, ys, cv2.INTER_LINEAR)
    back = cv2.remap(scene.disparity_right, map_x, ys, cv2.INTER_NEAREST)
    visible_in_both = (np.abs(back - disparity) < 0.5) & (map_x >= 0)
    steps = ndimage.maximum_filter(disparity, 3) - ndimage.minimum_filter(disparity, 3)
    return warped, visible_in_both & (steps < 0.5) & np.isfinite(scene.disparity_left)


def mean_abs(a, b, mask):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64))[mask].mean())


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_procedural_disparity_is_exact(seed):
    scene = procedural_scene(seed, width=160, height=96)
    warped, mask = warp_right_to_left(scene)
    assert mask.mean() > 0.4
    assert mean_abs(warped, scene.left, mask) < 2.0
    assert mean_abs(scene.right, scene.left, mask) > 3 * mean_abs(warped, scene.left, mask)


def test_procedural_scene_is_deterministic_and_varied():
    first = procedural_scene(11, width=64, height=32)
    again = procedural_scene(11, width=64, height=32)
    other = procedural_scene(12, width=64, height=32)
    assert np.array_equal(first.left, again.left)
    assert np.array_equal(first.disparity_right, again.disparity_right)
    assert not np.array_equal(first.left, other.left)
    assert first.left.shape == (32, 64, 3) and first.left.dtype == np.uint8
    assert np.isfinite(first.disparity_left).all() and (first.disparity_left > 0).all()


def test_procedural_scene_has_depth_structure():
    scenes = [procedural_scene(seed, 64, 48) for seed in range(6)]
    depths = [scene.depth('left') for scene in scenes]
    # Most scenes hold near objects and a far background (some are indoor walls).
    assert sum(depth.max() / depth.min() > 5 for depth in depths) >= 4
    # A ground plane recedes: disparity falls from the bottom row towards the horizon.
    assert sum(s.disparity_left[-1].mean() > s.disparity_left[24].mean() for s in scenes) >= 3


def test_motorcycle_pair_and_ground_truth():
    scene = motorcycle_scene()
    assert scene.size == (741, 500)
    assert np.isinf(scene.disparity_left).any()  # invalid pixels are +inf, not NaN
    assert not np.isnan(scene.disparity_left).any()
    small = motorcycle_scene(0.5)
    warped, mask = warp_right_to_left(small)
    assert mean_abs(warped, small.left, mask) < 0.5 * mean_abs(small.right, small.left, mask)
    assert small.focal_px == pytest.approx(scene.focal_px * small.size[0] / 741)


def test_scene_depth_fills_holes_and_crop_keeps_disparity():
    scene = motorcycle_scene(0.25)
    depth = scene.depth('left')
    assert np.isfinite(depth).all() and depth.min() > 1.0 and depth.max() < 10.0
    crop = scene.crop(10, 20, 48, 32)
    assert crop.size == (48, 32)
    assert np.array_equal(crop.disparity_left, scene.disparity_left[20:52, 10:58],
                          equal_nan=True)


def test_mismatched_scene_is_rejected():
    scene = procedural_scene(0, 32, 16)
    with pytest.raises(ValueError, match='disparity_left has shape'):
        type(scene)(scene.left, scene.right, scene.disparity_left[:8], scene.disparity_right,
                    scene.focal_px, scene.baseline_m)
