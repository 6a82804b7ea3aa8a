"""PSNR and SSIM on RGB and on the BT.601 luma channel, computed in torch for speed.

The definitions follow scikit-image (`peak_signal_noise_ratio`, `structural_similarity` with
`gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1`), which is the
Wang et al. (2004) setting the deraining papers report; the tests hold the two within 0.01 dB and
0.001. A valid (unpadded) convolution gives exactly skimage's border-cropped mean.
"""

import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# ITU-R BT.601 studio-swing luma as MATLAB's and skimage's rgb2ycbcr compute it.
_LUMA_WEIGHTS = (65.481, 128.553, 24.966)


def _as_batch(image: torch.Tensor) -> torch.Tensor:
    if image.dim() == 3:
        return image.unsqueeze(0)
    if image.dim() != 4:
        raise ValueError(f'expected a C×H×W or N×C×H×W tensor, got shape {tuple(image.shape)}')
    return image


def luma(image: torch.Tensor) -> torch.Tensor:
    """Return the BT.601 Y channel in [0, 1] scale (16/255..235/255) of RGB images in [0, 1]."""
    image = _as_batch(image)
    if image.shape[1] != 3:
        raise ValueError(f'luma needs 3 RGB channels, got {image.shape[1]}')
    weights = image.new_tensor(_LUMA_WEIGHTS).view(1, 3, 1, 1)
    return (16.0 + (image * weights).sum(dim=1, keepdim=True)) / 255.0


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return the PSNR in dB of each image of a batch (data range 1), as shape N."""
    output, target = _as_batch(output).double(), _as_batch(target).double()
    if output.shape != target.shape:
        raise ValueError(f'shape mismatch: {tuple(output.shape)} vs {tuple(target.shape)}')
    mse = (output - target).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-20))


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    window = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    return window / window.sum()


def ssim_map(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return the per-channel SSIM map over the valid (fully windowed) region, N×C×h×w."""
    output, target = _as_batch(output), _as_batch(target)
    if output.shape != target.shape:
        raise ValueError(f'shape mismatch: {tuple(output.shape)} vs {tuple(target.shape)}')
    channels = output.shape[1]
    window = _gaussian_window(output.dtype, output.device)
    size = window.numel()
    if min(output.shape[-2:]) < size:
        raise ValueError(f'SSIM needs images of at least {size}×{size} px, got '
                         f'{tuple(output.shape[-2:])}')
    kernel_h = window.view(1, 1, 1, size).expand(channels, 1, 1, size)
    kernel_v = window.view(1, 1, size, 1).expand(channels, 1, size, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, kernel_h, groups=channels), kernel_v, groups=channels)

    mu_x, mu_y = blur(output), blur(target)
    var_x = blur(output * output) - mu_x * mu_x
    var_y = blur(target * target) - mu_y * mu_y
    cov_xy = blur(output * target) - mu_x * mu_y
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return numerator / denominator


def ssim(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return the mean SSIM of each image of a batch (channels averaged), as shape N."""
    return ssim_map(_as_batch(output).double(), _as_batch(target).double()).flatten(1).mean(dim=1)


def image_metrics(output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Return RGB and Y PSNR/SSIM of one C×H×W image pair, clamping the output to [0, 1].

    `shift` is the mean signed brightness difference in grey levels (of 255): a derainer that
    darkens or brightens whole frames shows it even where PSNR looks fine.
    """
    output = output.clamp(0.0, 1.0)
    values = {
        'psnr': psnr(output, target),
        'ssim': ssim(output, target),
        'psnr_y': psnr(luma(output), luma(target)),
        'ssim_y': ssim(luma(output), luma(target)),
        'shift': (output.double() - target.double()).mean().reshape(1) * 255.0,
    }
    return {name: float(value[0]) for name, value in values.items()}

