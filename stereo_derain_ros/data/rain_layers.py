"""Rain rendered on its own, as stereo layers that any scene of the same size can receive.

A `RainLayers` sample holds, per view (left, right), the streaks' opacity and the disparity of
the streak that dominates each pixel. Composition (data/compose.py) hides a streak wherever the
scene's surface is nearer (larger disparity) and blends it with a colour and a blend mode drawn
per sample, so rendering scenes and rain separately multiplies the variety of the pools for free.

Both renderers run in every training set, with their parameters drawn widely:
- `layered`: Rain100-style streak planes, each at one integer disparity (exactly consistent),
  with angle, length, width, blur, density and opacity drawn in image terms;
- `particles`: one 3-D drop population projected into both views (physical streak shapes,
  defocus and a continuum of depths), split into depth bins.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from stereo_derain_ros.rain.layered import streak_canvas
from stereo_derain_ros.rain.params import random_rain_params
from stereo_derain_ros.rain.particles import sample_drops, StereoCamera
from stereo_derain_ros.rain.render import streak_depth_layers

BASELINE_M = 0.12  # the canonical rig shared with data.pseudo_stereo (focal length = width)
FAR_M = 1e4
MAX_STREAK_LENGTH_PX = 180.0


@dataclass(frozen=True)
class RainLayers:
    """Rain of one sample as (left, right) pairs: opacity (float32 [0, 1]) and disparity (px)."""

    alpha: tuple[np.ndarray, np.ndarray]
    disparity: tuple[np.ndarray, np.ndarray]


def _merge(alphas: list[np.ndarray], disparities: list[float | np.ndarray],
           shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Combine layers over each other; each pixel keeps the disparity of its strongest layer."""
    transmission = np.ones(shape, np.float32)
    strongest = np.zeros(shape, np.float32)
    disparity = np.zeros(shape, np.float32)
    for alpha, layer_disparity in zip(alphas, disparities):
        transmission *= 1.0 - alpha
        stronger = alpha > strongest
        strongest = np.where(stronger, alpha, strongest)
        disparity = np.where(stronger, np.asarray(layer_disparity, np.float32), disparity)
    return 1.0 - transmission, disparity


@dataclass(frozen=True)
class StreakSpec:
    """One layered-rain plane in image terms."""

    angle_rad: float
    length_px: float
    width_px: float
    blur_sigma: float
    density: float
    opacity: float
    disparity_px: int


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def broad_streak_specs(rng: np.random.Generator, width: int) -> list[StreakSpec]:
    """Draw 1-4 planes: angle +-30 deg (10 %: +-60), length 4-180 px, width 1-4 px, ...

    The lengths reach what the physical renderers draw for the presets at the canonical rig
    (focal length = width): a medium-rain drop 0.5 m from the camera smears over ~110 px of a
    512-px-wide frame in 1/60 s, a heavy-rain one over ~170 px.
    """
    limit = 60.0 if rng.random() < 0.1 else 30.0
    base_angle = np.deg2rad(rng.uniform(-limit, limit))
    specs = []
    for _ in range(int(rng.integers(1, 5))):
        length = _log_uniform(rng, 4.0, MAX_STREAK_LENGTH_PX)
        streak_width = _log_uniform(rng, 1.0, 4.0)
        density = _log_uniform(rng, 5e-4, 3e-2)
        # Seeds that would paint more than ~60 % of the frame make a sheet, not streaks.
        density = min(density, 0.6 / (length * streak_width))
        specs.append(StreakSpec(
            angle_rad=float(base_angle + np.deg2rad(rng.normal(0.0, 4.0))),
            length_px=length, width_px=streak_width, blur_sigma=float(rng.uniform(0.0, 1.5)),
            density=density, opacity=float(rng.uniform(0.1, 0.9)),
            disparity_px=int(round(_log_uniform(rng, 1.0, 0.3 * width)))))
    return specs


def render_layered(rng: np.random.Generator, width: int, height: int) -> RainLayers:
    """Render broad layered rain (planes drawn by `broad_streak_specs`)."""
    return render_streak_specs(broad_streak_specs(rng, width), rng, width, height)


def render_streak_specs(specs: list[StreakSpec], rng: np.random.Generator, width: int,
                        height: int) -> RainLayers:
    """Render planes of streaks: each drawn once and cut out at its two offsets."""
    alphas_left, alphas_right, disparities = [], [], []
    for spec in specs:
        canvas = streak_canvas(rng, height, width + spec.disparity_px, spec.density,
                               spec.length_px, spec.width_px, spec.angle_rad)
        if spec.blur_sigma > 0.3:
            canvas = cv2.GaussianBlur(canvas, (0, 0), spec.blur_sigma)
        canvas = np.clip(spec.opacity * canvas, 0.0, 1.0)
        alphas_left.append(canvas[:, :width])
        alphas_right.append(canvas[:, spec.disparity_px:spec.disparity_px + width])
        disparities.append(spec.disparity_px)
    left = _merge(alphas_left, disparities, (height, width))
    right = _merge(alphas_right, disparities, (height, width))
    return RainLayers((left[0], right[0]), (left[1], right[1]))


def render_particles(rng: np.random.Generator, width: int, height: int) -> RainLayers:
    """Render broad particle rain for the canonical rig, unoccluded, split by depth bin."""
    params = replace(random_rain_params(rng), veil_scale=0.0, lens_drops=0, noise_sigma=0.0)
    camera = StereoCamera(width=width, height=height, focal_px=float(width),
                          baseline_m=BASELINE_M)
    drops = sample_drops(rng, camera, params, FAR_M)
    depth = np.full((height, width), FAR_M, np.float32)
    views = []
    for view in ('left', 'right'):
        layers = streak_depth_layers(camera, view, depth, drops, drops.positions, params,
                                     with_disparity=True)
        views.append(_merge([layer.alpha for layer in layers],
                            [layer.disparity for layer in layers], (height, width)))
    return RainLayers((views[0][0], views[1][0]), (views[0][1], views[1][1]))


RAIN_RENDERERS: dict[str, Callable[[np.random.Generator, int, int], RainLayers]] = {
    'layered': render_layered,
    'particles': render_particles,
}
