"""Surface textures for procedural scenes: crops of shipped photographs, and patterns."""

import functools

import cv2
import numpy as np

from stereo_derain_ros.pixels import to_unit_float

TEXTURE_SIZE = 256
PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket', 'camera', 'brick', 'grass', 'gravel',
          'hubble_deep_field', 'immunohistochemistry', 'coins', 'moon', 'cat', 'colorwheel')


@functools.lru_cache(maxsize=1)
def _photographs() -> tuple[np.ndarray, ...]:
    from skimage import data

    photos = []
    for name in PHOTOS:
        image = getattr(data, name)()
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(image[..., :3]))
    return tuple(photos)


def random_texture(rng: np.random.Generator) -> np.ndarray:
    """Return a float32 RGB texture in [0, 1], TEXTURE_SIZE square, photo or pattern."""
    kind = rng.choice(['photo', 'photo', 'noise', 'checker', 'stripes', 'bricks'])
    texture = {'photo': photo_crop, 'noise': value_noise, 'checker': checker,
               'stripes': stripes, 'bricks': bricks}[str(kind)](rng)
    gain = rng.uniform(0.7, 1.2, size=3).astype(np.float32)
    return np.clip(texture * gain, 0.0, 1.0)


def photo_crop(rng: np.random.Generator) -> np.ndarray:
    """Return a random square crop of a shipped photograph, resized to TEXTURE_SIZE."""
    photos = _photographs()
    photo = photos[rng.integers(len(photos))]
    height, width = photo.shape[:2]
    side = int(rng.uniform(0.3, 1.0) * min(height, width))
    y, x = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    crop = photo[y:y + side, x:x + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = cv2.resize(crop, (TEXTURE_SIZE, TEXTURE_SIZE), interpolation=cv2.INTER_AREA)
    return to_unit_float(crop)


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return two colours of moderate saturation, as most man-made surfaces have."""
    colours = rng.uniform(0.1, 0.9, size=(2, 1)) + rng.normal(0.0, 0.12, size=(2, 3))
    colours = np.clip(colours, 0.0, 1.0).astype(np.float32)
    return colours[0], colours[1]


def value_noise(rng: np.random.Generator) -> np.ndarray:
    """Return fractal value noise mixed between two colours."""
    field = np.zeros((TEXTURE_SIZE, TEXTURE_SIZE), np.float32)
    amplitude = 1.0
    for octave in range(2, 7):
        cells = 2 ** octave
        grid = rng.random((cells, cells)).astype(np.float32)
        field += amplitude * cv2.resize(grid, (TEXTURE_SIZE, TEXTURE_SIZE),
                                        interpolation=cv2.INTER_CUBIC)
        amplitude *= 0.55
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    low, high = _two_colours(rng)
    return low + field[..., None] * (high - low)


def checker(rng: np.random.Generator) -> np.ndarray:
    """Return a checkerboard with a random cell size."""
    cell = int(rng.integers(8, 64))
    ys, xs = np.mgrid[0:TEXTURE_SIZE, 0:TEXTURE_SIZE]
    board = ((ys // cell + xs // cell) % 2).astype(np.float32)
    low, high = _two_colours(rng)
    return cv2.GaussianBlur(low + board[..., None] * (high - low), (0, 0), 0.8)


def stripes(rng: np.random.Generator) -> np.ndarray:
    """Return soft stripes at a random angle and period."""
    ys, xs = np.mgrid[0:TEXTURE_SIZE, 0:TEXTURE_SIZE].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 40)
    phase = (xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period
    wave = 0.5 + 0.5 * np.sin(phase)
    low, high = _two_colours(rng)
    return low + wave[..., None] * (high - low)


def bricks(rng: np.random.Generator) -> np.ndarray:
    """Return a brick wall: offset rows of noisy bricks separated by mortar."""
    brick_h = int(rng.integers(10, 32))
    brick_w = brick_h * int(rng.integers(2, 4))
    mortar = max(1, brick_h // 8)
    ys, xs = np.mgrid[0:TEXTURE_SIZE, 0:TEXTURE_SIZE]
    row = ys // brick_h
    shifted = xs + (row % 2) * (brick_w // 2)
    in_mortar = ((ys % brick_h) < mortar) | ((shifted % brick_w) < mortar)
    brick_colour, mortar_colour = _two_colours(rng)
    variation = rng.uniform(0.8, 1.2, size=(TEXTURE_SIZE // brick_h + 2,
                                            TEXTURE_SIZE // brick_w + 3)).astype(np.float32)
    tone = variation[row, shifted // brick_w]
    image = np.where(in_mortar[..., None], mortar_colour, brick_colour * tone[..., None])
    grain = value_noise(rng)[..., :1] * 0.2 - 0.1
    return np.clip(image + grain, 0.0, 1.0).astype(np.float32)
