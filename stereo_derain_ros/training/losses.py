"""Weighted sums of reconstruction losses over both views of a stereo pair.

`ssim` is APANet's loss, 1 − SSIM with an 11×11 Gaussian window (σ = 1.5) over the six channels
of both views; `l1` and `charbonnier` keep colours and flat regions honest where SSIM is blind to
small offsets; `mse` is NAFSSR's. A spec string such as `l1=1,ssim=0.2` selects and weights them.

Two terms exist because plain L1 rewards doing nothing: rain covers a few percent of the pixels
and L1 is median-seeking, so a pixel the network is unsure about is best left rainy.
`rain_l1` weighs each pixel by how much rain the rainy input holds there (up to
`RAIN_WEIGHT_GAIN` + 1 times), so missed streaks cost what they cost in PSNR; `lowpass` compares
`LOWPASS_WINDOW`-pixel means, so a brightness or colour shift that per-pixel terms see as noise
is penalised on its own (the rain-free target is a shift under 0.5/255).

`log_l1` and `log_mse` average the logarithm of each pair's own error, as the evaluation averages
each pair's PSNR: the gradient of a pair is divided by its error, so a light-rain pair that is
1 dB from its target weighs as much as a heavy one that is 1 dB away, where a plain mean lets the
heavy pairs of a batch set the step. The floors (`LOG_L1_FLOOR`, `LOG_MSE_FLOOR`: one grey level,
40 dB) stop rain-free pairs, whose error is near zero, from taking the whole step.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stereo_derain_ros.evaluation.metrics import ssim_map

CHARBONNIER_EPS = 1e-3
# A pixel whose rainy input is off by RAIN_WEIGHT_SCALE or more counts RAIN_WEIGHT_GAIN + 1 times.
RAIN_WEIGHT_GAIN = 9.0
RAIN_WEIGHT_SCALE = 8.0 / 255.0
LOWPASS_WINDOW = 8
LOG_L1_FLOOR = 1.0 / 255.0
LOG_MSE_FLOOR = 1e-4


def _l1(output: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
    return (output - target).abs().mean()


def _mse(output: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
    return (output - target).pow(2).mean()


def _charbonnier(output: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor
                 ) -> torch.Tensor:
    return torch.sqrt((output - target).pow(2) + CHARBONNIER_EPS ** 2).mean()


def _one_minus_ssim(output: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor
                    ) -> torch.Tensor:
    return 1.0 - ssim_map(output.float(), target.float()).mean()


def rain_weights(rainy: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel weights in [1, 1 + RAIN_WEIGHT_GAIN] from the rain the input carries there."""
    rain = (rainy - target).abs().amax(dim=1, keepdim=True)
    return 1.0 + RAIN_WEIGHT_GAIN * (rain / RAIN_WEIGHT_SCALE).clamp(max=1.0)


def _rain_l1(output: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
    weights = rain_weights(rainy, target)
    error = (output - target).abs().mean(dim=1, keepdim=True)
    return (weights * error).sum() / weights.sum()


def _lowpass(output: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
    return (F.avg_pool2d(output, LOWPASS_WINDOW, ceil_mode=True)
            - F.avg_pool2d(target, LOWPASS_WINDOW, ceil_mode=True)).abs().mean()


def _per_pair(error: torch.Tensor) -> torch.Tensor:
    return error.flatten(start_dim=1).mean(dim=1)


def _log_l1(output: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
    return torch.log(_per_pair((output - target).abs()) + LOG_L1_FLOOR).mean()


def _log_mse(output: torch.Tensor, target: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
    return torch.log(_per_pair((output - target).pow(2)) + LOG_MSE_FLOOR).mean()


LOSS_TERMS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    'l1': _l1,
    'mse': _mse,
    'charbonnier': _charbonnier,
    'ssim': _one_minus_ssim,
    'rain_l1': _rain_l1,
    'lowpass': _lowpass,
    'log_l1': _log_l1,
    'log_mse': _log_mse,
}


def parse_loss_spec(spec: str) -> dict[str, float]:
    """Parse `name=weight,...` into a dict; raise ValueError naming the bad part."""
    weights: dict[str, float] = {}
    for part in filter(None, (item.strip() for item in spec.split(','))):
        name, _, value = part.partition('=')
        name = name.strip()
        if name not in LOSS_TERMS:
            raise ValueError(f'unknown loss term {name!r} in {spec!r}; expected any of '
                             f'{", ".join(LOSS_TERMS)} as name=weight')
        try:
            weights[name] = float(value) if value else 1.0
        except ValueError:
            raise ValueError(f'loss weight for {name!r} must be a number, got {value!r}') from None
        if weights[name] < 0:
            raise ValueError(f'loss weight for {name!r} must be >= 0, got {weights[name]}')
    if not weights or not any(weights.values()):
        raise ValueError(f'loss spec {spec!r} selects no term with a positive weight')
    return weights


@dataclass
class StereoLoss:
    weights: dict[str, float]

    @classmethod
    def from_spec(cls, spec: str) -> 'StereoLoss':
        return cls(parse_loss_spec(spec))

    def __call__(self, outputs: tuple[torch.Tensor, torch.Tensor],
                 targets: tuple[torch.Tensor, torch.Tensor],
                 inputs: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Return the weighted total and each term's value (floats, for logging).

        `inputs` are the rainy views the outputs were derained from (`rain_l1` weighs by them).
        """
        output = torch.cat(outputs, dim=1).float()
        target = torch.cat(targets, dim=1).float()
        rainy = torch.cat(inputs, dim=1).float()
        total = output.new_zeros(())
        parts = {}
        for name, weight in self.weights.items():
            value = LOSS_TERMS[name](output, target, rainy)
            parts[name] = float(value.detach())
            if weight:
                total = total + weight * value
        return total, parts
