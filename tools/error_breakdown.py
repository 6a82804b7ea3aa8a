"""Where a checkpoint's remaining error sits on a held-out set, pair by pair and view by view.

Answers whether what is left after deraining is rain still standing (error on the pixels the
synthesis covered with streaks), a brightness or veil residue (error that survives an 8-px
Gaussian low-pass), or a correction of the right shape but the wrong size (the least-squares
scale k of the correction, and the PSNR that scale would reach: an oracle that no deployed
model has). Two more columns ask whether the correction is put in the wrong place or stops
short: the share of the rain's squared error removed on faint and on strong streak pixels, the
PSNR with the correction kept only on rain pixels (another oracle: the cost of what
spills onto pixels without rain), and after a second pass of the network over its own output.
The last asks how much of the error is a colour cast: the share that differs between a pixel's
channels (what a correction added to every channel cannot reach), and the PSNR without it.
Used for the model card's "Where the remaining error sits"; run from the repository root:

    PYTHONPATH=. .venv/bin/python tools/error_breakdown.py CHECKPOINT photos-medium [SET ...]

`--figure PATH` also draws one pair's left view: rainy | derained | clean above the rain on the
input, the rain left after deraining and the streak pixels (faint orange, strong white).
"""

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as functional

from stereo_derain_ros.data.specs import open_dataset
from stereo_derain_ros.engine import DerainEngine, EngineConfig
from stereo_derain_ros.rain.contact_sheet import label, signed

LOWPASS_SIGMA_PX = 8.0
# Pixels whose streak opacity exceeds this count as rain pixels, above the second as strong rain.
RAIN_ALPHA = 0.02
STRONG_RAIN_ALPHA = 0.1


def gaussian_lowpass(image: torch.Tensor, sigma: float = LOWPASS_SIGMA_PX) -> torch.Tensor:
    radius = int(3 * sigma)
    taps = torch.exp(-torch.arange(-radius, radius + 1, dtype=torch.float64) ** 2
                     / (2 * sigma * sigma))
    taps = (taps / taps.sum()).to(image.dtype)
    channels = image.shape[1]
    padded = functional.pad(image, (radius,) * 4, mode='reflect')
    rows = functional.conv2d(padded, taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1),
                             groups=channels)
    return functional.conv2d(rows, taps.view(1, 1, -1, 1).repeat(channels, 1, 1, 1),
                             groups=channels)


def psnr(squared_error: float) -> float:
    return 10.0 * np.log10(255.0 ** 2 / max(squared_error, 1e-12))


def view_breakdown(rainy: np.ndarray, derained: np.ndarray, clean: np.ndarray,
                   alpha: np.ndarray, second_pass: np.ndarray) -> dict[str, float]:
    """Split one view's error; images are HxWxC in 0-255, alpha HxW in 0-1."""
    error = derained.astype(np.float64) - clean
    correction = derained.astype(np.float64) - rainy
    wanted = clean - rainy.astype(np.float64)
    rain = alpha > RAIN_ALPHA
    total = (error ** 2).sum()
    lowpass = gaussian_lowpass(torch.from_numpy(error).permute(2, 0, 1)[None])
    lowpass = lowpass[0].permute(1, 2, 0).numpy()
    strong = alpha > STRONG_RAIN_ALPHA
    faint = rain & ~strong
    scale = (correction * wanted).sum() / max((correction ** 2).sum(), 1e-9)
    grey_error = error.mean(axis=2, keepdims=True)
    return {
        'input': psnr((wanted ** 2).mean()),
        'output': psnr((error ** 2).mean()),
        'rain_pixels': float(rain.mean()),
        'faint_pixels': float(faint.mean()),
        'error_on_rain': float((error ** 2)[rain].sum() / max(total, 1e-12)),
        'error_on_faint': float((error ** 2)[faint].sum() / max(total, 1e-12)),
        'lowpass': psnr((lowpass ** 2).mean()),
        'highpass': psnr(((error - lowpass) ** 2).mean()),
        'scale': float(scale),
        'scaled': psnr(((rainy + scale * correction - clean) ** 2).mean()),
        'faint_error': float((error ** 2)[faint].sum()),
        'faint_rain': float((wanted ** 2)[faint].sum()),
        'strong_error': float((error ** 2)[strong].sum()),
        'strong_rain': float((wanted ** 2)[strong].sum()),
        'confined': psnr(((np.clip(rainy + correction * rain[..., None], 0, 255) - clean) ** 2
                          ).mean()),
        'second_pass': psnr(((second_pass.astype(np.float64) - clean) ** 2).mean()),
        'cast': float(((error - grey_error) ** 2).sum() / max(total, 1e-12)),
        'without_cast': psnr((grey_error ** 2).mean()),
    }


def removed(row: dict[str, float], pixels: str) -> float:
    """Return the share of the rain's squared error on faint or strong pixels that is gone.

    From sums, so that on a set's means it pools every view instead of averaging ratios.
    """
    return 1.0 - row[f'{pixels}_error'] / max(row[f'{pixels}_rain'], 1e-9)


def as_image(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy() * 255.0


def figure(rainy: np.ndarray, derained: np.ndarray, clean: np.ndarray,
           alpha: np.ndarray) -> np.ndarray:
    """Return the two-row RGB picture that `--figure` writes."""
    clean = np.round(clean).astype(np.uint8)
    streaks = np.zeros_like(clean)
    streaks[(alpha > RAIN_ALPHA) & (alpha <= STRONG_RAIN_ALPHA)] = (255, 150, 0)
    streaks[alpha > STRONG_RAIN_ALPHA] = (255, 255, 255)
    top = [label(rainy, 'rainy'), label(derained, 'derained'), label(clean, 'clean')]
    bottom = [label(signed(rainy.astype(np.float64) - clean), 'rain on the input (x4)'),
              label(signed(derained.astype(np.float64) - clean), 'rain left (x4)'),
              label(streaks, 'streaks: faint (orange), strong (white)')]
    return np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint')
    parser.add_argument('sets', nargs='+', help='held-out set names, e.g. photos-medium')
    parser.add_argument('--photos', default='data/photos')
    parser.add_argument('--figure', type=Path, default=None,
                        help='write a picture of one pair (its left view) to this file')
    parser.add_argument('--figure-pair', type=int, default=0,
                        help='index of that pair in the first set (default: %(default)s)')
    parser.add_argument('--refiner', default=None,
                        help='refiner to run on every pair (default: the packaged ones behind '
                             'the packaged weights)')
    options = parser.parse_args()
    torch.set_num_threads(1)
    engine = DerainEngine(EngineConfig(device='cpu', precision='fp32',
                                       weights=options.checkpoint, threads=1,
                                       refiner=options.refiner))
    print('set pair view | input output dB | rain px (faint) | error on rain (faint) '
          '| low-pass high-pass dB | scale k, PSNR at k | removed on faint, strong rain px '
          '| confined to rain px, second pass dB | colour cast share, dB without it')
    for name in options.sets:
        dataset = open_dataset(f'heldout:{name}', options.photos)
        rows = []
        for index in range(len(dataset)):
            sample = dataset[index]
            rainy = [np.round(as_image(sample[f'rainy_{view}'])).astype(np.uint8)
                     for view in ('left', 'right')]
            derained = engine.derain(rainy[0], rainy[1], 'rgb')
            twice = engine.derain(derained[0], derained[1], 'rgb')
            if options.figure and name == options.sets[0] and index == options.figure_pair:
                picture = figure(rainy[0], derained[0], as_image(sample['clean_left']),
                                 sample['alpha_left'][0].numpy())
                cv2.imwrite(str(options.figure), picture[:, :, ::-1],
                            [cv2.IMWRITE_JPEG_QUALITY, 80])
            for view, source, output, again in zip(('left', 'right'), rainy, derained, twice):
                row = view_breakdown(source, output, as_image(sample[f'clean_{view}']),
                                     sample[f'alpha_{view}'][0].numpy(), again)
                rows.append(row)
                print(f'{name} {index} {view} | {row["input"]:.2f} {row["output"]:.2f} | '
                      f'{row["rain_pixels"]:.2f} ({row["faint_pixels"]:.2f}) | '
                      f'{row["error_on_rain"]:.2f} '
                      f'({row["error_on_faint"]:.2f}) | '
                      f'{row["lowpass"]:.2f} {row["highpass"]:.2f} | '
                      f'{row["scale"]:.2f}, {row["scaled"]:.2f} | '
                      f'{removed(row, "faint"):.2f} {removed(row, "strong"):.2f} | '
                      f'{row["confined"]:.2f} {row["second_pass"]:.2f} | '
                      f'{row["cast"]:.2f} {row["without_cast"]:.2f}', flush=True)
        means = {key: np.mean([row[key] for row in rows]) for key in rows[0]}
        print(f'{name} mean | {means["input"]:.2f} {means["output"]:.2f} | '
              f'{means["rain_pixels"]:.2f} ({means["faint_pixels"]:.2f}) | '
              f'{means["error_on_rain"]:.2f} '
              f'({means["error_on_faint"]:.2f}) | '
              f'{means["lowpass"]:.2f} {means["highpass"]:.2f} | '
              f'median k {np.median([row["scale"] for row in rows]):.2f}, '
              f'{means["scaled"]:.2f} | {removed(means, "faint"):.2f} '
              f'{removed(means, "strong"):.2f} | {means["confined"]:.2f} '
              f'{means["second_pass"]:.2f} | {means["cast"]:.2f} {means["without_cast"]:.2f}',
              flush=True)


if __name__ == '__main__':
    main()
