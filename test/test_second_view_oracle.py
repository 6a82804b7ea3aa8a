"""The second-view oracle behind the model card's "What the second view is worth".

Its numbers claim that averaging the two derained views on the same surface removes what each
view left alone; on a pair whose residuals lie in different places that must show, and a wrong
disparity must take it away.
"""

import importlib.util

import numpy as np

from conftest import REPO_ROOT

_SPEC = importlib.util.spec_from_file_location('second_view_oracle',
                                               REPO_ROOT / 'tools' / 'second_view_oracle.py')
oracle = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(oracle)

DISPARITY = 6


def _pair() -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Return a textured clean pair with constant disparity, and that disparity map."""
    rng = np.random.default_rng(0)
    height, width = 64, 128
    texture = rng.uniform(40, 200, (height, width + DISPARITY, 1))
    texture = np.repeat(texture, 3, axis=2)
    # right[x - d] = left[x]: the scene column that the left view sees at x.
    left = texture[:, :width]
    right = texture[:, DISPARITY:DISPARITY + width]
    return [left, right], [left.copy(), right.copy()], np.full((height, width), DISPARITY,
                                                                np.float32)


def _with_streaks(clean: list[np.ndarray]) -> list[np.ndarray]:
    """Leave a bright residual streak in each view, at different columns of the scene."""
    left, right = (view.copy() for view in clean)
    left[:, 40:42] += 20
    right[:, 80:82] += 20
    return [np.clip(view, 0, 255).astype(np.uint8) for view in (left, right)]


def test_averaging_the_views_on_the_same_surface_removes_what_one_view_left():
    clean, _, disparity = _pair()
    derained = _with_streaks(clean)
    rainy = _with_streaks([view + 10 for view in clean])
    row = oracle.fusions(rainy, derained, clean, disparity, np.random.default_rng(0))
    assert row['same_surface'] > 0.9
    assert row['oracle_mean'] > row['derained'] + 2
    assert row['oracle_darker'] > row['oracle_mean']
    assert row['oracle_mean_off_1.0px'] < row['oracle_mean']


def test_a_wrong_disparity_leaves_no_surface_to_average():
    clean, _, disparity = _pair()
    derained = _with_streaks(clean)
    row = oracle.fusions(derained, derained, clean, disparity + 3, np.random.default_rng(0))
    assert row['same_surface'] < 0.1
    assert abs(row['oracle_mean'] - row['derained']) < 0.5
