"""Whether the default leaves rain-free frames alone when they carry sensor noise or JPEG blocks.

The held-out rain-free sets are rendered with the training data's mild sensor model; cameras at
night or behind a compressed transport deliver more. This takes the rain-free held-out pairs,
adds zero-mean Gaussian noise (one field per view, grey for grey pairs) or re-encodes them as
JPEG, derains them with the engine's defaults and reports each output against its own input
(PSNR, both views, as the evaluation reports rain-free sets) and the mean brightness shift. Run
from the repository root:

    PYTHONPATH=. .venv/bin/python tools/rain_free_robustness.py clean real-clean
"""

import argparse
from pathlib import Path

import cv2
import numpy as np
from probe_setup import sample_views, single_thread_engine, views_psnr

from stereo_derain_ros.data.specs import open_dataset

# Grey levels (0-255) of the added noise's standard deviation, and the JPEG qualities.
NOISE_GREY = (3.0, 6.0)
JPEG_QUALITY = (60,)


def degraded(view: np.ndarray, kind: str, value: float, rng: np.random.Generator) -> np.ndarray:
    """Return an H×W×3 uint8 view with noise of `value` grey levels or JPEG of that quality."""
    if kind == 'jpeg':
        encoded = cv2.imencode('.jpg', view, [cv2.IMWRITE_JPEG_QUALITY, int(value)])[1]
        return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    grey = bool(np.all(view[..., :1] == view))
    shape = (*view.shape[:2], 1) if grey else view.shape
    noisy = (view[..., :1] if grey else view) + rng.normal(0.0, value, shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8).repeat(3 if grey else 1, axis=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('sets', nargs='+', help='rain-free held-out sets, e.g. clean real-clean')
    parser.add_argument('--photos', type=Path, default=Path('data/photos'))
    options = parser.parse_args()
    engine = single_thread_engine()
    degradations = ([('none', 0.0)] + [('noise', sigma) for sigma in NOISE_GREY]
                    + [('jpeg', quality) for quality in JPEG_QUALITY])
    print('set degradation | output vs input dB: mean (worst pair) | mean shift /255')
    for name in options.sets:
        dataset = open_dataset(f'heldout:{name}', options.photos)
        pairs = [sample_views(dataset[index], 'rainy') for index in range(len(dataset))]
        for kind, value in degradations:
            scores, shifts = [], []
            for index, pair in enumerate(pairs):
                rng = np.random.default_rng(index)
                views = [view if kind == 'none' else degraded(view, kind, value, rng)
                         for view in pair]
                outputs = engine.derain(*views, 'rgb')
                scores.append(views_psnr(outputs, views))
                shifts.append(np.mean([out.mean() - view.astype(np.float64).mean()
                                       for out, view in zip(outputs, views)]))
            label = kind if kind == 'none' else f'{kind} {value:g}'
            print(f'{name} {label} | {np.mean(scores):.2f} ({np.min(scores):.2f}) | '
                  f'{np.mean(shifts):+.3f}', flush=True)


if __name__ == '__main__':
    main()
