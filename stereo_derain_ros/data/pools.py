"""Rendered pools of scenes and of rain, cached on disk, composed into batches at every step.

Scenes and rain are rendered separately (in parallel processes, with a progress bar) and kept
as compact uint8 / float16 stacks; each training step crops a random scene and a random rain
sample at independent offsets and composes them (data/compose.py), so a pool of N scenes and M
rain samples yields N x M x crops distinct pairs and a step never waits on rendering.

A pool is cached under a name derived from its recipe (kind, count, size, seed, scene mix,
photo library, data version), so a later run, another model or a resume reuses it; a cache is
written through a temporary file, so a half-written one is never read.
"""

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
import hashlib
import json
import os
from pathlib import Path
import time

import numpy as np
from safetensors.numpy import load_file, save_file
import torch
from tqdm import tqdm

from stereo_derain_ros.atomic import atomic_path
from stereo_derain_ros.data.compose import compose_pair, CompositionConfig
from stereo_derain_ros.data.photos.library import PhotoLibrary
from stereo_derain_ros.data.rain_layers import RAIN_RENDERERS
from stereo_derain_ros.data.scene_sources import draw_scene, TRAINING_MIX
from stereo_derain_ros.data.seeds import generator
from stereo_derain_ros.pixels import to_uint8, to_unit_float

DATA_VERSION = 2
VIEWS = ('rainy_left', 'rainy_right', 'clean_left', 'clean_right')
CACHE_WAIT_S = 3600.0


@dataclass(frozen=True)
class PoolRecipe:
    """Everything that decides a pool's content."""

    kind: str  # 'scene' or 'rain'
    split: str  # 'train' or 'val': separate random streams
    count: int
    width: int
    height: int
    seed: int
    library: str  # the photo library's identity (its origin)
    mix: tuple[tuple[str, float], ...] = tuple(TRAINING_MIX.items())

    def key(self) -> str:
        text = json.dumps([DATA_VERSION, self.kind, self.split, self.count, self.width,
                           self.height, self.seed, self.library, self.mix])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


_WORKER: dict = {}


def _init_worker(library: PhotoLibrary) -> None:
    torch.set_num_threads(1)
    _WORKER['library'] = library


def _render_scene(args: tuple[PoolRecipe, int]) -> dict[str, np.ndarray]:
    recipe, index = args
    rng = generator(f'{recipe.split}-scene', recipe.seed, index)
    scene = draw_scene(rng, recipe.width, recipe.height, _WORKER['library'], dict(recipe.mix))
    return {'left': scene.left, 'right': scene.right,
            'disparity_left': _finite(scene.disparity_left),
            'disparity_right': _finite(scene.disparity_right)}


def _finite(disparity: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(disparity), disparity, 0.0).astype(np.float16)


def _render_rain(args: tuple[PoolRecipe, int]) -> dict[str, np.ndarray]:
    recipe, index = args
    rng = generator(f'{recipe.split}-rain', recipe.seed, index)
    renderers = sorted(RAIN_RENDERERS)
    rain = RAIN_RENDERERS[renderers[index % len(renderers)]](rng, recipe.width, recipe.height)

    def disparity(image: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)

    return {'alpha_left': to_uint8(rain.alpha[0]), 'alpha_right': to_uint8(rain.alpha[1]),
            'disparity_left': disparity(rain.disparity[0]),
            'disparity_right': disparity(rain.disparity[1])}


RENDERERS: dict[str, Callable] = {'scene': _render_scene, 'rain': _render_rain}


def render_pool(recipe: PoolRecipe, library: PhotoLibrary, jobs: int = 1,
                progress: bool = True) -> dict[str, np.ndarray]:
    """Render a pool (stacked arrays), in `jobs` processes."""
    render = RENDERERS[recipe.kind]
    tasks = [(recipe, index) for index in range(recipe.count)]
    bar = {'total': recipe.count, 'desc': f'rendering {recipe.kind} pool',
           'disable': not progress, 'leave': False}
    if jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(library,)) as pool:
            items = list(tqdm(pool.map(render, tasks, chunksize=4), **bar))
    else:
        _init_worker(library)
        items = [render(task) for task in tqdm(tasks, **bar)]
    return {name: np.stack([item[name] for item in items]) for name in items[0]}


def cached_pool(recipe: PoolRecipe, library: PhotoLibrary, cache: Path | None, jobs: int = 1,
                progress: bool = True) -> dict[str, np.ndarray]:
    """Load a pool from the cache, or render it and store it there.

    Under torchrun only rank 0 renders; the other ranks wait for its file.
    """
    if cache is None:
        return render_pool(recipe, library, jobs, progress)
    path = Path(cache) / f'{recipe.split}-{recipe.kind}-{recipe.key()}.safetensors'
    if not path.exists() and os.environ.get('RANK', '0') != '0':
        deadline = time.monotonic() + CACHE_WAIT_S
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(2.0)
    if path.exists():
        return load_file(str(path))
    arrays = render_pool(recipe, library, jobs, progress)
    with atomic_path(path) as temporary:
        save_file(arrays, str(temporary), metadata={'recipe': json.dumps(recipe.__dict__)})
    return arrays


class ComposedRainSource:
    """Training batches composed on the fly from a scene pool and a rain pool."""

    def __init__(self, scenes: dict[str, np.ndarray], rain: dict[str, np.ndarray],
                 seed: int, config: CompositionConfig | None = None) -> None:
        self.scenes, self.rain, self.seed = scenes, rain, seed
        self.config = config or CompositionConfig()

    def __len__(self) -> int:
        return len(self.scenes['left'])

    def min_size(self) -> tuple[int, int]:
        return self.scenes['left'].shape[1:3]

    def sample(self, rng: np.random.Generator, crop: tuple[int, int]) -> dict[str, np.ndarray]:
        """Compose one pair of crop size (H, W); views swapped and mirrored half of the time."""
        crop_h, crop_w = crop
        height, width = self.min_size()
        if crop_h > height or crop_w > width:
            raise ValueError(f'crop {crop_h}x{crop_w} does not fit the pools ({height}x{width});'
                             ' use a smaller --crop')
        scene_index = int(rng.integers(len(self)))
        rain_index = int(rng.integers(len(self.rain['alpha_left'])))
        window = _window(rng, height, width, crop_h, crop_w)
        rain_window = _window(rng, height, width, crop_h, crop_w)
        scene = [self.scenes[name][scene_index][window] for name in
                 ('left', 'right', 'disparity_left', 'disparity_right')]
        scene = [scene[0], scene[1], scene[2].astype(np.float32), scene[3].astype(np.float32)]
        rain = [self.rain[name][rain_index][rain_window] for name in
                ('alpha_left', 'alpha_right', 'disparity_left', 'disparity_right')]
        rain = [to_unit_float(rain[0]), to_unit_float(rain[1]), rain[2].astype(np.float32),
                rain[3].astype(np.float32)]
        pair = compose_pair(scene, rain, rng, self.config)
        images = pair.images()
        if rng.random() < 0.5:
            images = {'rainy_left': images['rainy_right'][:, ::-1],
                      'rainy_right': images['rainy_left'][:, ::-1],
                      'clean_left': images['clean_right'][:, ::-1],
                      'clean_right': images['clean_left'][:, ::-1]}
        return images

    def batch(self, batch_size: int, crop: tuple[int, int], generator: torch.Generator,
              augment: bool = True) -> dict[str, torch.Tensor]:
        """Return float N x 3 x H x W tensors for each view; depends only on the generator.

        They keep the samples' H x W x 3 order in memory, i.e. the channels_last layout that
        training runs in, so the trainer takes them without another copy.
        """
        rng = np.random.default_rng(int(torch.randint(2 ** 62, (1,), generator=generator)))
        samples = [self.sample(rng, crop) for _ in range(batch_size)]
        return {view: torch.from_numpy(np.stack([sample[view] for sample in samples])
                                       ).permute(0, 3, 1, 2) for view in VIEWS}


def _window(rng: np.random.Generator, height: int, width: int, crop_h: int,
            crop_w: int) -> tuple[slice, slice]:
    top = int(rng.integers(height - crop_h + 1))
    left = int(rng.integers(width - crop_w + 1))
    return slice(top, top + crop_h), slice(left, left + crop_w)
