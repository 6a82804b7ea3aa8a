"""On-the-fly synthetic stereo rain samples, drawn from the data layer's registries.

Sample `index` of a set with seed `seed` is fully determined by `seeds.generator('synth', seed,
index)`: the scene source and scene, the rain (a preset rendered into the scene, or broad rain
from either renderer composed with the training camera and photometry) and the augmentation.
This is what `stereo-derain synth` writes; training draws the same kind of samples from cached
pools (data/pools.py), which is much faster.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from stereo_derain_ros.data.compose import compose_pair, CompositionConfig
from stereo_derain_ros.data.photos.library import PhotoLibrary
from stereo_derain_ros.data.rain_layers import RAIN_RENDERERS
from stereo_derain_ros.data.scene_sources import draw_scene, SCENE_SOURCES, TRAINING_MIX
from stereo_derain_ros.data.seeds import generator
from stereo_derain_ros.pixels import to_uint8, to_unit_float
from stereo_derain_ros.rain.layered import render_layered_rain
from stereo_derain_ros.rain.params import rain_params
from stereo_derain_ros.rain.render import RainSample, render_rain


@dataclass(frozen=True)
class SyntheticRainConfig:
    """What a synthetic sample is drawn from; the seed and index decide everything else."""

    crop_height: int = 128
    crop_width: int = 256
    sources: tuple[str, ...] = tuple(TRAINING_MIX)
    source_weights: tuple[float, ...] | None = None  # None: the training mix's weights
    presets: tuple[str, ...] | None = None  # None: broad randomised rain
    renderers: tuple[str, ...] = tuple(sorted(RAIN_RENDERERS))
    flip_swap: bool = True
    permute_channels: bool = True
    photos: str | None = None  # photo cache; None: the default cache or scikit-image's samples
    composition: CompositionConfig = field(default_factory=CompositionConfig)

    def __post_init__(self):
        unknown = sorted(set(self.sources) - set(SCENE_SOURCES))
        if unknown or not self.sources:
            raise ValueError(f'unknown scene sources {unknown or "(none given)"}; expected some '
                             f'of {sorted(SCENE_SOURCES)}')
        if self.source_weights is not None and len(self.source_weights) != len(self.sources):
            raise ValueError(f'source_weights {self.source_weights} must have one weight per '
                             f'source {self.sources}')
        if self.crop_height < 8 or self.crop_width < 8:
            raise ValueError(f'crops must be at least 8 x 8, got {self.crop_width} x '
                             f'{self.crop_height}')
        for preset in self.presets or ():
            rain_params(preset)
        unknown = sorted(set(self.renderers) - set(RAIN_RENDERERS))
        if unknown or not self.renderers:
            raise ValueError(f'unknown rain renderers {unknown or "(none given)"}; expected '
                             f'some of {sorted(RAIN_RENDERERS)}')

    def mix(self) -> dict[str, float]:
        weights = self.source_weights or tuple(TRAINING_MIX.get(name, 1.0)
                                               for name in self.sources)
        return dict(zip(self.sources, weights))


def synthesize(config: SyntheticRainConfig, seed: int, index: int = 0,
               library: PhotoLibrary | None = None) -> RainSample:
    """Return the rendered (not yet augmented) sample `index` of the set with `seed`."""
    rng = generator('synth', seed, index)
    library = library or PhotoLibrary.open_or_builtin(
        Path(config.photos) if config.photos else None, 'train')
    scene = draw_scene(rng, config.crop_width, config.crop_height, library, config.mix())
    renderer = config.renderers[int(rng.integers(len(config.renderers)))]
    if config.presets:
        preset = config.presets[int(rng.integers(len(config.presets)))]
        render = render_rain if renderer == 'particles' else render_layered_rain
        return render(scene, rain_params(preset), int(rng.integers(2 ** 62)))
    rain = RAIN_RENDERERS[renderer](rng, config.crop_width, config.crop_height)
    pair = compose_pair((scene.left, scene.right, scene.disparity_left, scene.disparity_right),
                        (*rain.alpha, *rain.disparity), rng, config.composition)
    return RainSample(to_uint8(pair.rainy[0]), to_uint8(pair.rainy[1]), to_uint8(pair.clean[0]),
                      to_uint8(pair.clean[1]), pair.alpha[0], pair.alpha[1], scene.disparity_left,
                      scene.disparity_right, params=None, mode=renderer,
                      scene_source=scene.source)


def sample_arrays(sample: RainSample, rng: np.random.Generator, flip_swap: bool,
                  permute_channels: bool) -> dict[str, np.ndarray]:
    """Return float32 CHW arrays in [0, 1], augmented identically in both views.

    A horizontal flip alone would turn a rectified pair into one with negative disparity, so it
    only ever comes together with swapping the views; a colour permutation is shared by all.
    """
    arrays = {
        'rainy_left': sample.rainy_left, 'rainy_right': sample.rainy_right,
        'clean_left': sample.clean_left, 'clean_right': sample.clean_right,
        'alpha_left': sample.alpha_left, 'alpha_right': sample.alpha_right,
        'disparity_left': sample.disparity_left, 'disparity_right': sample.disparity_right,
    }
    if flip_swap and rng.random() < 0.5:
        arrays = {_other_view(key): value[:, ::-1] for key, value in arrays.items()}
    permutation = rng.permutation(3) if permute_channels else np.arange(3)
    result = {}
    for key, value in arrays.items():
        if value.ndim == 3:
            chw = to_unit_float(value[..., permutation].transpose(2, 0, 1))
        else:
            chw = value[None].astype(np.float32)
        result[key] = np.ascontiguousarray(chw)
    return result


def _other_view(key: str) -> str:
    return key.replace('_left', '_right') if key.endswith('_left') else key.replace(
        '_right', '_left')


class SyntheticStereoRain(Dataset):
    """A map-style dataset of synthetic stereo rain crops; item i depends only on (seed, i).

    Items are dicts of float32 tensors: rainy_left, rainy_right, clean_left, clean_right
    (3 x H x W in [0, 1]) and, when asked, alpha_left, alpha_right (1 x H x W) and disparity
    (1 x H x W, left view, px). Every item draws from its own seeded generator, so DataLoader
    workers need no reseeding and runs are reproducible.
    """

    def __init__(self, length: int, seed: int = 0, config: SyntheticRainConfig | None = None,
                 with_alpha: bool = False, with_disparity: bool = False):
        if length < 1:
            raise ValueError(f'length must be >= 1, got {length}')
        self.length, self.seed = length, seed
        self.config = config or SyntheticRainConfig()
        self.with_alpha, self.with_disparity = with_alpha, with_disparity

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f'index {index} out of range for {self.length} samples')
        sample = synthesize(self.config, self.seed, index)
        augment_rng = generator('synth-augment', self.seed, index)
        arrays = sample_arrays(sample, augment_rng, self.config.flip_swap,
                               self.config.permute_channels)
        keys = ['rainy_left', 'rainy_right', 'clean_left', 'clean_right']
        if self.with_alpha:
            keys += ['alpha_left', 'alpha_right']
        item = {key: torch.from_numpy(arrays[key]) for key in keys}
        if self.with_disparity:
            item['disparity'] = torch.from_numpy(arrays['disparity_left'])
        return item
