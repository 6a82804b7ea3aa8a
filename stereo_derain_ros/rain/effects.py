"""Per-camera effects: lens drops and sensor noise, independent in each view by nature."""

import cv2
import numpy as np


def add_lens_drops(image: np.ndarray, count: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return the image with drops on the lens and their opacity mask (float32 H x W).

    A drop on the glass acts as a small lens far from the focus plane: it shows a flipped,
    magnified and blurred view of its surroundings inside a soft-edged disc.
    """
    height, width = image.shape[:2]
    mask_total = np.zeros((height, width), np.float32)
    if count == 0:
        return image, mask_total
    image = image.copy()
    for _ in range(count):
        radius = rng.uniform(0.02, 0.07) * min(height, width)
        centre_x, centre_y = rng.uniform(0, width), rng.uniform(0, height)
        magnification = rng.uniform(1.5, 3.0)
        x0, x1 = int(max(0, centre_x - radius)), int(min(width, centre_x + radius + 1))
        y0, y1 = int(max(0, centre_y - radius)), int(min(height, centre_y + radius + 1))
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        map_x = (centre_x - (xs - centre_x) * magnification).astype(np.float32)
        map_y = (centre_y - (ys - centre_y) * magnification).astype(np.float32)
        refracted = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
        refracted = cv2.GaussianBlur(refracted, (0, 0), max(radius / 6.0, 0.5))
        distance = np.hypot(xs - centre_x, ys - centre_y)
        disc = np.clip((radius - distance) / (0.3 * radius), 0.0, 1.0) * rng.uniform(0.7, 0.95)
        window = image[y0:y1, x0:x1]
        lit = np.clip(refracted * 1.05 + 0.03, 0.0, 1.0)
        image[y0:y1, x0:x1] = window * (1.0 - disc[..., None]) + lit * disc[..., None]
        mask_total[y0:y1, x0:x1] = 1.0 - (1.0 - mask_total[y0:y1, x0:x1]) * (1.0 - disc)
    return image, mask_total


def add_sensor_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Return the image with Gaussian read noise of standard deviation sigma (0-1 scale)."""
    if sigma <= 0:
        return image
    return image + rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
