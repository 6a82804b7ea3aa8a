"""A contact sheet of training samples across scene sources, renderers, colour and monochrome.

Regenerate with `stereo-derain synth --training-sheet docs/images/training_samples.png`.
"""

from pathlib import Path

import numpy as np

from stereo_derain_ros.data.compose import CompositionConfig
from stereo_derain_ros.data.photos.library import PhotoLibrary
from stereo_derain_ros.data.rain_layers import RAIN_RENDERERS
from stereo_derain_ros.data.scene_sources import SCENE_SOURCES
from stereo_derain_ros.data.synthetic import synthesize, SyntheticRainConfig
from stereo_derain_ros.rain.contact_sheet import label

TILE = (320, 160)


def training_sheet(library: PhotoLibrary, seed: int = 0) -> np.ndarray:
    """Return an RGB sheet of 16 rows (rainy left | clean left): 4 sources x 2 renderers x 2.

    The Motorcycle rows show the renderers on the real pair, which training does not use.
    """
    rows = []
    for source in SCENE_SOURCES:
        for renderer in sorted(RAIN_RENDERERS):
            for mono in (False, True):
                config = SyntheticRainConfig(
                    crop_width=TILE[0], crop_height=TILE[1], sources=(source,),
                    renderers=(renderer,),
                    composition=CompositionConfig(rain_free=0.0, mono=float(mono)))
                sample = synthesize(config, seed, len(rows), library)
                camera = 'mono' if mono else 'colour'
                rows.append(np.concatenate([
                    label(sample.rainy_left, f'{source} / {renderer} / {camera}: rainy'),
                    label(sample.clean_left, 'clean target')], axis=1))
    return np.concatenate(rows, axis=0)


def write_training_sheet(path: str | Path, library: PhotoLibrary, seed: int = 0) -> Path:
    """Write the sheet as a JPEG (photographs compress far better than as PNG)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(training_sheet(library, seed)).save(path, quality=85, optimize=True)
    return path
