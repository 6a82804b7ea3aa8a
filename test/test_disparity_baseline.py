"""SGBM scoring and the classical stereo-minimum baseline on a synthetic fronto-parallel scene."""

import cv2
import numpy as np
import pytest
import torch

from stereo_derain_ros.evaluation.baseline import stereo_min_baseline
from stereo_derain_ros.evaluation.disparity import (
    num_disparities_for,
    right_view_disparity,
    score_disparity,
    sgbm_disparity,
)
from stereo_derain_ros.evaluation.metrics import psnr

SHIFT = 6


def _scene(height: int = 64, width: int = 112) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    texture = cv2.GaussianBlur(rng.random((height, width + SHIFT, 3)).astype(np.float32), (3, 3),
                               0.8)
    # The right camera sits to the right, so a scene point appears SHIFT px further left there.
    left = texture[:, :width]
    right = texture[:, SHIFT:]
    disparity = np.full((height, width), float(SHIFT), np.float32)
    return left, right, disparity


def _streaks(image: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rainy = image.copy()
    for _ in range(25):
        x, y = int(rng.integers(0, image.shape[1])), int(rng.integers(0, image.shape[0]))
        cv2.line(rainy, (x, y), (x + 3, y + 14), (1.0, 1.0, 1.0), 1)
    return rainy


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(psnr(torch.from_numpy(a).permute(2, 0, 1), torch.from_numpy(b).permute(2, 0, 1)))


def test_search_range_follows_ground_truth():
    assert num_disparities_for(np.array([[5.0, np.inf]])) == 16
    assert num_disparities_for(np.array([[40.0]])) == 48
    assert num_disparities_for(None) == 128


def test_sgbm_recovers_a_known_shift_and_scores_it():
    left, right, truth = _scene()
    estimate = sgbm_disparity(left, right, 16)
    score = score_disparity(estimate, truth, 16)
    assert score.density > 0.8
    assert score.epe < 0.5
    assert score.bad3 < 0.1
    right_estimate = right_view_disparity(left, right, 16)
    assert np.nanmedian(right_estimate[:, :-16]) == pytest.approx(SHIFT, abs=0.5)


def test_unmatched_pixels_count_as_bad_and_invalid_truth_is_ignored():
    truth = np.full((4, 40), 5.0, np.float32)
    truth[0] = np.inf
    estimate = np.full_like(truth, 5.0)
    estimate[1, 20:] = np.nan
    score = score_disparity(estimate, truth, 16)
    assert score.epe == 0.0
    assert score.bad3 == pytest.approx(20 / 72)
    assert score.density == pytest.approx(52 / 72)


def test_stereo_minimum_removes_part_of_the_rain():
    left, right, _ = _scene()
    rainy_left, rainy_right = _streaks(left, 1), _streaks(right, 2)
    out_left, out_right = stereo_min_baseline(rainy_left, rainy_right, 16)
    assert out_left.shape == left.shape and out_right.dtype == np.float32
    assert _psnr(out_left, left) > _psnr(rainy_left, left) + 3.0
    assert _psnr(out_right, right) > _psnr(rainy_right, right) + 3.0


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match='multiple of 16'):
        sgbm_disparity(np.zeros((8, 32, 3), np.uint8), np.zeros((8, 32, 3), np.uint8), 10)
    with pytest.raises(ValueError, match='H×W×3'):
        sgbm_disparity(np.zeros((8, 32), np.uint8), np.zeros((8, 32), np.uint8), 16)
