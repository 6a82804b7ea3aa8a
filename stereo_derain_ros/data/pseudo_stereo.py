"""Stereo pairs with exact disparity built from single photographs.

A scene is painted back to front in each view: a photograph on a tilted plane (disparity affine
in the image, so the right view is the texture resampled along each row), then nearer
fronto-parallel layers (photographed cut-outs with their alpha, or photo crops in random
shapes), each at its own whole-pixel disparity. A layer covers what lies behind it in each view
separately, so occlusions and disocclusions come out as a real camera pair would see them, and
each view's disparity map is that of the nearest painted surface.

`photo_layer_scene` paints a few large layers; `dead_leaves_scene` paints many small ones with
power-law sizes (a dead-leaves model, whose statistics are close to natural images').
"""

from dataclasses import dataclass

import cv2
import numpy as np

from stereo_derain_ros.data.photos.library import PhotoLibrary
from stereo_derain_ros.pixels import to_uint8, to_unit_float
from stereo_derain_ros.rain.scene import StereoScene

SHAPES = ('ellipse', 'rectangle', 'triangle', 'polygon')
# Canonical rig of every pseudo-stereo scene: focal length = image width, 12 cm baseline.
BASELINE_M = 0.12
OPAQUE = 0.5  # a layer owns a pixel's disparity where its alpha exceeds this


@dataclass(frozen=True)
class Layer:
    """An RGBA patch (float32, [0, 1]) placed at integer (x, y) in the left view."""

    rgba: np.ndarray
    x: int
    y: int
    disparity: float


def _cover(image: np.ndarray, width: int, height: int, rng: np.random.Generator,
           zoom: float = 1.0) -> np.ndarray:
    """Return a random window of `image` of exactly height x width, rescaled to cover it."""
    image_h, image_w = image.shape[:2]
    scale = max(width / image_w, height / image_h) * zoom
    # Cut the source window first, so a small patch never resizes a whole photograph.
    window_w = min(image_w, int(np.ceil(width / scale)) + 1)
    window_h = min(image_h, int(np.ceil(height / scale)) + 1)
    x = int(rng.integers(0, image_w - window_w + 1))
    y = int(rng.integers(0, image_h - window_h + 1))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image[y:y + window_h, x:x + window_w], (width, height),
                      interpolation=interpolation)


def tilted_plane(texture: np.ndarray, width: int, rng: np.random.Generator,
                 base_disparity: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (left, right, disparity_left, disparity_right) of a textured tilted plane.

    The texture is `width + margin` wide and holds the left view in its first `width` columns;
    disparity d(x, y) = a + gx x + gy y is affine, so the right pixel x_r sees texture column
    x_l = (x_r + a + gy y) / (1 - gx), sampled with bicubic weights.
    """
    height = texture.shape[0]
    gx = float(rng.uniform(-0.02, 0.02))
    gy = float(rng.uniform(-0.01, 0.06))
    rows = np.arange(height, dtype=np.float32)[:, None]
    columns = np.arange(width, dtype=np.float32)[None, :]
    a = base_disparity - gx * width / 2 - gy * height / 2
    lowest = a + min(0.0, gx * width) + min(0.0, gy * height)
    a += max(0.0, 0.5 - lowest)
    disparity_left = (a + gx * columns + gy * rows).astype(np.float32)
    source_x = ((columns + a + gy * rows) / (1.0 - gx)).astype(np.float32)
    source_y = np.broadcast_to(rows, source_x.shape).astype(np.float32)
    right = cv2.remap(texture, source_x, source_y, cv2.INTER_CUBIC,
                      borderMode=cv2.BORDER_REFLECT)
    disparity_right = (a + gx * source_x + gy * rows).astype(np.float32)
    return texture[:, :width].copy(), right, disparity_left, disparity_right


def paint_layer(view: np.ndarray, disparity: np.ndarray, layer: Layer, shift: float) -> None:
    """Alpha-blend a layer into one view (in place), moved left by `shift` px, sub-pixel exact."""
    base = int(np.floor(layer.x - shift))
    fraction = (layer.x - shift) - base
    patch = layer.rgba
    if fraction > 1e-6:
        patch = cv2.copyMakeBorder(patch, 0, 0, 0, 1, cv2.BORDER_CONSTANT, value=0)
        matrix = np.float32([[1, 0, fraction], [0, 1, 0]])
        patch = cv2.warpAffine(patch, matrix, (patch.shape[1], patch.shape[0]),
                               flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
        patch = np.clip(patch, 0.0, 1.0)
    height, width = view.shape[:2]
    x0, y0 = max(base, 0), max(layer.y, 0)
    x1, y1 = min(base + patch.shape[1], width), min(layer.y + patch.shape[0], height)
    if x0 >= x1 or y0 >= y1:
        return
    cut = patch[y0 - layer.y:y1 - layer.y, x0 - base:x1 - base]
    alpha = cut[..., 3:4]
    region = view[y0:y1, x0:x1]
    region[:] = region * (1.0 - alpha) + cut[..., :3] * alpha
    disparity[y0:y1, x0:x1][alpha[..., 0] > OPAQUE] = layer.disparity


def shape_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Return a float32 mask of a random shape filling a height x width box (anti-aliased)."""
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    scale = 4
    mask = np.zeros((height * scale, width * scale), np.uint8)
    h, w = mask.shape
    if shape == 'ellipse':
        cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, 255, -1)
    elif shape == 'rectangle':
        mask[:] = 255
    else:
        corners = 3 if shape == 'triangle' else int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
        radius = rng.uniform(0.6, 1.0, corners)
        points = np.stack([w / 2 * (1 + radius * np.cos(angles)),
                           h / 2 * (1 + radius * np.sin(angles))], axis=1)
        cv2.fillPoly(mask, [points.astype(np.int32)], 255)
    return to_unit_float(cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA))


def photo_patch(library: PhotoLibrary, rng: np.random.Generator, height: int,
                width: int) -> np.ndarray:
    """Return an RGBA float patch: a photo crop cut to a random shape."""
    crop = _cover(library.random_photo(rng), width, height, rng,
                  zoom=float(np.exp(rng.uniform(0.0, np.log(3.0)))))
    return np.dstack([to_unit_float(crop), shape_mask(rng, height, width)])


def cutout_patch(library: PhotoLibrary, rng: np.random.Generator,
                 target_height: int) -> np.ndarray | None:
    """Return an RGBA float patch of a photographed cut-out scaled to about target_height."""
    cutout = library.random_cutout(rng)
    if cutout is None:
        return None
    scale = target_height / cutout.shape[0]
    size = (max(2, round(cutout.shape[1] * scale)), max(2, round(cutout.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    patch = to_unit_float(cv2.resize(cutout, size, interpolation=interpolation))
    return patch[:, ::-1].copy() if rng.random() < 0.5 else patch


def paint_scene(background: tuple[np.ndarray, ...], layers: list[Layer],
                source: str) -> StereoScene:
    """Paint layers (already sorted far to near) over a background plane into both views."""
    left, right, disparity_left, disparity_right = (array.copy() for array in background)
    left, right = to_unit_float(left), to_unit_float(right)
    for layer in layers:
        paint_layer(left, disparity_left, layer, 0.0)
        paint_layer(right, disparity_right, layer, layer.disparity)

    width = left.shape[1]
    return StereoScene(left=to_uint8(left), right=to_uint8(right),
                       disparity_left=disparity_left, disparity_right=disparity_right,
                       focal_px=float(width), baseline_m=BASELINE_M, source=source)


def _background(library: PhotoLibrary, rng: np.random.Generator, width: int, height: int,
                far_fraction: float) -> tuple[tuple[np.ndarray, ...], float]:
    """Return a tilted photo plane at up to far_fraction x width px, and its largest disparity."""
    far_disparity = float(rng.uniform(1.0, far_fraction * width))
    margin = int(np.ceil(far_disparity + 0.1 * width + 0.1 * height)) + 4
    texture = _cover(library.random_photo(rng), width + margin, height, rng)
    background = tilted_plane(texture, width, rng, far_disparity)
    return background, float(background[2].max())


def _disparities(rng: np.random.Generator, count: int, low: float, high: float) -> np.ndarray:
    """Draw layer disparities, far to near, as whole pixels.

    A fronto-parallel layer at a whole-pixel disparity appears in the right view as an exact
    copy, which keeps fine photo texture free of resampling blur; the tilted background
    supplies the sub-pixel disparities.
    """
    return np.sort(np.ceil(rng.uniform(low, high, count)))


def photo_layer_scene(library: PhotoLibrary, rng: np.random.Generator, width: int,
                      height: int) -> StereoScene:
    """Paint a photograph on a tilted plane and 1-5 nearer layers (cut-outs, shaped crops)."""
    background, ceiling = _background(library, rng, width, height, 0.05)
    count = int(rng.integers(1, 6))
    layers = []
    for disparity in _disparities(rng, count, ceiling + 1.0, ceiling + 0.2 * width):
        size = int(rng.uniform(0.2, 0.8) * height)
        patch = cutout_patch(library, rng, size) if rng.random() < 0.6 else None
        if patch is None:
            patch = photo_patch(library, rng, size, int(size * rng.uniform(0.5, 2.0)))
        x = int(rng.integers(-patch.shape[1] // 3, width - patch.shape[1] // 2))
        y = int(rng.integers(-patch.shape[0] // 3, height - patch.shape[0] // 2))
        layers.append(Layer(patch, x, y, float(disparity)))
    return paint_scene(background, layers, 'photo-layers')


def dead_leaves_scene(library: PhotoLibrary, rng: np.random.Generator, width: int,
                      height: int) -> StereoScene:
    """Paint many photo-textured leaves with power-law sizes, each at its own depth."""
    background, ceiling = _background(library, rng, width, height, 0.04)
    count = int(rng.integers(20, 80))
    smallest, largest = 6.0, height / 2.5
    # Radius density ~ r^-3 (scale invariance): inverse-CDF sampling between the bounds.
    uniform = rng.random(count)
    radii = 1.0 / np.sqrt(smallest ** -2 - uniform * (smallest ** -2 - largest ** -2))
    layers = []
    for radius, disparity in zip(radii, _disparities(rng, count, ceiling + 0.5,
                                                     ceiling + 0.15 * width)):
        size_h = max(4, int(2 * radius))
        size_w = max(4, int(2 * radius * rng.uniform(0.6, 1.6)))
        patch = photo_patch(library, rng, size_h, size_w)
        x = int(rng.integers(-size_w // 2, width - size_w // 2))
        y = int(rng.integers(-size_h // 2, height - size_h // 2))
        layers.append(Layer(patch, x, y, float(disparity)))
    return paint_scene(background, layers, 'dead-leaves')
