"""Compare the second-view fusion's gates on training photographs, never on the held-out sets.

Draws pairs as the held-out photo sets draw theirs (`data.heldout.photo_sample`) but from the
photo library's training split with the `val-compose` seed SEED: medium, light, monochrome
medium, heavy and no rain, plus medium-preset pairs on procedural scenes of other seeds than the
preset set's. A checkpoint derains them once; each gate then fuses the derained views and is
scored against the clean views (rain-free pairs: against the input), both views, as the gain over
the network alone: a grid of hand-set gates (`HandGate`: a share that rises with the network's
darkening up to a largest share, where the views agree within a few grey levels), and the
engine's learnt gate (`stereo-derain train-fusion-gate`, trained on pairs of another seed;
`--gate PATH` scores another one), also with the right view's disparity from a second SGBM run
(at full resolution; the engine matches at half) instead of the splatted left one. Used for the
model card's "Second-view fusion"; run from the repository root:

    PYTHONPATH=. .venv/bin/python tools/view_fusion_tuning.py \
        stereo_derain_ros/weights/bandnet.safetensors --photos data/photos

`--figure PATH` also draws the left view of one tuning pair (`--figure-set`, `--figure-pair`)
fused by the engine's gate: rainy | network | network and fusion above the rain left by each
(four times amplified around mid-grey) and what the fusion changed.
"""

import argparse
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import cv2
import numpy as np
import torch

from stereo_derain_ros.data.heldout import photo_sample, sample_dict
from stereo_derain_ros.data.photos.library import PhotoLibrary
from stereo_derain_ros.data.seeds import generator
from stereo_derain_ros.engine import DerainEngine, EngineConfig
from stereo_derain_ros.engine.view_fusion import (
    blend_view,
    load_fusion_gate,
    match_disparity,
)
from stereo_derain_ros.evaluation.disparity import right_view_disparity
from stereo_derain_ros.pixels import to_unit_float
from stereo_derain_ros.rain.contact_sheet import label, signed
from stereo_derain_ros.rain.params import rain_params
from stereo_derain_ros.rain.procedural import procedural_scene
from stereo_derain_ros.rain.render import render_rain
from stereo_derain_ros.sgbm import warp_disparity_to_right, warp_from_other_view

SEED = 7
PHOTO_SETS = {'medium': ('medium', False), 'light': ('light', False),
              'medium-mono': ('medium', True), 'heavy': ('heavy', False), 'clean': (None, False)}
PRESET_SCENE_SEED, PRESET_RAIN_SEED = 10_000, 20_000
AGREE_GREY = (20.0, 30.0, 50.0)
FULL_WEIGHT_GREY = (2.0, 4.0, 6.0, 10.0)
MAX_WEIGHT = (0.4, 0.5, 0.6)
DISPARITY_RANGE = 64


def as_image(tensor: torch.Tensor) -> np.ndarray:
    return np.round(tensor.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)


def tuning_pairs(photos: Path, count: int) -> dict[str, list[dict[str, np.ndarray]]]:
    """Return {set: [{'rainy': [l, r], 'clean': [l, r]} as uint8]} drawn from training data."""
    library = PhotoLibrary.open_or_builtin(photos, 'train')
    sets: dict[str, list[dict[str, np.ndarray]]] = {}
    for name, (preset, mono) in PHOTO_SETS.items():
        sets[name] = []
        for index in range(count):
            _, sample = photo_sample(library, index, generator('val-compose', SEED, index),
                                     preset, mono)
            sets[name].append(sample)
    sets['preset-medium'] = []
    for index in range(count):
        scene = procedural_scene(PRESET_SCENE_SEED + index)
        sets['preset-medium'].append(sample_dict(
            render_rain(scene, rain_params('medium'), PRESET_RAIN_SEED + index), scene))
    return {name: [{'rainy': [as_image(sample[f'rainy_{view}']) for view in ('left', 'right')],
                    'clean': [as_image(sample[f'clean_{view}']) for view in ('left', 'right')]}
                   for sample in samples] for name, samples in sets.items()}


@dataclass(frozen=True)
class HandGate:
    """A hand-set share: rising with the network's darkening to `max_share` at `full_grey`."""

    agree_grey: float
    full_grey: float
    max_share: float

    def blend(self, rainy: np.ndarray, derained: np.ndarray, other: np.ndarray,
              disparity: np.ndarray, view: str) -> np.ndarray:
        warped, known = warp_from_other_view(other, disparity, view)
        gap = warped - derained
        darkened = (rainy - derained).mean(axis=2) * 255.0
        share = self.max_share * np.clip(darkened / self.full_grey, 0.0, 1.0)
        share[~known | (np.abs(gap.mean(axis=2)) * 255.0 >= self.agree_grey)] = 0.0
        return derained + share[..., None] * gap


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    error = ((np.clip(np.rint(image * 255.0), 0, 255) - reference.astype(np.float64)) ** 2).mean()
    return float(10.0 * np.log10(255.0 ** 2 / max(error, 1e-12)))


def figure(rainy: np.ndarray, derained: np.ndarray, fused: np.ndarray,
           clean: np.ndarray) -> np.ndarray:
    """Return the two-row RGB picture that `--figure` writes (float views in [0, 1])."""
    rainy, derained, fused, clean = (np.clip(view * 255.0, 0, 255)
                                     for view in (rainy, derained, fused, clean))
    change = np.clip(np.abs(fused - derained).mean(axis=2) * 8.0, 0, 255).astype(np.uint8)
    change = np.repeat(change[..., None], 3, axis=2)
    top = [label(view.astype(np.uint8), text) for view, text in
           ((rainy, 'rainy'), (derained, 'network'), (fused, 'network + view fusion'))]
    bottom = [label(signed(derained - clean), 'rain left by the network (x4)'),
              label(signed(fused - clean), 'rain left after the fusion (x4)'),
              label(change, 'change by the fusion (x8)')]
    return np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint')
    parser.add_argument('--photos', type=Path, default=Path('data/photos'))
    parser.add_argument('--pairs', type=int, default=12, help='pairs per set (default: 12)')
    parser.add_argument('--gate', default=None,
                        help='learnt gate to score (default: the packaged one)')
    parser.add_argument('--figure', type=Path, default=None,
                        help='write a picture of one tuning pair (its left view) to this file')
    parser.add_argument('--figure-set', default='heavy', choices=[*PHOTO_SETS, 'preset-medium'],
                        help='set of that pair (default: %(default)s)')
    parser.add_argument('--figure-pair', type=int, default=0,
                        help='index of that pair in its set (default: %(default)s)')
    options = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    engine = DerainEngine(EngineConfig(device='cpu', precision='fp32',
                                       weights=options.checkpoint, threads=1))
    gate = load_fusion_gate(options.gate)
    hand_gates = {f'hand {agree:g} {full:g} {share:g}': HandGate(agree, full, share)
                  for agree, full, share in product(AGREE_GREY, FULL_WEIGHT_GREY, MAX_WEIGHT)}
    learnt, second_run = 'learnt gate (engine)', 'learnt gate, second SGBM run'
    gains: dict[str, dict[str, list[float]]] = {}
    for name, pairs in tuning_pairs(options.photos, options.pairs).items():
        for number, pair in enumerate(pairs):
            derained_u8 = engine.derain(*pair['rainy'], 'rgb')
            rainy, derained = ([to_unit_float(view) for view in views]
                               for views in (pair['rainy'], derained_u8))
            reference = pair['rainy'] if name == 'clean' else pair['clean']
            left = match_disparity(derained_u8[0], derained_u8[1], DISPARITY_RANGE)
            splatted = [left, warp_disparity_to_right(left)]
            matched = [left, right_view_disparity(derained_u8[0], derained_u8[1],
                                                  DISPARITY_RANGE)]
            for index, view in enumerate(('left', 'right')):
                base = psnr(derained[index], reference[index])
                own, other = derained[index], derained[1 - index]
                trials = {key: hand.blend(rainy[index], own, other, splatted[index], view)
                          for key, hand in hand_gates.items()}
                for key, disparity in ((learnt, splatted[index]), (second_run, matched[index])):
                    trials[key] = blend_view(gate, rainy[index], own, rainy[1 - index], other,
                                             disparity, view)
                if (options.figure and view == 'left' and name == options.figure_set
                        and number == options.figure_pair):
                    picture = figure(rainy[0], derained[0], trials[learnt],
                                     to_unit_float(reference[0]))
                    cv2.imwrite(str(options.figure), picture[:, :, ::-1],
                                [cv2.IMWRITE_JPEG_QUALITY, 85])
                for key, fused in trials.items():
                    gains.setdefault(key, {}).setdefault(name, []).append(
                        psnr(fused, reference[index]) - base)
        print(f'{name}: {len(pairs)} pairs done', flush=True)
    sets = list(gains[learnt])
    print('gate (hand: agree full-weight largest-share) | '
          + ' | '.join(f'{name} (worst)' for name in sets))
    for key in [*hand_gates, learnt, second_run]:
        print(key + ' | ' + ' | '.join(
            f'{np.mean(gains[key][name]):+.3f} ({min(gains[key][name]):+.2f})' for name in sets))


if __name__ == '__main__':
    main()
