"""Rain renderer: stereo consistency, occlusion, determinism, preset severity, sequence, layers."""

import cv2
import numpy as np
import pytest

from stereo_derain_ros.rain import (
    motorcycle_scene,
    PRESETS,
    rain_params,
    RainSequence,
    render_layered_rain,
    render_rain,
    StereoScene,
)
from stereo_derain_ros.rain.layered import streak_layers
from stereo_derain_ros.rain.particles import drops_per_cubic_metre
from stereo_derain_ros.rain.render import scene_camera, streak_points, visible


def flat_scene(width=96, height=64, disparity=2.0, focal_px=100.0, baseline_m=0.2):
    """Return a uniform grey scene at one depth, optionally with a nearer central block."""
    image = np.full((height, width, 3), 90, np.uint8)
    disparity_map = np.full((height, width), disparity, np.float32)
    return StereoScene(image, image.copy(), disparity_map, disparity_map.copy(),
                       focal_px=focal_px, baseline_m=baseline_m)


def correlation(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def streak_disparity_map(scene, sample):
    """Return, per left pixel, the disparity of the nearest visible streak (NaN where none).

    This is the exact correspondence of the rain layer, which differs from the scene's; the
    renderer does not need it, only this measurement of its stereo consistency.
    """
    camera = scene_camera(scene)
    drops = sample.drops
    points = streak_points(camera, 'left', drops.positions, drops, sample.params.exposure_s)
    keep = visible(points, scene.depth('left'))
    width, height = scene.size
    flat = (np.rint(points.v[keep]).astype(np.int64) * width
            + np.rint(points.u[keep]).astype(np.int64))
    result = np.full(height * width, -np.inf)
    np.maximum.at(result, flat, camera.disparity(points.z[keep]))
    result[~np.isfinite(result)] = np.nan
    return result.reshape(height, width).astype(np.float32)


def rain_consistency(scene, sample):
    """Return corr(left alpha, right alpha warped by each streak's disparity) and unwarped corr.

    Pixels whose streak falls outside the right image are left out; both maps get a 1 px blur so
    that the sub-pixel anti-aliasing of thin lines does not count as inconsistency.
    """
    height, width = sample.alpha_left.shape
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    streak_disparity = streak_disparity_map(scene, sample)
    has_streak = ~np.isnan(streak_disparity)
    disparity = np.where(has_streak, streak_disparity, 0.0).astype(np.float32)
    seen_by_right = has_streak & (xs - disparity >= 0)
    warped = cv2.remap(sample.alpha_right, xs - disparity, ys, cv2.INTER_LINEAR)
    left = np.where(has_streak & ~seen_by_right, 0.0, sample.alpha_left).astype(np.float32)
    warped = np.where(seen_by_right, warped, 0.0).astype(np.float32)
    left, warped = (cv2.GaussianBlur(image, (0, 0), 1.0) for image in (left, warped))
    return correlation(left, warped), correlation(sample.alpha_left, sample.alpha_right)


def test_particle_rain_is_stereo_consistent_on_a_real_pair():
    scene = motorcycle_scene(0.25)
    params = rain_params('medium', max_drops=300, aperture_m=0.0, veil_scale=0.0)
    sample = render_rain(scene, params, seed=3)
    warped, unwarped = rain_consistency(scene, sample)
    assert warped >= 0.8
    assert abs(unwarped) < 0.2


def test_particle_streak_shifts_by_its_own_disparity():
    scene = flat_scene(disparity=1.0)
    sample = render_rain(scene, rain_params('light', max_drops=1, z_near_m=2.0, veil_scale=0.0,
                                            aperture_m=0.0), seed=1)
    assert len(sample.drops) == 1
    depth = sample.drops.positions[0, 2]
    expected = scene.focal_px * scene.baseline_m / depth
    columns = np.arange(scene.size[0])
    centroid_left = (sample.alpha_left.sum(0) * columns).sum() / sample.alpha_left.sum()
    centroid_right = (sample.alpha_right.sum(0) * columns).sum() / sample.alpha_right.sum()
    assert centroid_left - centroid_right == pytest.approx(expected, abs=0.3)


def test_no_rain_behind_a_near_surface():
    scene = flat_scene(width=96, height=64, disparity=1.0)
    near_disparity = scene.focal_px * scene.baseline_m / 1.0  # a surface at 1 m
    disparity = scene.disparity_left.copy()
    disparity[16:48, 24:72] = near_disparity
    right = scene.disparity_right.copy()
    right[16:48, 24 - int(near_disparity):72 - int(near_disparity)] = near_disparity
    scene = StereoScene(scene.left, scene.right, disparity, right, scene.focal_px,
                        scene.baseline_m)
    # All drops lie beyond the near surface: it must stay dry, its surroundings must not.
    params = rain_params('heavy', z_near_m=1.2, aperture_m=0.0, veil_scale=0.0)
    sample = render_rain(scene, params, seed=5)
    assert sample.alpha_left[16:48, 24:72].max() == 0.0
    assert sample.alpha_left[:, :20].max() > 0.05
    assert sample.alpha_right[16:48, 24 - int(near_disparity):72 - int(near_disparity)].max() == 0


def test_same_seed_same_sample_other_seed_other_sample():
    scene = motorcycle_scene(0.2)
    first = render_rain(scene, PRESETS['medium'], seed=7)
    again = render_rain(scene, PRESETS['medium'], seed=7)
    other = render_rain(scene, PRESETS['medium'], seed=8)
    assert np.array_equal(first.rainy_left, again.rainy_left)
    assert np.array_equal(first.alpha_right, again.alpha_right)
    assert not np.array_equal(first.rainy_left, other.rainy_left)
    assert np.array_equal(first.clean_left, scene.left)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


@pytest.mark.parametrize('mode', ['particle', 'layered'])
def test_presets_are_ordered_by_severity(mode):
    scene = motorcycle_scene(0.3)
    render = render_rain if mode == 'particle' else render_layered_rain
    scores = []
    for name in ('light', 'medium', 'heavy', 'torrential'):
        samples = [render(scene, PRESETS[name], seed) for seed in range(2)]
        scores.append(np.mean([psnr(s.rainy_left, s.clean_left) for s in samples]))
    assert scores == sorted(scores, reverse=True), scores


def test_drop_count_is_capped_and_far_rain_folds_into_the_veil():
    scene = motorcycle_scene(0.3)
    params = rain_params('torrential', max_drops=2000)
    assert drops_per_cubic_metre(params.rain_rate_mm_h) > 1000
    sample = render_rain(scene, params, seed=0)
    assert len(sample.drops) <= 2000
    assert sample.drops.volume.z_far < scene.depth('left').max()


def test_layered_rain_is_exactly_stereo_consistent():
    scene = flat_scene(width=128, height=64, disparity=0.5)
    layers = streak_layers(scene, rain_params('heavy'), np.random.default_rng(0), 3)
    assert len({layer.disparity_px for layer in layers}) == 3
    for layer in layers:
        d = layer.disparity_px
        # right(x) == left(x + d): compare the overlap of the two views.
        left, right = layer.alpha_left[:, d:], layer.alpha_right[:, :-d]
        assert correlation(left, right) >= 0.99
        assert correlation(layer.alpha_left, layer.alpha_right) < 0.5


def test_layered_rain_hides_layers_behind_nearer_surfaces():
    scene = flat_scene(width=96, height=64, disparity=0.5)
    near = scene.disparity_left.copy()
    near[:, :48] = scene.focal_px * scene.baseline_m / 0.3  # nearer than every layer
    scene = StereoScene(scene.left, scene.right, near, near.copy(), scene.focal_px,
                        scene.baseline_m)
    sample = render_layered_rain(scene, rain_params('torrential', veil_scale=0.0), seed=2)
    assert sample.alpha_left[:, :48].max() == 0.0
    assert sample.alpha_left[:, 48:].max() > 0.05


def test_sequence_moves_the_same_rain_and_is_repeatable():
    scene = motorcycle_scene(0.2)
    sequence = RainSequence(scene, rain_params('heavy', noise_sigma=0.01), seed=4)
    start, later = sequence.frame(0.0), sequence.frame(1 / 30)
    assert correlation(start.alpha_left, later.alpha_left) < 0.5
    assert np.array_equal(sequence.frame(1 / 30).rainy_left, later.rainy_left)
    positions = sequence.drops.at_time(1 / 30)
    moved_down = positions[:, 1] - sequence.drops.positions[:, 1]
    assert np.median(moved_down) > 0.05  # ~1/30 s of falling at several m/s
    assert len(positions) == len(sequence.drops)
    # Long after, drops have wrapped around but still fill the same volume.
    far_future = sequence.drops.at_time(100.0)
    volume = sequence.drops.volume
    top, bottom = volume.y_range(far_future[:, 2])
    assert np.all((far_future[:, 1] >= top - 1e-9) & (far_future[:, 1] <= bottom + 1e-9))
    assert sequence.frame(100.0).alpha_left.mean() > 0.2 * start.alpha_left.mean()


def test_lens_drops_and_noise_differ_between_views():
    scene = flat_scene(width=96, height=64)
    params = rain_params('light', max_drops=1, lens_drops=3, noise_sigma=0.02)
    sample = render_rain(scene, params, seed=9)
    assert sample.alpha_left.max() > 0.5
    assert not np.allclose(sample.alpha_left, sample.alpha_right)
    assert sample.rainy_left.std() > 1.0


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match='unknown rain preset'):
        rain_params('drizzle')
    with pytest.raises(ValueError, match='z_far_m'):
        rain_params('light', z_far_m=0.1)
    with pytest.raises(ValueError, match='unknown rain parameters'):
        rain_params('light', rate=3)
