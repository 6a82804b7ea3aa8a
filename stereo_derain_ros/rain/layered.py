"""The cheaper layered-plane mode: Rain100-style streak layers on a few fronto-parallel planes.

Each layer is drawn once on a canvas wider than the image by its own (integer) disparity and cut
out at two offsets, so the right view is the left shifted exactly; streak length and width shrink
as 1/Z and opacity as 1/sqrt(Z) with the layer's depth, and each view hides a layer wherever its
own surface is nearer.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from stereo_derain_ros.pixels import to_uint8
from stereo_derain_ros.rain.effects import add_lens_drops, add_sensor_noise
from stereo_derain_ros.rain.params import RainParams
from stereo_derain_ros.rain.particles import terminal_velocity
from stereo_derain_ros.rain.render import (
    composite,
    extinction_per_metre,
    rain_radiances,
    RainSample,
)
from stereo_derain_ros.rain.scene import StereoScene

TYPICAL_DIAMETER_MM = 2.0
NEAREST_LAYER_M = 0.5


@dataclass(frozen=True)
class StreakLayer:
    """One plane of streaks: its depth, integer disparity and alpha in each view."""

    depth_m: float
    disparity_px: int
    alpha_left: np.ndarray
    alpha_right: np.ndarray


def _motion_kernel(length_px: float, angle_rad: float) -> np.ndarray:
    """Return a normalised line kernel of the given length, angle measured from vertical."""
    size = int(np.ceil(length_px)) | 1
    kernel = np.zeros((size, size), np.float32)
    half = (size - 1) / 2
    dx, dy = np.sin(angle_rad) * length_px / 2, np.cos(angle_rad) * length_px / 2
    cv2.line(kernel, (round(half - dx), round(half - dy)), (round(half + dx), round(half + dy)),
             1.0, 1, cv2.LINE_AA)
    return kernel / kernel.sum()


def streak_canvas(rng: np.random.Generator, height: int, width: int, density: float,
                   length_px: float, width_px: float, angle_rad: float) -> np.ndarray:
    """Return a Photoshop-recipe streak layer whose isolated streaks peak at 1."""
    seeds = (rng.random((height, width)) < density).astype(np.float32)
    seeds *= rng.uniform(0.5, 1.0, size=seeds.shape).astype(np.float32)
    sigma = max(width_px / 2.355, 0.5)
    kernel = _motion_kernel(max(length_px, 1.0), angle_rad)

    def blur(image):
        return cv2.filter2D(cv2.GaussianBlur(image, (0, 0), sigma), -1, kernel,
                            borderType=cv2.BORDER_REFLECT)

    pad = kernel.shape[0] + int(4 * sigma) + 1
    probe = np.zeros((2 * pad + 1, 2 * pad + 1), np.float32)
    probe[pad, pad] = 1.0
    return blur(seeds) / float(blur(probe).max())


def streak_motion(params: RainParams) -> tuple[float, float]:
    """Return (angle from vertical in radians, speed in m/s) of a typical drop against the rig."""
    wind_x, _ = params.wind_mps
    fall = float(terminal_velocity(np.array(TYPICAL_DIAMETER_MM)))
    return (float(np.arctan2(wind_x - params.ego_velocity_mps[0], fall)),
            float(np.hypot(wind_x, fall)))


def streak_length_px(params: RainParams, focal_px: float, depth_m: float) -> float:
    """Length of the streak a typical drop at `depth_m` smears over one exposure."""
    return focal_px * streak_motion(params)[1] * params.exposure_s / depth_m


def streak_layers(scene: StereoScene, params: RainParams, rng: np.random.Generator,
                  layer_count: int) -> list[StreakLayer]:
    """Draw the layers, far to near, occluded per view by that view's own depth."""
    width, height = scene.size
    depth_left, depth_right = scene.depth('left'), scene.depth('right')
    focal_baseline = scene.focal_px * scene.baseline_m
    z_far = min(params.z_far_m, float(depth_left.max()))
    targets = np.geomspace(max(params.z_near_m, NEAREST_LAYER_M),
                           max(z_far, params.z_near_m + NEAREST_LAYER_M), layer_count)[::-1]
    angle, _ = streak_motion(params)
    layers = []
    for target in targets:
        # Integer disparity makes the right view an exact copy of the shifted canvas.
        disparity = max(1, round(focal_baseline / target - scene.doffs_px))
        depth = focal_baseline / (disparity + scene.doffs_px)
        length = streak_length_px(params, scene.focal_px, depth)
        streak_width = scene.focal_px * TYPICAL_DIAMETER_MM * 1e-3 / depth
        # Seeds per pixel chosen so the layer's streak coverage grows with the rain rate only.
        coverage = 0.06 * (params.rain_rate_mm_h / 10.0) ** 0.5 * float(rng.uniform(0.6, 1.4))
        density = coverage / (max(length, 1.0) * max(streak_width, 1.0))
        opacity = min(1.0, params.gain * 0.05 / np.sqrt(depth)) * float(
            np.exp(-extinction_per_metre(params) * depth))
        canvas = opacity * streak_canvas(rng, height, width + disparity, min(density, 0.05),
                                          length, streak_width, angle)
        left = canvas[:, :width]
        right = canvas[:, disparity:disparity + width]
        layers.append(StreakLayer(depth_m=depth, disparity_px=disparity,
                                  alpha_left=np.where(depth_left > depth, left, 0.0),
                                  alpha_right=np.where(depth_right > depth, right, 0.0)))
    return layers


def render_layered_rain(scene: StereoScene, params: RainParams, seed: int,
                        layer_count: int = 4) -> RainSample:
    """Render layered-plane rain; deterministic per seed, exactly stereo-consistent per layer."""
    if layer_count < 1:
        raise ValueError(f'layer_count must be >= 1, got {layer_count}')
    rng = np.random.default_rng(seed)
    layers = streak_layers(scene, params, rng, layer_count)
    effect_seeds = rng.integers(0, 2 ** 63, size=4)
    drop_radiance, airlight = rain_radiances((scene.left, scene.right), params)
    beta = extinction_per_metre(params)
    outputs = []
    for index, (clean, depth) in enumerate(((scene.left, scene.depth('left')),
                                            (scene.right, scene.depth('right')))):
        transmission = np.ones(depth.shape, np.float32)
        for layer in layers:
            alpha = layer.alpha_left if index == 0 else layer.alpha_right
            transmission *= 1.0 - np.clip(alpha, 0.0, 1.0)
        alpha = 1.0 - transmission
        image = composite(clean, alpha, depth, drop_radiance, airlight, beta)
        image, lens_mask = add_lens_drops(image, params.lens_drops,
                                          np.random.default_rng(effect_seeds[index]))
        image = add_sensor_noise(image, params.noise_sigma,
                                 np.random.default_rng(effect_seeds[2 + index]))
        outputs.append((to_uint8(image),
                        (1.0 - (1.0 - alpha) * (1.0 - lens_mask)).astype(np.float32)))
    return RainSample(rainy_left=outputs[0][0], rainy_right=outputs[1][0],
                      clean_left=scene.left, clean_right=scene.right,
                      alpha_left=outputs[0][1], alpha_right=outputs[1][1],
                      disparity_left=scene.disparity_left, disparity_right=scene.disparity_right,
                      params=params, mode='layered', scene_source=scene.source)
