"""Whether one rain colour per pair gives back the colour the default leaves wrong on rain.

Both renderers lay streaks over the scene alpha-over with one drop colour per pair, and rain of
a grey colour only dilutes a pixel's chroma by (1 - alpha). So a step after the refiners could
keep the derained view's luma and take the rainy view's chroma undiluted, with alpha at each
pixel read from what the default took away (its projection on the direction from the derained
pixel to the rain colour, capped at `ALPHA_CAP`, none where under `MIN_REMOVED` was taken). The
rain colour is fitted per pair as the grey nearest to every line from a derained pixel through
its rainy one (a closed form), or, as an oracle, taken from the renderer (the scene's mean
colour half desaturated and lifted towards white). Scored as the gain over the default on the
held-out colour sets and on tuning pairs drawn the same way from the training split
(`tools/view_fusion_tuning.py`), which is where such a step would have to be chosen. Used for
the model card's "One rain colour per pair"; run from the repository root:

    PYTHONPATH=. .venv/bin/python tools/rain_colour_probe.py photos-medium photos-heavy \
        photos-light clean
"""

import argparse
from pathlib import Path

import numpy as np
from probe_setup import sample_views, single_thread_engine, views_psnr
from view_fusion_tuning import tuning_pairs

from stereo_derain_ros.data.heldout import LUMA, PHOTO_VEIL_SCALE
from stereo_derain_ros.data.specs import open_dataset
from stereo_derain_ros.engine import DerainEngine
from stereo_derain_ros.evaluation.disparity import num_disparities_for, score_disparity
from stereo_derain_ros.pixels import to_uint8
from stereo_derain_ros.rain.params import rain_params
from stereo_derain_ros.rain.render import rain_radiances
from stereo_derain_ros.sgbm import sgbm_disparity

ALPHA_CAP = 0.6
MIN_REMOVED = 2.0 / 255.0
TUNING_SETS = ('medium', 'heavy', 'light', 'clean')


def fitted_grey(rainy: list[np.ndarray], derained: list[np.ndarray]) -> float | None:
    """Return the grey nearest (weighted least squares) to the lines from derained to rainy."""
    numerator = denominator = 0.0
    for seen, kept in zip(rainy, derained):
        removed = seen - kept
        norm2 = (removed * removed).sum(2)
        used = norm2 > MIN_REMOVED ** 2
        total = removed.sum(2)
        numerator += (norm2 * kept.sum(2) - total * (removed * kept).sum(2))[used].sum()
        denominator += (3.0 * norm2 - total * total)[used].sum()
    return numerator / denominator if denominator > 0 else None


def resaturated(rainy: np.ndarray, derained: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Return the derained luma with the chroma of the rainy view with its rain laid off."""
    removed, towards = rainy - derained, colour - derained
    alpha = (removed * towards).sum(2) / np.maximum((towards * towards).sum(2), 1e-4)
    alpha = np.where((removed * removed).sum(2) < MIN_REMOVED ** 2, 0.0,
                     np.clip(alpha, 0.0, ALPHA_CAP))[..., None]
    unveiled = (rainy - alpha * colour) / (1.0 - alpha)
    return np.clip(unveiled + ((derained - unveiled) @ LUMA)[..., None], 0.0, 1.0)


def variants(engine: DerainEngine, rainy: list[np.ndarray], clean: list[np.ndarray],
             preset: str | None) -> dict[str, list[np.ndarray]]:
    """Return the default's views and each resaturated variant's (uint8)."""
    derained = list(engine.derain(*rainy, 'rgb'))
    unit = [[view.astype(np.float64) / 255.0 for view in views] for views in (rainy, derained)]
    colours = {'fitted grey': fitted_grey(*unit)}
    if preset is not None:
        colours["renderer's colour"] = rain_radiances(
            tuple(clean), rain_params(preset, veil_scale=PHOTO_VEIL_SCALE))[0].astype(np.float64)
    outputs = {'default': derained}
    for name, colour in colours.items():
        outputs[name] = derained if colour is None else [
            to_uint8(resaturated(seen, kept, colour).astype(np.float32))
            for seen, kept in zip(*unit)]
    return outputs


def report(title: str, scores: dict[str, list[float]], bad3: dict[str, list[float]]) -> None:
    base = np.array(scores['default'])
    parts = [f'default {base.mean():.2f} dB']
    for name, values in scores.items():
        if name != 'default':
            gains = np.array(values) - base
            parts.append(f'{name} {gains.mean():+.2f} (worst pair {gains.min():+.2f})')
    if bad3:
        parts.append('SGBM bad-3px ' + ' / '.join(f'{name} {100 * np.mean(values):.1f} %'
                                                 for name, values in bad3.items()))
    print(f'{title}: ' + ' | '.join(parts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('sets', nargs='+', help='held-out colour sets, e.g. photos-medium')
    parser.add_argument('--photos', type=Path, default=Path('data/photos'))
    parser.add_argument('--pairs', type=int, default=12, help='tuning pairs per set')
    options = parser.parse_args()
    engine = single_thread_engine()
    for name in options.sets:
        dataset = open_dataset(f'heldout:{name}', options.photos)
        preset = name.split('-')[1] if name.startswith('photos-') else None
        scores: dict[str, list[float]] = {}
        bad3: dict[str, list[float]] = {}
        for index in range(len(dataset)):
            sample = dataset[index]
            rainy, clean = (sample_views(sample, kind) for kind in ('rainy', 'clean'))
            truth = sample['disparity'].numpy().squeeze()
            disparities = num_disparities_for(truth)
            for key, views in variants(engine, rainy, clean, preset).items():
                scores.setdefault(key, []).append(views_psnr(views, clean))
                estimate = sgbm_disparity(views[0], views[1], disparities)
                bad3.setdefault(key, []).append(
                    score_disparity(estimate, truth, disparities).bad3)
        report(f'held-out {name}', scores, bad3)
    for name, pairs in tuning_pairs(options.photos, options.pairs).items():
        if name not in TUNING_SETS:
            continue
        scores = {}
        for pair in pairs:
            for key, views in variants(engine, pair['rainy'], pair['clean'],
                                       None if name == 'clean' else name).items():
                scores.setdefault(key, []).append(views_psnr(views, pair['clean']))
        report(f'tuning {name}', scores, {})


if __name__ == '__main__':
    main()
