"""Resolve a data spec (`synthetic`, `heldout:PRESET`, a folder) into datasets and pools."""

import os
from pathlib import Path

from stereo_derain_ros.data.folders import DatasetLayoutError, StereoFolderDataset
from stereo_derain_ros.evaluation.heldout import HELDOUT_PRESETS, HeldoutSet
from stereo_derain_ros.evaluation.synthetic import (
    SEED_STRIDE,
    SyntheticRainSet,
    TRAIN_SCENE_BASE,
    VAL_SCENE_BASE,
)
from stereo_derain_ros.training.pool import PairPool


class DataError(Exception):
    """A data spec that cannot be opened; the message says what is expected."""


def open_dataset(spec: str):
    """Return an indexable dataset of sample dicts for evaluation."""
    if spec.startswith('heldout:'):
        preset = spec.split(':', 1)[1]
        if preset not in HELDOUT_PRESETS:
            raise DataError(f'unknown held-out preset {preset!r} in {spec!r}; expected '
                            f'heldout:{" or heldout:".join(HELDOUT_PRESETS)}')
        return HeldoutSet(preset)
    return open_folder(Path(spec))


def open_folder(path: Path) -> StereoFolderDataset:
    """Open a paired stereo deraining folder (apanet, prrnet or generic layout)."""
    try:
        dataset = StereoFolderDataset(path)
    except DatasetLayoutError as error:
        raise DataError(str(error)) from None
    if not dataset.paired:
        raise DataError(f'{path} holds rainy images only ({dataset.layout.name} layout); '
                        'training and evaluation need clean ground truth (rain_left/gt_left, '
                        'rain/norain or image_2_3_rain50/image_2_3_norain folders)')
    if len(dataset) == 0:
        raise DataError(f'{path} holds no image pairs')
    return dataset


def training_pools(spec: str, *, seed: int, count: int, val_count: int, progress: bool = True,
                   cache: Path | None = None) -> tuple[PairPool, PairPool]:
    """Return the (training, validation) pools for `--data`.

    `synthetic` renders `count` training and `val_count` validation pairs from disjoint scene
    seed ranges (see evaluation.synthetic); a folder gives its first `count` pairs for training
    and the `val_count` after them for validation. `cache` keeps a rendering for later runs.
    """
    if cache is not None and cache.exists():
        pools = (PairPool.load(cache.with_suffix('.train.safetensors')),
                 PairPool.load(cache.with_suffix('.val.safetensors')))
        return pools
    if spec == 'synthetic':
        train_set = SyntheticRainSet(TRAIN_SCENE_BASE + seed * SEED_STRIDE, count)
        val_set = SyntheticRainSet(VAL_SCENE_BASE + seed * SEED_STRIDE, val_count)
        train_pool = PairPool.from_dataset(train_set, progress=progress)
        val_pool = PairPool.from_dataset(val_set, progress=progress,
                                         description='rendering validation pairs')
    else:
        dataset = open_dataset(spec)
        if len(dataset) <= val_count:
            raise DataError(f'{spec} holds {len(dataset)} pairs; training needs more than '
                            f'--val-samples ({val_count})')
        train_count = min(count, len(dataset) - val_count)
        train_pool = PairPool.from_dataset(_Slice(dataset, 0, train_count), progress=progress,
                                           description='reading training pairs')
        val_pool = PairPool.from_dataset(_Slice(dataset, train_count, val_count),
                                         progress=progress, description='reading validation')
    # Under torchrun only rank 0 writes; the marker file goes last, so a reader never sees half.
    if cache is not None and os.environ.get('RANK', '0') == '0':
        train_pool.save(cache.with_suffix('.train.safetensors'))
        val_pool.save(cache.with_suffix('.val.safetensors'))
        cache.write_text(f'{spec} seed={seed} count={count} val_count={val_count}\n')
    return train_pool, val_pool


class _Slice:
    def __init__(self, dataset, start: int, count: int):
        self.dataset, self.start, self.count = dataset, start, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        return self.dataset[self.start + index]
