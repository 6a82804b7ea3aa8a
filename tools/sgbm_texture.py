"""Where SGBM's bad-3px on derained held-out pairs sits: on textured pixels or on flat ones.

The evaluation scores SGBM (the fixed settings of `evaluation.disparity`) over every pixel with
ground truth. On flat regions (a white backdrop, a smooth gradient) the clean pair is matched
only by SGBM's smoothness terms carrying disparities in from the edges, and a grey level of
residue or sensor noise is enough to break that; on textured pixels the match rests on the
image itself. This splits each pair's bad-3px by the clean left view's texture: a pixel is flat
where the grey levels in its 5×5 neighbourhood (SGBM's block) spread by less than
`FLAT_GREY_STD`. Used for the SGBM row of the model card's targets; run from the repository
root:

    PYTHONPATH=. .venv/bin/python tools/sgbm_texture.py photos-medium photos-heavy
"""

import argparse
from pathlib import Path

import cv2
import numpy as np
from probe_setup import sample_views, single_thread_engine

from stereo_derain_ros.data.specs import open_dataset
from stereo_derain_ros.evaluation.disparity import num_disparities_for, score_disparity
from stereo_derain_ros.sgbm import sgbm_disparity

FLAT_GREY_STD = 2.0
BLOCK_PX = 5


def flat_pixels(view: np.ndarray) -> np.ndarray:
    """Return where an H×W×3 uint8 view spreads by under FLAT_GREY_STD in a 5×5 block."""
    grey = cv2.cvtColor(view, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.blur(grey, (BLOCK_PX, BLOCK_PX))
    spread = cv2.blur(grey * grey, (BLOCK_PX, BLOCK_PX)) - mean * mean
    return np.sqrt(np.maximum(spread, 0.0)) < FLAT_GREY_STD


def split_bad3(pair: tuple[np.ndarray, np.ndarray], truth: np.ndarray,
               flat: np.ndarray) -> tuple[float, float, float]:
    """Return SGBM's bad-3px of a pair on all, textured and flat pixels (NaN where none)."""
    disparities = num_disparities_for(truth)
    estimate = sgbm_disparity(pair[0], pair[1], disparities)
    return tuple(score_disparity(estimate, np.where(mask, truth, np.nan), disparities).bad3
                 for mask in (np.ones_like(flat), ~flat, flat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('sets', nargs='+', help='held-out set names, e.g. photos-medium')
    parser.add_argument('--photos', type=Path, default=Path('data/photos'))
    options = parser.parse_args()
    engine = single_thread_engine()
    kinds = ('rainy', 'derained', 'clean')
    print('set pair | flat share | bad-3px % all: ' + ' / '.join(kinds) + ' | textured: '
          + ' / '.join(kinds) + ' | flat: ' + ' / '.join(kinds))
    for name in options.sets:
        dataset = open_dataset(f'heldout:{name}', options.photos)
        totals = {kind: np.zeros(2) for kind in kinds}
        whole = {kind: [] for kind in kinds}
        counts = np.zeros(2)
        for index in range(len(dataset)):
            sample = dataset[index]
            truth = sample['disparity'].numpy().squeeze()
            rainy, clean = (sample_views(sample, kind) for kind in ('rainy', 'clean'))
            pairs = {'rainy': rainy, 'derained': engine.derain(*rainy, 'rgb'), 'clean': clean}
            flat = flat_pixels(clean[0])
            known = np.isfinite(truth) & (truth > 0)
            known[:, :num_disparities_for(truth)] = False
            pixels = np.array([(known & ~flat).sum(), (known & flat).sum()], float)
            scores = {kind: np.array(split_bad3(pair, truth, flat)) for kind, pair in
                      pairs.items()}
            for kind, score in scores.items():
                whole[kind].append(score[0])
                totals[kind] += np.nan_to_num(score[1:]) * pixels
            counts += pixels
            print(f'{name} {index} | {pixels[1] / pixels.sum():.2f} | '
                  + ' | '.join(' / '.join(f'{100 * scores[kind][part]:.1f}' for kind in kinds)
                               for part in range(3)), flush=True)
        share = counts[1] / counts.sum()
        pooled = {kind: 100 * totals[kind] / np.maximum(counts, 1) for kind in kinds}
        # All pixels as the evaluation reports them (the mean over pairs); the split pooled.
        print(f'{name} mean / pooled | {share:.2f} | '
              + ' / '.join(f'{100 * np.mean(whole[kind]):.1f}' for kind in kinds) + ' | '
              + ' / '.join(f'{pooled[kind][0]:.1f}' for kind in kinds) + ' | '
              + ' / '.join(f'{pooled[kind][1]:.1f}' for kind in kinds)
              + f' | derained / clean: textured {pooled["derained"][0] / pooled["clean"][0]:.2f}×,'
              f' flat {pooled["derained"][1] / pooled["clean"][1]:.2f}×', flush=True)


if __name__ == '__main__':
    main()
