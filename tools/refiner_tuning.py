"""Choose between refiners on training photographs, never on the held-out sets.

The packaged refiners' latest files (the colour-pair mean of four continuations, the grey-pair
mean of four monochrome continuations) were chosen here: each candidate refiner, named to the
engine as `refiner` (so it serves every pair, colour or grey), derains tuning pairs drawn as the
held-out photo sets draw theirs (`data.heldout.photo_sample`) but from the photo library's
training split with `tools/view_fusion_tuning.py`'s seed, so the sets and the reserved real
pairs stay unread until a choice is made. Each candidate is scored as its mean gain over the
baseline refiner (PSNR over both views against the clean views; rain-free pairs: against the
input) and its worst pair's change. Run from the repository root:

    PYTHONPATH=. .venv/bin/python tools/refiner_tuning.py \
        stereo_derain_ros/weights/refiner.safetensors runs/a.safetensors runs/b.safetensors \
        --kinds medium-mono,heavy-mono,light-mono,clean-mono --photos data/photos

Kinds are `train-refiner --pair-kinds` kinds (a rain preset or `clean`, `-mono` for grey).
"""

import argparse
from pathlib import Path

import numpy as np
from probe_setup import sample_views, views_psnr
import torch
from view_fusion_tuning import SEED

from stereo_derain_ros.data.heldout import photo_sample
from stereo_derain_ros.data.photos.library import PhotoLibrary
from stereo_derain_ros.data.seeds import generator
from stereo_derain_ros.engine import DerainEngine, EngineConfig
from stereo_derain_ros.training.refiner_config import parse_pair_kind

Pair = dict[str, list[np.ndarray]]


def tuning_pairs(photos: Path | None, kind: str, count: int) -> list[Pair]:
    """Return `count` training-split pairs of `kind` as {'rainy': views, 'clean': views}."""
    preset, mono = parse_pair_kind(kind)
    library = PhotoLibrary.open_or_builtin(photos, 'train')
    pairs = []
    for index in range(count):
        _, sample = photo_sample(library, index, generator('val-compose', SEED, index), preset,
                                 mono)
        pairs.append({'rainy': sample_views(sample, 'rainy'),
                      'clean': sample_views(sample, 'clean')})
    return pairs


def refiner_scores(refiner: Path, pairs: list[Pair]) -> list[float]:
    """Return each pair's PSNR (dB) behind the packaged network with `refiner`, fp32, 1 thread."""
    engine = DerainEngine(EngineConfig(device='cpu', precision='fp32', threads=1,
                                       refiner=str(refiner)))
    return [views_psnr(engine.derain(*pair['rainy'], 'rgb'), pair['clean']) for pair in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('baseline', type=Path, help='refiner the candidates are scored against')
    parser.add_argument('candidates', type=Path, nargs='+', help='refiners to score')
    parser.add_argument('--kinds', default='medium,heavy,light,clean',
                        help='comma-separated pair kinds (default: %(default)s)')
    parser.add_argument('--pairs', type=int, default=12, help='pairs per kind (default: 12)')
    parser.add_argument('--photos', type=Path, default=None,
                        help='photo cache (default: the built-in photographs)')
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = [path.stem for path in args.candidates]
    print(f'kind | baseline {args.baseline.stem} (dB) | '
          + ' | '.join(f'{name}: gain (worst pair)' for name in names))
    for kind in args.kinds.split(','):
        pairs = tuning_pairs(args.photos, kind, args.pairs)
        baseline = np.array(refiner_scores(args.baseline, pairs))
        cells = []
        for candidate in args.candidates:
            change = np.array(refiner_scores(candidate, pairs)) - baseline
            cells.append(f'{change.mean():+.3f} ({change.min():+.2f})')
        print(f'{kind} | {baseline.mean():.2f} | ' + ' | '.join(cells), flush=True)


if __name__ == '__main__':
    main()
