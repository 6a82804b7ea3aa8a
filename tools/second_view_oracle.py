"""What the second view could add to a checkpoint's output, given where each pixel is in it.

Stereo deraining rests on the rain covering different background in the two views. This asks
how much that is worth after the network has done its part: the left derained view is averaged
(or the darker of the two is kept, since streaks brighten) with the right derained view warped
onto it, where the right view sees the same surface. With the synthesis's exact disparity and
the pixels where the warped clean right view reproduces the clean left one (an oracle: no
deployed model has either), that bounds what a cross-view exchange at full resolution could
gain; with correspondences from the package's SGBM (the evaluation's fixed settings, whose
left-right check leaves a pixel without a match) on the derained pair, fused only where the views
agree within AGREE_GREY grey levels, it is what a cheap matcher gets.
Left views only: the held-out sets store the left view's disparity. Used for the model card's
"What the second view is worth"; run from the repository root:

    PYTHONPATH=. .venv/bin/python tools/second_view_oracle.py CHECKPOINT photos-medium [SET ...]
"""

import argparse
import time

import cv2
import numpy as np
import torch

from stereo_derain_ros.data.specs import open_dataset
from stereo_derain_ros.engine import DerainEngine, EngineConfig
from stereo_derain_ros.evaluation.disparity import num_disparities_for, sgbm_disparity
from stereo_derain_ros.sgbm import warp_from_other_view

# The warped clean right view must match the clean left one within this (0-255) to count as the
# same surface: leaves out occlusions and the few pixels that resampling blurs.
SAME_SURFACE_GREY = 3.0
AGREE_GREY = 12.0
DISPARITY_ERRORS_PX = (0.25, 0.5, 1.0)
ERROR_SMOOTHING_PX = 8.0


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    return float(10.0 * np.log10(255.0 ** 2 / max(((image - reference) ** 2).mean(), 1e-12)))


def as_image(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy().astype(np.float64) * 255.0


def warp_right_to_left(right: np.ndarray, disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the right view resampled at x - d(x) of each left pixel, and where that is inside."""
    warped, inside = warp_from_other_view(right.astype(np.float32), disparity, 'left')
    return warped.astype(np.float64), inside


def smooth_error(shape: tuple[int, int], rms: float, rng: np.random.Generator) -> np.ndarray:
    """Return a disparity error field that varies over ERROR_SMOOTHING_PX, with this RMS."""
    noise = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0),
                             ERROR_SMOOTHING_PX)
    return noise * np.float32(rms / max(float(np.sqrt((noise ** 2).mean())), 1e-12))


def fusions(rainy: np.ndarray, derained: np.ndarray, clean: np.ndarray,
            disparity: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """Score one pair's left view; images are [left, right] HxWxC in 0-255."""
    left = derained[0].astype(np.float64)
    warped, inside = warp_right_to_left(derained[1], disparity)
    clean_warped, _ = warp_right_to_left(clean[1], disparity)
    same = inside & (np.abs(clean[0] - clean_warped).max(axis=2) < SAME_SURFACE_GREY)
    started = time.perf_counter()
    matched = sgbm_disparity(derained[0], derained[1], num_disparities_for(disparity))
    seconds = time.perf_counter() - started
    checked = np.isfinite(matched)
    matched_warp, _ = warp_right_to_left(derained[1], np.where(checked, matched, 0.0))
    agree = checked & (np.abs((left - matched_warp).mean(axis=2)) < AGREE_GREY)
    agree_exact = inside & (np.abs((left - warped).mean(axis=2)) < AGREE_GREY)
    off = {}
    for rms in DISPARITY_ERRORS_PX:
        warped_off, _ = warp_right_to_left(derained[1],
                                           disparity + smooth_error(disparity.shape, rms, rng))
        off[f'oracle_mean_off_{rms}px'] = psnr(
            np.where(same[..., None], (left + warped_off) / 2, left), clean[0])
    return {
        'input': psnr(rainy[0].astype(np.float64), clean[0]),
        'derained': psnr(left, clean[0]),
        'same_surface': float(same.mean()),
        'oracle_mean': psnr(np.where(same[..., None], (left + warped) / 2, left), clean[0]),
        'oracle_darker': psnr(np.where(same[..., None], np.minimum(left, warped), left),
                              clean[0]),
        'exact_mean_where_agreeing': psnr(
            np.where(agree_exact[..., None], (left + warped) / 2, left), clean[0]),
        **off,
        'sgbm_checked': float(checked.mean()),
        'sgbm_mean': psnr(np.where(agree[..., None], (left + matched_warp) / 2, left), clean[0]),
        'sgbm_ms': 1000.0 * seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint')
    parser.add_argument('sets', nargs='+', help='held-out set names, e.g. photos-medium')
    parser.add_argument('--photos', default='data/photos')
    options = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    engine = DerainEngine(EngineConfig(device='cpu', precision='fp32',
                                       weights=options.checkpoint, threads=1))
    columns = ('input', 'derained', 'same_surface', 'oracle_mean', 'oracle_darker',
               'exact_mean_where_agreeing',
               *(f'oracle_mean_off_{rms}px' for rms in DISPARITY_ERRORS_PX),
               'sgbm_checked', 'sgbm_mean', 'sgbm_ms')
    print('set pair | ' + ' '.join(columns))
    for name in options.sets:
        dataset = open_dataset(f'heldout:{name}', options.photos)
        rng = np.random.default_rng(0)
        rows = []
        for index in range(len(dataset)):
            sample = dataset[index]
            rainy = [np.round(as_image(sample[f'rainy_{view}'])).astype(np.uint8)
                     for view in ('left', 'right')]
            clean = [as_image(sample[f'clean_{view}']) for view in ('left', 'right')]
            derained = engine.derain(rainy[0], rainy[1], 'rgb')
            row = fusions(rainy, derained, clean, sample['disparity'][0].numpy(), rng)
            rows.append(row)
            print(f'{name} {index} | ' + ' '.join(f'{row[key]:.2f}' for key in columns),
                  flush=True)
        print(f'{name} mean | ' + ' '.join(f'{np.mean([row[key] for row in rows]):.2f}'
                                           for key in columns), flush=True)


if __name__ == '__main__':
    main()
