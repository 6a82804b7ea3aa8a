"""Resolve a data spec (`synthetic`, `heldout:NAME`, a folder) into training and evaluation data.

All synthetic data comes from the data layer (`stereo_derain_ros.data`): training composes
batches from cached scene and rain pools; validation is a fixed set composed from pools of its
own random stream; held-out sets live in `data.heldout`.
"""

from pathlib import Path

import numpy as np
import torch

from stereo_derain_ros.data.compose import CompositionConfig
from stereo_derain_ros.data.photos.library import PhotoLibrary
from stereo_derain_ros.data.pools import cached_pool, ComposedRainSource, PoolRecipe
from stereo_derain_ros.data.seeds import generator
from stereo_derain_ros.data.specs import DataError, open_dataset
from stereo_derain_ros.training.pool import PairPool

POOL_WIDTH, POOL_HEIGHT = 512, 256


def synthetic_sources(*, seed: int, count: int, val_count: int, photos: Path | None,
                      cache: Path | None, jobs: int = 1, progress: bool = True,
                      composition: CompositionConfig | None = None
                      ) -> tuple[ComposedRainSource, PairPool]:
    """Return the training source and the fixed validation pool of synthetic rain.

    `composition` changes the training draws only: validation stays rainy and on the defaults,
    so runs with different compositions are scored on the same pairs.
    """
    library = PhotoLibrary.open_or_builtin(photos, 'train')

    def pool(kind: str, split: str, size: int) -> dict[str, np.ndarray]:
        recipe = PoolRecipe(kind, split, size, POOL_WIDTH, POOL_HEIGHT, seed, library.origin)
        return cached_pool(recipe, library, cache, jobs, progress)

    train = ComposedRainSource(pool('scene', 'train', count), pool('rain', 'train', count), seed,
                               composition)
    # Validation is always rainy: a rain-free pair scores an infinite PSNR and drowns the mean
    # (the held-out `clean` sets check that rain-free frames are left alone).
    validation = ComposedRainSource(pool('scene', 'val', val_count),
                                    pool('rain', 'val', val_count), seed,
                                    CompositionConfig(rain_free=0.0))
    samples = [validation.sample(generator('val-compose', seed, index),
                                 (POOL_HEIGHT, POOL_WIDTH)) for index in range(val_count)]
    return train, PairPool.from_dataset([{view: torch.from_numpy(
        np.ascontiguousarray(image)).permute(2, 0, 1) for view, image in sample.items()}
        for sample in samples], progress=False)


def training_pools(spec: str, *, seed: int, count: int, val_count: int, progress: bool = True,
                   cache: Path | None = None, photos: Path | None = None, jobs: int = 1,
                   composition: dict | None = None):
    """Return the (training, validation) data for `--data`.

    `synthetic` composes rain onto scenes from the data layer's pools (cached in `cache`), with
    `composition` overriding the shares of `CompositionConfig`; a folder gives its first `count`
    pairs for training and the `val_count` after them for validation.
    """
    if spec == 'synthetic':
        return synthetic_sources(seed=seed, count=count, val_count=val_count, photos=photos,
                                 cache=cache, jobs=jobs, progress=progress,
                                 composition=CompositionConfig().overridden(composition or {}))
    if composition:
        raise DataError(f'composition {composition} applies to synthetic data only; {spec} '
                        'holds rendered pairs')
    dataset = open_dataset(spec, photos)
    if len(dataset) <= val_count:
        raise DataError(f'{spec} holds {len(dataset)} pairs; training needs more than '
                        f'--val-samples ({val_count})')
    train_count = min(count, len(dataset) - val_count)
    train_pool = PairPool.from_dataset(_Slice(dataset, 0, train_count), progress=progress,
                                       description='reading training pairs')
    val_pool = PairPool.from_dataset(_Slice(dataset, train_count, val_count),
                                     progress=progress, description='reading validation')
    return train_pool, val_pool


class _Slice:
    def __init__(self, dataset, start: int, count: int):
        self.dataset, self.start, self.count = dataset, start, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        return self.dataset[self.start + index]
