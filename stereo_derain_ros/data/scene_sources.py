"""The registry of clean stereo scene sources and the mix training draws from.

Every source turns (generator, width, height, photo library) into a `StereoScene` of exactly that
size with exact disparity in both views.
"""

from collections.abc import Callable

import numpy as np

from stereo_derain_ros.data.photos.library import PhotoLibrary
from stereo_derain_ros.data.pseudo_stereo import dead_leaves_scene, photo_layer_scene
from stereo_derain_ros.rain.procedural import procedural_scene
from stereo_derain_ros.rain.scene import motorcycle_scene, StereoScene

SceneSource = Callable[[np.random.Generator, int, int, PhotoLibrary], StereoScene]


def _procedural(rng: np.random.Generator, width: int, height: int, _: PhotoLibrary
                ) -> StereoScene:
    scale = rng.uniform(1.0, 1.5)
    scene = procedural_scene(int(rng.integers(0, 2 ** 62)), width=round(width * scale),
                             height=round(height * scale))
    return _random_crop(scene, rng, width, height)


def _motorcycle(rng: np.random.Generator, width: int, height: int, _: PhotoLibrary
                ) -> StereoScene:
    full_width, full_height = motorcycle_scene().size
    smallest = max(width / full_width, height / full_height)
    if smallest > 1.0:
        raise ValueError(f'a {width} x {height} crop does not fit the {full_width} x '
                         f'{full_height} motorcycle pair')
    scale = float(np.exp(rng.uniform(np.log(smallest), np.log(min(1.0, smallest * 2.5)))))
    scene = motorcycle_scene(scale)
    if rng.random() < 0.5:
        scene = scene.swapped_mirror()
    return _random_crop(scene, rng, width, height)


def _random_crop(scene: StereoScene, rng: np.random.Generator, width: int,
                 height: int) -> StereoScene:
    scene_width, scene_height = scene.size
    x = int(rng.integers(0, scene_width - width + 1))
    y = int(rng.integers(0, scene_height - height + 1))
    return scene.crop(x, y, width, height)


def _photo_layers(rng: np.random.Generator, width: int, height: int,
                  library: PhotoLibrary) -> StereoScene:
    return photo_layer_scene(library, rng, width, height)


def _dead_leaves(rng: np.random.Generator, width: int, height: int,
                 library: PhotoLibrary) -> StereoScene:
    return dead_leaves_scene(library, rng, width, height)


SCENE_SOURCES: dict[str, SceneSource] = {
    'photo-layers': _photo_layers,
    'dead-leaves': _dead_leaves,
    'procedural': _procedural,
    'motorcycle': _motorcycle,
}
# Photographs carry the variety, procedural planes add long receding surfaces. The one real
# pair (Motorcycle) stays out: it is a held-out scene of the preset sets.
TRAINING_MIX: dict[str, float] = {'photo-layers': 0.5, 'dead-leaves': 0.3, 'procedural': 0.2}


def draw_scene(rng: np.random.Generator, width: int, height: int, library: PhotoLibrary,
               mix: dict[str, float] | None = None) -> StereoScene:
    """Draw a source by the mix's weights, then a scene from it."""
    mix = mix or TRAINING_MIX
    unknown = sorted(set(mix) - set(SCENE_SOURCES))
    if unknown:
        raise ValueError(f'unknown scene sources {unknown}; expected some of '
                         f'{sorted(SCENE_SOURCES)}')
    names = list(mix)
    weights = np.array([mix[name] for name in names], dtype=float)
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    return SCENE_SOURCES[name](rng, width, height, library)
