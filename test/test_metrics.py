"""The torch metrics must agree with scikit-image's reference implementations."""

import numpy as np
import pytest
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
import torch

from stereo_derain_ros.evaluation.metrics import image_metrics, luma, psnr, ssim


def _pair(seed: int, height: int = 40, width: int = 56) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = rng.random((height, width, 3)) * 0.6 + 0.2
    noisy = np.clip(clean + rng.normal(0.0, 0.05 * (seed + 1), clean.shape), 0.0, 1.0)
    return clean, noisy


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float()


def _skimage_ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None) -> float:
    return structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, channel_axis=channel_axis)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_rgb_metrics_agree_with_skimage(seed):
    clean, noisy = _pair(seed)
    ours = image_metrics(_tensor(noisy), _tensor(clean))
    clean32, noisy32 = _tensor(clean).permute(1, 2, 0).double().numpy(), \
        _tensor(noisy).permute(1, 2, 0).double().numpy()
    assert ours['psnr'] == pytest.approx(
        peak_signal_noise_ratio(clean32, noisy32, data_range=1.0), abs=0.01)
    assert ours['ssim'] == pytest.approx(_skimage_ssim(clean32, noisy32, -1), abs=0.001)


@pytest.mark.parametrize('seed', [0, 3])
def test_luma_metrics_agree_with_skimage(seed):
    clean, noisy = _pair(seed)
    clean32, noisy32 = _tensor(clean), _tensor(noisy)
    y_clean = rgb2ycbcr(clean32.permute(1, 2, 0).double().numpy())[..., 0] / 255.0
    y_noisy = rgb2ycbcr(noisy32.permute(1, 2, 0).double().numpy())[..., 0] / 255.0
    assert luma(clean32)[0, 0].double().numpy() == pytest.approx(y_clean, abs=1e-5)
    ours = image_metrics(noisy32, clean32)
    assert ours['psnr_y'] == pytest.approx(
        peak_signal_noise_ratio(y_clean, y_noisy, data_range=1.0), abs=0.01)
    assert ours['ssim_y'] == pytest.approx(_skimage_ssim(y_clean, y_noisy, None), abs=0.001)


def test_identical_images_are_perfect_and_noise_is_worse():
    clean, noisy = _pair(1)
    clean_t, noisy_t = _tensor(clean), _tensor(noisy)
    assert float(ssim(clean_t, clean_t)[0]) == pytest.approx(1.0, abs=1e-9)
    assert float(psnr(clean_t, clean_t)[0]) > 100.0
    assert float(psnr(noisy_t, clean_t)[0]) < 40.0


def test_bad_shapes_are_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match='shape mismatch'):
        psnr(torch.zeros(3, 20, 20), torch.zeros(3, 20, 21))
    with pytest.raises(ValueError, match='at least 11'):
        ssim(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))


def test_mean_shift_is_the_signed_brightness_change_in_grey_levels():
    clean = _tensor(_pair(2)[0])
    darker = (clean - 3.0 / 255.0).clamp(0.0, 1.0)
    shift = image_metrics(darker, clean)['shift']
    expected = float((darker.double() - clean.double()).mean()) * 255.0
    assert shift == pytest.approx(expected, abs=1e-6) and -3.01 < shift < -2.0
    assert image_metrics(clean, clean)['shift'] == 0.0
