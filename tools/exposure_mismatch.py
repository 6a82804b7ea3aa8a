"""Score the second-view fusion when the two cameras differ in exposure, on held-out sets.

Two cameras of a rig rarely agree in brightness (each its own auto-exposure, gain and lens), and
the held-out photo pairs, two views of one photograph, never differ at all. So this tool scales
the right view of each held-out pair, rainy and clean alike, by each GAIN (clipped to 0-255, as a
brighter exposure saturates) and derains it three ways with the same weights and gate: the
network alone, the fusion as the engine runs it (the other view brought to this view's
brightness first, `engine.view_fusion.brightness_fit`), and the fusion without that fit (the
fit's pixel minimum set beyond any frame, so the views are taken as they are, as before the fit
existed). It prints each set's mean gain over the rainy input (rain-free sets: PSNR against the
input), both views, and the worst view. Used for the model card's "Second-view fusion"; run from
the repository root:

    PYTHONPATH=. .venv/bin/python tools/exposure_mismatch.py real-medium real-clean \
        photos-medium photos-light --gains 0.85,1.15 --photos data/photos
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from stereo_derain_ros.data.heldout import heldout_set, HELDOUT_SETS
from stereo_derain_ros.engine import DerainEngine, EngineConfig
import stereo_derain_ros.engine.view_fusion as view_fusion
from stereo_derain_ros.evaluation.metrics import psnr
from stereo_derain_ros.pixels import to_uint8

ARMS = ('network', 'fusion', 'fusion without the brightness fit')


def view_psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Return the PSNR in dB of an H×W×3 uint8 view against another."""
    return float(psnr(*(torch.from_numpy(view).permute(2, 0, 1).float() / 255.0
                        for view in (image, reference))))


def exposed(view: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(np.rint(view.astype(np.float32) * gain), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('sets', nargs='+', choices=sorted(HELDOUT_SETS), metavar='SET',
                        help='held-out sets (as `stereo-derain eval heldout:SET` names them)')
    parser.add_argument('--gains', default='0.85,1.15',
                        help='right-view exposure gains, comma-separated (default: %(default)s)')
    parser.add_argument('--weights', default=None, help='derainer (default: packaged bandnet)')
    parser.add_argument('--gate', default=None, help='fusion gate (default: the packaged one)')
    parser.add_argument('--photos', type=Path, default=Path('data/photos'))
    options = parser.parse_args()
    gains = [float(gain) for gain in options.gains.split(',')]
    settings = {'device': 'cpu', 'precision': 'fp32', 'threads': 1, 'weights': options.weights,
                'warmup_shape': None}
    plain = DerainEngine(EngineConfig(**settings))
    fusing = DerainEngine(EngineConfig(**settings, view_fusion=True,
                                       view_fusion_gate=options.gate))
    fit_pixels = view_fusion.BRIGHTNESS_FIT_MIN_PIXELS
    print('set | right-view gain | ' + ' | '.join(f'{arm} (worst view)' for arm in ARMS))
    for name in options.sets:
        data = heldout_set(name, options.photos)
        rain_free = data[0]['rainy_left'].equal(data[0]['clean_left'])
        for gain in gains:
            scores: dict[str, list[float]] = {arm: [] for arm in ARMS}
            for index in range(len(data)):
                sample = data[index]
                rainy, clean = ([to_uint8(sample[f'{kind}_{view}'].permute(1, 2, 0)).numpy()
                                 for view in ('left', 'right')] for kind in ('rainy', 'clean'))
                rainy[1], clean[1] = exposed(rainy[1], gain), exposed(clean[1], gain)
                for arm in ARMS:
                    view_fusion.BRIGHTNESS_FIT_MIN_PIXELS = (
                        np.iinfo(np.int64).max if arm == ARMS[2] else fit_pixels)
                    engine = plain if arm == 'network' else fusing
                    output = engine.derain(rainy[0], rainy[1], 'rgb')
                    scores[arm].extend(
                        view_psnr(output[view], clean[view])
                        - (0.0 if rain_free else view_psnr(rainy[view], clean[view]))
                        for view in range(2))
            view_fusion.BRIGHTNESS_FIT_MIN_PIXELS = fit_pixels
            sign = '' if rain_free else '+'
            print(f'{name} | {gain:g} | ' + ' | '.join(
                f'{np.mean(values):{sign}.2f} ({min(values):{sign}.2f})'
                for values in scores.values()), flush=True)


if __name__ == '__main__':
    main()
