"""The particle renderer: one drop population projected as motion-blurred streaks into both views.

Each streak is the drop's 3-D path during the exposure, projected into each rectified view, so a
streak's right-view position is its left-view position shifted by that drop's own disparity.
Photometry follows Garg and Nayar (opacity = time a pixel is covered / exposure, brightness
nearly independent of the background), occlusion and veil use each view's own depth.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from stereo_derain_ros.pixels import to_uint8, to_unit_float
from stereo_derain_ros.rain.effects import add_lens_drops, add_sensor_noise
from stereo_derain_ros.rain.params import RainParams
from stereo_derain_ros.rain.particles import DropPopulation, sample_drops, StereoCamera
from stereo_derain_ros.rain.scene import StereoScene

STREAK_STEP_PX = 1.0  # spacing of the points a streak is splatted with (bilinear, so no gaps)
MAX_POINTS_PER_STREAK = 400
VEIL_DEPTH_CAP_M = 300.0  # sky and other 'infinite' depths get the veil of this distance
FWHM_PER_SIGMA = 2.355


@dataclass(frozen=True)
class RainSample:
    """A rendered pair with its ground truth; images are uint8 RGB, alpha in [0, 1]."""

    rainy_left: np.ndarray
    rainy_right: np.ndarray
    clean_left: np.ndarray
    clean_right: np.ndarray
    alpha_left: np.ndarray
    alpha_right: np.ndarray
    disparity_left: np.ndarray
    disparity_right: np.ndarray
    params: RainParams | None  # None: broad rain composed by the data layer (data/compose.py)
    drops: DropPopulation | None = None
    mode: str = 'particle'
    scene_source: str = ''


def scene_camera(scene: StereoScene) -> StereoCamera:
    """Return the pinhole geometry of a scene (principal point at the image centre)."""
    width, height = scene.size
    return StereoCamera(width=width, height=height, focal_px=scene.focal_px,
                        baseline_m=scene.baseline_m, doffs_px=scene.doffs_px)


def extinction_per_metre(params: RainParams) -> float:
    """Return the veil's extinction coefficient: 0.312 R^0.67 per km, times veil_scale."""
    return params.veil_scale * 0.312 * params.rain_rate_mm_h ** 0.67 / 1000.0


def render_rain(scene: StereoScene, params: RainParams, seed: int) -> RainSample:
    """Render particle rain into a scene; the same seed always gives the same sample."""
    depth_left, depth_right = scene.depth('left'), scene.depth('right')
    max_depth = float(max(depth_left.max(), depth_right.max()))
    rng = np.random.default_rng(seed)
    drops = sample_drops(rng, scene_camera(scene), params, max_depth)
    effect_seeds = rng.integers(0, 2 ** 63, size=4)
    return render_drops(scene, params, drops, drops.positions, effect_seeds,
                        depths=(depth_left, depth_right))


def render_drops(scene: StereoScene, params: RainParams, drops: DropPopulation,
                 positions: np.ndarray, effect_seeds: np.ndarray,
                 depths: tuple[np.ndarray, np.ndarray] | None = None) -> RainSample:
    """Render a given drop population at given positions (the sequence advances positions)."""
    camera = scene_camera(scene)
    if depths is None:
        depths = scene.depth('left'), scene.depth('right')
    clean = (scene.left, scene.right)
    drop_radiance, airlight = rain_radiances(clean, params)
    beta = extinction_per_metre(params)
    outputs = {}
    for index, view in enumerate(('left', 'right')):
        alpha = streak_alpha(camera, view, depths[index], drops, positions, params)
        image = composite(clean[index], alpha, depths[index], drop_radiance, airlight, beta)
        lens_rng = np.random.default_rng(effect_seeds[index])
        noise_rng = np.random.default_rng(effect_seeds[2 + index])
        image, lens_mask = add_lens_drops(image, params.lens_drops, lens_rng)
        image = add_sensor_noise(image, params.noise_sigma, noise_rng)
        outputs[view] = (to_uint8(image),
                         1.0 - (1.0 - alpha) * (1.0 - lens_mask))
    return RainSample(rainy_left=outputs['left'][0], rainy_right=outputs['right'][0],
                      clean_left=scene.left, clean_right=scene.right,
                      alpha_left=outputs['left'][1].astype(np.float32),
                      alpha_right=outputs['right'][1].astype(np.float32),
                      disparity_left=scene.disparity_left, disparity_right=scene.disparity_right,
                      params=params, drops=drops, scene_source=scene.source)


def rain_radiances(clean: tuple[np.ndarray, np.ndarray],
                    params: RainParams) -> tuple[np.ndarray, np.ndarray]:
    """Return (drop radiance, airlight) RGB, shared by both views so streaks match across them.

    A drop refracts light from a wide cone, so it shows roughly the mean environment radiance
    (half desaturated), lifted towards white by drop_brightness as in stylised public sets.
    """
    environment = environment_radiance(mean_rgb(clean) / 255.0)
    drop = drop_radiance(environment, params.drop_brightness)
    airlight = 0.5 * environment + 0.5 * 0.85
    return drop.astype(np.float32), airlight.astype(np.float32)


def mean_rgb(views: tuple[np.ndarray, ...] | list[np.ndarray]) -> np.ndarray:
    """Return the per-channel mean over all views' pixels, in the views' own units."""
    return np.mean([image.reshape(-1, 3).mean(axis=0) for image in views], axis=0)


def environment_radiance(mean_rgb: np.ndarray) -> np.ndarray:
    """Return what a drop refracts: the mean scene radiance (RGB in [0, 1]) half desaturated."""
    return 0.5 * mean_rgb + 0.5 * mean_rgb.mean()


def drop_radiance(environment: np.ndarray, drop_brightness: float) -> np.ndarray:
    """Return a drop's radiance: its environment lifted towards white by `drop_brightness`."""
    return environment + drop_brightness * (1.0 - environment)


def composite(clean: np.ndarray, alpha: np.ndarray, depth: np.ndarray, drop_radiance: np.ndarray,
              airlight: np.ndarray, beta: float) -> np.ndarray:
    """Return float RGB: the background veiled by its own depth, then streaks laid over it."""
    image = to_unit_float(clean)
    if beta > 0:
        transmission = np.exp(-beta * np.minimum(depth, VEIL_DEPTH_CAP_M))[..., None]
        image = image * transmission + airlight * (1.0 - transmission)
    alpha = alpha[..., None]
    return image * (1.0 - alpha) + drop_radiance * alpha


def veiled_views(scene: StereoScene, params: RainParams) -> tuple[np.ndarray, np.ndarray]:
    """Return both views as the veil alone leaves them (uint8), with no streak, drop or noise.

    This is what a derainer that removes every streak but not the veil would return, so scoring
    it against the clean views tells how much of a rainy set's error only dehazing can remove.
    Both renderers veil the background the same way before laying rain over it.
    """
    _, airlight = rain_radiances((scene.left, scene.right), params)
    beta = extinction_per_metre(params)
    left, right = (to_uint8(composite(clean, np.zeros(clean.shape[:2], np.float32),
                                      scene.depth(view), airlight, airlight, beta))
                   for view, clean in (('left', scene.left), ('right', scene.right)))
    return left, right


@dataclass(frozen=True)
class StreakPoints:
    """Points along every drop's projected path in one view, before occlusion."""

    u: np.ndarray
    v: np.ndarray
    z: np.ndarray
    drop: np.ndarray
    share: np.ndarray  # each point's share of its streak (1 / points per streak)
    length_px: np.ndarray  # per drop


def streak_points(camera: StereoCamera, view: str, positions: np.ndarray,
                  drops: DropPopulation, exposure_s: float) -> StreakPoints:
    """Sample each drop's exposure-long 3-D path and project the samples into a view."""
    origin, cx = camera.view_origin(view)
    motion = drops.velocities * exposure_s
    ends = positions + motion

    def project(points):
        z = np.maximum(points[:, 2], 1e-3)
        return (camera.focal_px * (points[:, 0] - origin) / z + cx,
                camera.focal_px * points[:, 1] / z + camera.cy)

    u0, v0 = project(positions)
    u1, v1 = project(ends)
    length = np.hypot(u1 - u0, v1 - v0)
    counts = np.clip(np.ceil(length / STREAK_STEP_PX), 1, MAX_POINTS_PER_STREAK).astype(np.int64)
    drop = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    fraction = (np.arange(len(drop)) - starts[drop] + 0.5) / counts[drop]
    points = positions[drop] + motion[drop] * fraction[:, None]
    u, v = project(points)
    return StreakPoints(u=u, v=v, z=points[:, 2], drop=drop, share=1.0 / counts[drop],
                        length_px=length)


def visible(points: StreakPoints, depth: np.ndarray) -> np.ndarray:
    """Return the mask of points inside the image and in front of the view's own surface."""
    height, width = depth.shape
    inside = ((points.u >= 0) & (points.u < width - 1) & (points.v >= 0)
              & (points.v < height - 1) & (points.z > 0.05))
    columns = np.clip(np.rint(points.u), 0, width - 1).astype(np.int64)
    rows = np.clip(np.rint(points.v), 0, height - 1).astype(np.int64)
    return inside & (points.z < depth[rows, columns])


def streak_alpha(camera: StereoCamera, view: str, depth: np.ndarray, drops: DropPopulation,
                 positions: np.ndarray, params: RainParams) -> np.ndarray:
    """Return the view's streak opacity map, float32 H x W in [0, 1]."""
    transmission = np.ones(depth.shape, np.float32)
    for layer in streak_depth_layers(camera, view, depth, drops, positions, params):
        transmission *= 1.0 - layer.alpha
    return (1.0 - transmission).astype(np.float32)


@dataclass(frozen=True)
class DepthLayer:
    """The streaks of one depth bin in one view.

    Opacity, the bin's near depth (m) and, when asked for, the mass-weighted disparity of the
    streaks at each pixel (px, 0 where none).
    """

    alpha: np.ndarray
    near_m: float
    disparity: np.ndarray | None = None


def streak_depth_layers(camera: StereoCamera, view: str, depth: np.ndarray,
                        drops: DropPopulation, positions: np.ndarray,
                        params: RainParams, with_disparity: bool = False) -> list[DepthLayer]:
    """Return the view's streaks split into depth bins, each blurred and occluded on its own."""
    height, width = depth.shape
    if len(drops) == 0:
        return []
    points = streak_points(camera, view, positions, drops, params.exposure_s)
    keep = visible(points, depth)
    diameter_m = drops.diameters_mm * 1e-3
    speed = np.maximum(np.linalg.norm(drops.velocities, axis=1), 0.5)
    # Garg-Nayar: a pixel is covered for D / v of the exposure T.
    opacity = np.minimum(1.0, params.gain * diameter_m / (speed * params.exposure_s))
    drop = points.drop[keep]
    z = points.z[keep]
    width_px = camera.focal_px * diameter_m[drop] / z
    streak_extent = np.maximum(points.length_px[drop], 1.0)
    mass = (opacity[drop] * np.exp(-extinction_per_metre(params) * z) * width_px
            * streak_extent * points.share[keep])

    volume = drops.volume
    edges = np.geomspace(volume.z_near, volume.z_far, params.depth_bins + 1)
    bins = np.clip(np.searchsorted(edges, z) - 1, 0, params.depth_bins - 1)
    layers = _splat_bilinear(points.u[keep], points.v[keep], mass, bins, params.depth_bins,
                             height, width)
    weighted = _splat_bilinear(points.u[keep], points.v[keep], mass * camera.disparity(z), bins,
                               params.depth_bins, height, width) if with_disparity else None
    result = []
    for index in range(params.depth_bins):
        layer = layers[index]
        if not layer.any():
            continue
        centre = float(np.sqrt(edges[index] * edges[index + 1]))
        in_bin = drop[bins == index]
        typical_width = camera.focal_px * np.median(diameter_m[in_bin]) / centre
        sigma = _blur_sigma(camera.focal_px, centre, typical_width, params)
        disparity = None if weighted is None else weighted[index]
        if sigma > 0.35:
            layer = cv2.GaussianBlur(layer, (0, 0), sigma)
            disparity = None if disparity is None else cv2.GaussianBlur(disparity, (0, 0), sigma)
        if disparity is not None:
            disparity = np.where(layer > 1e-6, disparity / np.maximum(layer, 1e-6), 0.0).astype(
                np.float32)
        # The blur must not leak a layer onto surfaces nearer than its nearest drop.
        layer = np.where(depth > edges[index], np.minimum(layer, 1.0), 0.0)
        result.append(DepthLayer(layer.astype(np.float32), float(edges[index]), disparity))
    return result


def _blur_sigma(focal_px: float, depth: float, width_px: float, params: RainParams) -> float:
    """Return the Gaussian sigma combining the drop's own width and its defocus blur."""
    circle = focal_px * params.aperture_m * abs(1.0 / depth - 1.0 / params.focus_m)
    return float(np.hypot(circle, width_px if width_px > 1.0 else 0.0) / FWHM_PER_SIGMA)


def _splat_bilinear(u: np.ndarray, v: np.ndarray, mass: np.ndarray, bins: np.ndarray,
                    bin_count: int, height: int, width: int) -> np.ndarray:
    """Accumulate point masses into per-bin images with bilinear weights (anti-aliased)."""
    column = u.astype(np.int64)
    row = v.astype(np.int64)
    fu = (u - column).astype(np.float32)
    fv = (v - row).astype(np.float32)
    mass = mass.astype(np.float32)
    base = bins * (height * width) + row * width + column
    right = mass * fu
    left = mass - right
    indices = np.concatenate([base, base + 1, base + width, base + width + 1])
    weights = np.concatenate([left * (1 - fv), right * (1 - fv), left * fv, right * fv])
    total = np.bincount(indices, weights=weights, minlength=bin_count * height * width)
    return total.reshape(bin_count, height, width).astype(np.float32)

