"""Compose training samples from a scene and a rain sample: camera, rain photometry, sensor.

Drawn per sample, identically in both views where a real rig would be identical:
- thin lines in the scene for a share of samples (wires, poles, ropes, lane edges), at the
  depth of the surface they lie on, so in both views: a streak that moves with the scene is
  scene, and a network that erased bright lines cost a held-out light-rain photo 3.9 dB; on
  request (`scene_grids`, default off) also a patch of evenly spaced lines: fences, panels;
  and (`scene_bands`, default off) long bright soft-edged bands as wide as near streaks: the
  lit edges of doors, frames and poles, which weights trained on streaks up to 180 px long
  darkened on a real rain-free camera pair (37.9 dB);
- camera on the scene (clean and rainy alike): exposure, gamma, white balance, slight defocus,
  a light haze, and for a share of samples a monochrome sensor;
- rain: hidden wherever the scene is nearer than the streak, brightness from white to the
  background's tint (on request, `drop_radiance`: the physical renderers' drop radiance, grey
  on a dark scene), blended alpha-over, screen or additive; 12 % of samples rain-free (target =
  input) and 20 % light rain by default (`train --composition` changes the shares); a mild veil
  at most, since a far veil cannot be restored and a network taught to stretch contrast damages
  clean frames;
- sensor noise and JPEG last, with the same draw on the input and on its target: the camera's
  noise belongs to the scene, so the network learns to remove rain and not to denoise. A
  denoising network smooths real texture, which showed as rain-free frames at 43 dB and light
  rain made 1.6 dB worse while the training input alone carried noise up to 5/255.
"""

from dataclasses import dataclass, fields, replace

import cv2
import numpy as np

from stereo_derain_ros.pixels import to_uint8, to_unit_float
from stereo_derain_ros.rain.params import DROP_BRIGHTNESS_RANGE
from stereo_derain_ros.rain.render import drop_radiance, environment_radiance, mean_rgb

BLENDS = ('alpha', 'screen', 'additive')
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class CompositionConfig:
    """Shares and ranges of the per-sample draws."""

    rain_free: float = 0.12
    light_rain: float = 0.2
    mono: float = 0.3
    scene_lines: float = 0.3
    scene_grids: float = 0.0
    scene_bands: float = 0.0
    drop_radiance: float = 0.0
    defocus: float = 0.2
    haze: float = 0.25
    veil: float = 0.25
    max_veil: float = 0.04
    noise: float = 0.35
    jpeg: float = 0.25

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 <= value <= 1.0:
                raise ValueError(f'composition {item.name} must be a number in [0, 1], '
                                 f'got {value!r}')

    def overridden(self, overrides: dict) -> 'CompositionConfig':
        """Return a copy with some shares changed; training recipes record only the changes."""
        known = [item.name for item in fields(self)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ValueError(f'unknown composition key {", ".join(unknown)}; expected one of '
                             f'{", ".join(known)}')
        return replace(self, **overrides)


@dataclass
class ComposedPair:
    """(left, right) float32 H x W x 3 images in [0, 1], and the visible rain opacity (H x W)."""

    rainy: tuple[np.ndarray, np.ndarray]
    clean: tuple[np.ndarray, np.ndarray]
    alpha: tuple[np.ndarray, np.ndarray]

    def images(self) -> dict[str, np.ndarray]:
        """Return the four images under the dataset contract's names."""
        return {'rainy_left': self.rainy[0], 'rainy_right': self.rainy[1],
                'clean_left': self.clean[0], 'clean_right': self.clean[1]}


def _camera(images: list[np.ndarray], disparity: list[np.ndarray], rng: np.random.Generator,
            config: CompositionConfig) -> list[np.ndarray]:
    gain = float(np.exp(rng.uniform(-0.3, 0.3)))
    gamma = float(np.exp(rng.uniform(-0.2, 0.2)))
    balance = np.exp(rng.normal(0.0, 0.06, 3)).astype(np.float32)
    sigma = float(rng.uniform(0.3, 1.0)) if rng.random() < config.defocus else 0.0
    haze = float(rng.uniform(0.0, 0.15)) if rng.random() < config.haze else 0.0
    haze_colour = np.float32(rng.uniform(0.6, 0.95))
    result = []
    for image, view_disparity in zip(images, disparity):
        image = np.clip(image * (gain * balance), 0.0, 1.0) ** gamma
        if sigma:
            image = cv2.GaussianBlur(image, (0, 0), sigma)
        if haze:
            image = image + haze * _farness(view_disparity)[..., None] * (haze_colour - image)
        result.append(image.astype(np.float32))
    return result


def _scene_lines(views: list[np.ndarray], disparity: list[np.ndarray], rng: np.random.Generator,
                 lines: bool, grid: bool, bands: bool = False) -> list[np.ndarray]:
    """Paint lines and bands onto the left view and carry them to the right by its disparity."""
    height, width = views[0].shape[:2]
    paint = np.zeros((height, width, 3), np.float32)
    cover = np.zeros((height, width), np.float32)
    strokes = [*(_random_lines(rng, height, width) if lines else []),
               *(_line_grid(rng, height, width) if grid else []),
               *(_random_bands(rng, height, width) if bands else [])]
    for mask, colour in strokes:
        paint += mask[..., None] * (colour.astype(np.float32) - paint)
        cover += mask * (1.0 - cover)
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float32),
                                np.arange(height, dtype=np.float32))
    right_disparity = np.where(np.isfinite(disparity[1]), disparity[1], 0.0)
    warp = (columns + right_disparity.astype(np.float32), rows)
    right_paint = cv2.remap(paint, *warp, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    right_cover = cv2.remap(cover, *warp, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    painted = []
    for view, view_paint, view_cover in ((views[0], paint, cover),
                                         (views[1], right_paint, right_cover)):
        colour = view_paint / np.maximum(view_cover, 1e-6)[..., None]
        painted.append(view + view_cover[..., None] * (np.clip(colour, 0.0, 1.0) - view))
    return painted


def _line_colour(rng: np.random.Generator) -> np.ndarray:
    """Mostly near-white, as rain is: colour alone must not tell a line from a streak."""
    return rng.uniform(0.8, 1.0) * (1.0 - rng.uniform(0.0, 0.1, 3)) \
        if rng.random() < 0.7 else rng.uniform(0.0, 1.0, 3)


def _line_mask(rng: np.random.Generator, height: int, width: int, angle: float,
               min_length: float, thickness: tuple[int, int]) -> np.ndarray:
    """Return the [0, 1] coverage of one straight antialiased stroke at a random place."""
    length = rng.uniform(min_length, 1.2) * max(height, width)
    centre = rng.uniform((0.0, 0.0), (width, height))
    step = 0.5 * length * np.array([np.cos(angle), np.sin(angle)])
    line = np.zeros((height, width), np.uint8)
    cv2.line(line, tuple(int(v) for v in centre - step), tuple(int(v) for v in centre + step),
             255, int(rng.integers(*thickness)), cv2.LINE_AA)
    return line.astype(np.float32) / 255.0


def _random_lines(rng: np.random.Generator, height: int, width: int
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return 2-12 (coverage, colour) strokes: wires, poles, ropes, lane edges."""
    strokes = []
    for _ in range(int(rng.integers(2, 13))):
        upright = rng.random() < 0.5
        angle = rng.normal(np.pi / 2, 0.3) if upright else rng.uniform(0.0, np.pi)
        mask = _line_mask(rng, height, width, angle, 0.1, (1, 4)) * rng.uniform(0.6, 1.0)
        strokes.append((mask, _line_colour(rng)))
    return strokes


def _random_bands(rng: np.random.Generator, height: int, width: int
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return 1-4 long soft-edged bands 4-14 px wide, mostly upright as rain falls.

    A near streak is a long bright band with soft edges; so is the lit edge of a door or a pole.
    Without such bands in rain-free scenes, the streak length alone decides, and the weights
    trained on streaks up to 180 px long erased door edges from a real rain-free frame.
    """
    strokes = []
    for _ in range(int(rng.integers(1, 5))):
        band = _line_mask(rng, height, width, rng.normal(np.pi / 2, 0.3), 0.3, (4, 15))
        soft = cv2.GaussianBlur(band, (0, 0), rng.uniform(0.8, 3.0))
        strokes.append((soft * rng.uniform(0.4, 1.0), _line_colour(rng)))
    return strokes


def _line_grid(rng: np.random.Generator, height: int, width: int
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return evenly spaced parallel lines over a patch, one family or a lattice of two.

    Fences, railings, solar panels and window frames are dense, mostly upright thin lines: a
    network taught only on scattered lines erased a solar panel's grid as rain (4-11 dB below
    the input on those validation windows).
    """
    patch = np.zeros((height, width), np.float32)
    patch_h = int(height * rng.uniform(0.3, 1.0))
    patch_w = int(width * rng.uniform(0.3, 1.0))
    top, left = int(rng.integers(height - patch_h + 1)), int(rng.integers(width - patch_w + 1))
    patch[top:top + patch_h, left:left + patch_w] = 1.0
    reach = float(np.hypot(height, width))
    centre = np.array([left + patch_w / 2, top + patch_h / 2])
    angle = rng.normal(np.pi / 2, 0.15) if rng.random() < 0.7 else rng.uniform(0.0, np.pi)
    angles = [angle, angle + np.pi / 2 + rng.normal(0.0, 0.05)] if rng.random() < 0.4 else [angle]
    colour = _line_colour(rng)
    strokes = []
    for family in angles:
        along = np.array([np.cos(family), np.sin(family)])
        across = np.array([-along[1], along[0]])
        spacing, thickness = rng.uniform(3.0, 16.0), int(rng.integers(1, 3))
        line = np.zeros((height, width), np.uint8)
        for offset in np.arange(-reach / 2, reach / 2, spacing):
            middle = centre + offset * across
            cv2.line(line, tuple(int(v) for v in middle - reach * along),
                     tuple(int(v) for v in middle + reach * along), 255, thickness, cv2.LINE_AA)
        strokes.append((line.astype(np.float32) / 255.0 * patch * rng.uniform(0.6, 1.0), colour))
    return strokes


def _farness(disparity: np.ndarray) -> np.ndarray:
    """Return 1 for the farthest surface of a view down to 0 for its nearest."""
    finite = np.where(np.isfinite(disparity), disparity, 0.0)
    return (1.0 - finite / max(float(finite.max()), 1e-3)).astype(np.float32)


def _rain_colour(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    tint = clean.reshape(-1, 3).mean(axis=0)
    tint = tint / max(float(tint.max()), 1e-3)
    colour = 1.0 + float(rng.uniform(0.0, 1.0)) * (tint - 1.0)
    return (colour * rng.uniform(0.75, 1.0)).astype(np.float32)


def _physical_rain_colour(clean: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Draw the physical renderers' drop radiance: dark scenes get grey rain, not near-white."""
    brightness = float(rng.uniform(*DROP_BRIGHTNESS_RANGE))
    return drop_radiance(environment_radiance(mean_rgb(clean)), brightness).astype(np.float32)


def _blend(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray, mode: str) -> np.ndarray:
    alpha = alpha[..., None]
    if mode == 'alpha':
        return image * (1.0 - alpha) + colour * alpha
    if mode == 'screen':
        return 1.0 - (1.0 - image) * (1.0 - alpha * colour)
    return np.minimum(image + alpha * colour, 1.0)


def _sensor(images: tuple[np.ndarray, np.ndarray], rng: np.random.Generator,
            noise_sigma: float, quality: int, mono: bool) -> tuple[np.ndarray, np.ndarray]:
    """Apply one sensor draw (shot noise field, JPEG quality) to a rainy view and its target."""
    shape = (*images[0].shape[:2], 1) if mono else images[0].shape
    field = rng.normal(0.0, noise_sigma, shape).astype(np.float32) if noise_sigma else None
    sensed = []
    for image in images:
        if field is not None:
            image = image + field * np.sqrt(np.maximum(image, 0.0))
        if quality:
            encoded = cv2.imencode('.jpg', to_uint8(image), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
            image = to_unit_float(cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED))
        sensed.append(np.clip(image, 0.0, 1.0))
    return sensed[0], sensed[1]


def _mono(image: np.ndarray) -> np.ndarray:
    return np.repeat((image @ LUMA)[..., None], 3, axis=2)


def compose_pair(scene: tuple[np.ndarray, ...], rain: tuple[np.ndarray, ...],
                 rng: np.random.Generator, config: CompositionConfig | None = None
                 ) -> ComposedPair:
    """Compose one training pair.

    `scene` is (left, right, disparity_left, disparity_right) with uint8 RGB views; `rain` is
    (alpha_left, alpha_right, disparity_left, disparity_right) with alpha in [0, 1].
    """
    config = config or CompositionConfig()
    disparity = [scene[2], scene[3]]
    views = [to_unit_float(scene[0]), to_unit_float(scene[1])]
    lines = rng.random() < config.scene_lines
    # Drawn only when asked for, so that recipes from before grids and bands compose as they did.
    grid = bool(config.scene_grids) and rng.random() < config.scene_grids
    bands = bool(config.scene_bands) and rng.random() < config.scene_bands
    if lines or grid or bands:
        views = _scene_lines(views, disparity, rng, lines, grid, bands)
    clean = _camera(views, disparity, rng, config)
    mono = rng.random() < config.mono
    draw = rng.random()
    noise = float(rng.uniform(0.005, 0.03)) if rng.random() < config.noise else 0.0
    quality = int(rng.integers(60, 96)) if rng.random() < config.jpeg else 0
    if draw < config.rain_free:
        clean = [_mono(image) for image in clean] if mono else clean
        clean = [_sensor((image, image), rng, noise, quality, mono)[0] for image in clean]
        none = np.zeros(clean[0].shape[:2], np.float32)
        return ComposedPair((clean[0], clean[1]), (clean[0], clean[1]), (none, none))
    strength = rng.uniform(0.15, 0.4) if draw < config.rain_free + config.light_rain else \
        rng.uniform(0.6, 1.2)
    # Drawn only when asked for, so that recipes from before compose as they did.
    physical = bool(config.drop_radiance) and rng.random() < config.drop_radiance
    colour = _physical_rain_colour(clean, rng) if physical else _rain_colour(clean[0], rng)
    mode = BLENDS[int(rng.choice(len(BLENDS), p=[0.5, 0.25, 0.25]))]
    veil = float(rng.uniform(0.0, config.max_veil)) if rng.random() < config.veil else 0.0
    rainy, alphas = [], []
    for view in range(2):
        scene_disparity = np.where(np.isfinite(disparity[view]), disparity[view], 0.0)
        alpha = np.clip(rain[view] * strength, 0.0, 1.0) * (rain[2 + view] > scene_disparity)
        alphas.append(alpha.astype(np.float32))
        image = _blend(clean[view], alphas[-1], colour, mode)
        if veil:
            image = image + veil * _farness(disparity[view])[..., None] * (colour - image)
        rainy.append(image)
    if mono:
        clean = [_mono(image) for image in clean]
        rainy = [_mono(image) for image in rainy]
    (rainy[0], clean[0]), (rainy[1], clean[1]) = (
        _sensor((rainy[view], clean[view]), rng, noise, quality, mono) for view in range(2))
    return ComposedPair((rainy[0], rainy[1]), (clean[0], clean[1]), (alphas[0], alphas[1]))
