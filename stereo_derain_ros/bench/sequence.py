"""A rainy stereo sequence held in memory, the benchmarks' common input.

The node and bag benchmarks replay the same frames that the engine is timed on, so their
ratios compare the plumbing, not the content. The frames are the Middlebury Motorcycle pair
scaled to cover the requested size, centre-cropped, with a different rain seed per frame.
"""

import numpy as np

from stereo_derain_ros.rain.params import rain_params
from stereo_derain_ros.rain.render import render_rain
from stereo_derain_ros.rain.scene import motorcycle_scene

StereoFrame = tuple[np.ndarray, np.ndarray]


def rainy_stereo_sequence(width: int, height: int, frames: int, preset: str = 'heavy',
                          seed: int = 0) -> list[StereoFrame]:
    """Return `frames` rainy (left, right) uint8 RGB pairs of `width` × `height` pixels."""
    if width < 1 or height < 1 or frames < 1:
        raise ValueError(f'need a positive size and frame count, got {width}x{height}, {frames}')
    scene = motorcycle_scene()
    scene_width, scene_height = scene.size
    scale = max(width / scene_width, height / scene_height)
    scene = scene.resized(scale)
    scene_width, scene_height = scene.size
    x, y = (scene_width - width) // 2, (scene_height - height) // 2
    scene = scene.crop(max(x, 0), max(y, 0), width, height)
    params = rain_params(preset)
    sequence = []
    for index in range(frames):
        sample = render_rain(scene, params, seed + index)
        sequence.append((sample.rainy_left, sample.rainy_right))
    return sequence
