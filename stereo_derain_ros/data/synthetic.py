"""On-the-fly synthetic stereo rain: scene, crop, rain and augmentation drawn from one seed."""

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from stereo_derain_ros.rain.layered import render_layered_rain
from stereo_derain_ros.rain.params import rain_params, random_rain_params
from stereo_derain_ros.rain.procedural import procedural_scene
from stereo_derain_ros.rain.render import RainSample, render_rain
from stereo_derain_ros.rain.scene import motorcycle_scene, StereoScene

SCENE_SOURCES = ('procedural', 'motorcycle')
# One real pair cannot carry a dataset alone; procedural scenes give the variety.
DEFAULT_SOURCE_WEIGHTS = {'procedural': 0.8, 'motorcycle': 0.2}


@dataclass(frozen=True)
class SyntheticRainConfig:
    """What a synthetic sample is drawn from; the seed decides everything else."""

    crop_height: int = 128
    crop_width: int = 256
    sources: tuple[str, ...] = SCENE_SOURCES
    source_weights: tuple[float, ...] | None = None  # None: DEFAULT_SOURCE_WEIGHTS
    presets: tuple[str, ...] | None = None  # None: fully randomised rain parameters
    layered_fraction: float = 0.3
    flip_swap: bool = True
    permute_channels: bool = True

    def __post_init__(self):
        unknown = sorted(set(self.sources) - set(SCENE_SOURCES))
        if unknown or not self.sources:
            raise ValueError(f'unknown scene sources {unknown or "(none given)"}; expected some '
                             f'of {list(SCENE_SOURCES)}')
        if self.source_weights is not None and len(self.source_weights) != len(self.sources):
            raise ValueError(f'source_weights {self.source_weights} must have one weight per '
                             f'source {self.sources}')
        if self.crop_height < 8 or self.crop_width < 8:
            raise ValueError(f'crops must be at least 8 x 8, got {self.crop_width} x '
                             f'{self.crop_height}')
        for preset in self.presets or ():
            rain_params(preset)
        if not 0.0 <= self.layered_fraction <= 1.0:
            raise ValueError(f'layered_fraction must be in [0, 1], got {self.layered_fraction}')


def draw_scene(rng: np.random.Generator, source: str, width: int, height: int) -> StereoScene:
    """Return a clean scene of exactly width x height from a source, at a random scale and crop."""
    if source == 'procedural':
        scale = rng.uniform(1.0, 1.5)
        scene = procedural_scene(int(rng.integers(0, 2 ** 62)), width=round(width * scale),
                                 height=round(height * scale))
    else:
        full_width, full_height = motorcycle_scene().size
        smallest = max(width / full_width, height / full_height)
        if smallest > 1.0:
            raise ValueError(f'a {width} x {height} crop does not fit the {full_width} x '
                             f'{full_height} motorcycle pair')
        scale = float(np.exp(rng.uniform(np.log(smallest), np.log(max(smallest, 0.25) * 4))))
        scene = motorcycle_scene(min(scale, 1.0))
    scene_width, scene_height = scene.size
    x = int(rng.integers(0, scene_width - width + 1))
    y = int(rng.integers(0, scene_height - height + 1))
    return scene.crop(x, y, width, height)


def synthesize(config: SyntheticRainConfig, seed: int) -> RainSample:
    """Return the rendered (not yet augmented) sample for a seed."""
    rng = np.random.default_rng(seed)
    weights = config.source_weights or tuple(DEFAULT_SOURCE_WEIGHTS[s] for s in config.sources)
    source = str(rng.choice(config.sources, p=_normalised(weights)))
    scene = draw_scene(rng, source, config.crop_width, config.crop_height)
    if config.presets:
        params = rain_params(str(rng.choice(config.presets)))
    else:
        params = random_rain_params(rng)
    render_seed = int(rng.integers(0, 2 ** 62))
    if rng.random() < config.layered_fraction:
        return render_layered_rain(scene, params, render_seed,
                                   layer_count=int(rng.integers(2, 6)))
    return render_rain(scene, params, render_seed)


def _normalised(weights: tuple[float, ...]) -> np.ndarray:
    weights = np.asarray(weights, dtype=float)
    return weights / weights.sum()


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
            chw = value[..., permutation].transpose(2, 0, 1).astype(np.float32) / 255.0
        else:
            chw = value[None].astype(np.float32)
        result[key] = np.ascontiguousarray(chw)
    return result


def _other_view(key: str) -> str:
    return key.replace('_left', '_right') if key.endswith('_left') else key.replace(
        '_right', '_left')


class SyntheticStereoRain(Dataset):
    """A map-style dataset of rendered stereo rain crops; item i depends only on base_seed + i.

    Items are dicts of float32 tensors: rainy_left, rainy_right, clean_left, clean_right
    (3 x H x W in [0, 1]) and, when asked, alpha_left, alpha_right (1 x H x W) and disparity
    (1 x H x W, left view, px, +inf where unknown). Every item draws from its own seeded
    generator, so DataLoader workers need no reseeding and runs are reproducible.
    """

    def __init__(self, length: int, base_seed: int = 0,
                 config: SyntheticRainConfig | None = None, with_alpha: bool = False,
                 with_disparity: bool = False):
        if length < 1:
            raise ValueError(f'length must be >= 1, got {length}')
        self.length = length
        self.base_seed = base_seed
        self.config = config or SyntheticRainConfig()
        self.with_alpha = with_alpha
        self.with_disparity = with_disparity

    def __len__(self) -> int:
        return self.length

    def seed_of(self, index: int) -> int:
        """Return the seed that fully determines item `index`."""
        return self.base_seed + index

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f'index {index} out of range for {self.length} samples')
        seed = self.seed_of(index)
        sample = synthesize(self.config, seed)
        augment_rng = np.random.default_rng([seed, 1])
        arrays = sample_arrays(sample, augment_rng, self.config.flip_swap,
                               self.config.permute_channels)
        keys = ['rainy_left', 'rainy_right', 'clean_left', 'clean_right']
        if self.with_alpha:
            keys += ['alpha_left', 'alpha_right']
        item = {key: torch.from_numpy(arrays[key]) for key in keys}
        if self.with_disparity:
            item['disparity'] = torch.from_numpy(arrays['disparity_left'])
        return item
