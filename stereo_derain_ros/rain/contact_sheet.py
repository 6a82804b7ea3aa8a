"""A contact sheet of every preset on a real and a procedural scene, for eyes, not for metrics.

Regenerate with `stereo-derain synth --contact-sheet docs/images/rain_presets.png`.
"""

from pathlib import Path

import cv2
import numpy as np

from stereo_derain_ros.rain.params import PRESETS
from stereo_derain_ros.rain.procedural import procedural_scene
from stereo_derain_ros.rain.render import render_rain
from stereo_derain_ros.rain.scene import motorcycle_scene

TILE_WIDTH = 296
PROCEDURAL_SEED = 3


def label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    (text_width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    cv2.rectangle(tile, (0, 0), (text_width + 8, 20), (0, 0, 0), cv2.FILLED)
    cv2.putText(tile, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return tile


def signed(difference: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """Show a signed H×W×C difference (0-255 units) as grey around mid-grey, `gain` times stronger.

    Rain left in an image is a few grey levels: amplified around mid-grey, bright streaks show
    white and what a correction took too far shows dark.
    """
    grey = np.clip(128.0 + gain * difference.astype(np.float64).mean(axis=2), 0, 255)
    return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)


def contact_sheet(seed: int = 0) -> np.ndarray:
    """Return an RGB sheet: one row per (scene, preset), rainy left | rainy right | alpha."""
    real = motorcycle_scene(TILE_WIDTH / motorcycle_scene().size[0])
    width, height = real.size
    synthetic = procedural_scene(PROCEDURAL_SEED, width=width, height=height)
    rows = []
    for scene_name, scene in (('motorcycle', real), ('procedural', synthetic)):
        for preset, params in PRESETS.items():
            sample = render_rain(scene, params, seed)
            alpha = np.repeat((np.clip(sample.alpha_left, 0, 1) * 255).astype(np.uint8)[..., None],
                              3, axis=2)
            rows.append(np.concatenate([
                label(sample.rainy_left, f'{preset} / {scene_name}: rainy left'),
                label(sample.rainy_right, 'rainy right'),
                label(alpha, 'rain alpha (left)')], axis=1))
    return np.concatenate(rows, axis=0)


def write_contact_sheet(path: str | Path, seed: int = 0) -> Path:
    """Write the sheet as a palette PNG (kept small enough to commit) and return its path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(contact_sheet(seed)).quantize(colors=256, dither=Image.Dither.NONE)
    image.save(path, optimize=True)
    return path
