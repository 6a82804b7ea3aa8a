"""Weighted sums of reconstruction losses over both views of a stereo pair.

`ssim` is APANet's loss, 1 − SSIM with an 11×11 Gaussian window (σ = 1.5) over the six channels
of both views; `l1` and `charbonnier` keep colours and flat regions honest where SSIM is blind to
small offsets; `mse` is NAFSSR's. A spec string such as `l1=1,ssim=0.2` selects and weights them.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from stereo_derain_ros.evaluation.metrics import ssim_map

CHARBONNIER_EPS = 1e-3


def _l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (output - target).abs().mean()


def _mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (output - target).pow(2).mean()


def _charbonnier(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((output - target).pow(2) + CHARBONNIER_EPS ** 2).mean()


def _one_minus_ssim(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 1.0 - ssim_map(output.float(), target.float()).mean()


LOSS_TERMS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    'l1': _l1,
    'mse': _mse,
    'charbonnier': _charbonnier,
    'ssim': _one_minus_ssim,
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
                 targets: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Return the weighted total and each term's value (floats, for logging)."""
        output = torch.cat(outputs, dim=1).float()
        target = torch.cat(targets, dim=1).float()
        total = output.new_zeros(())
        parts = {}
        for name, weight in self.weights.items():
            value = LOSS_TERMS[name](output, target)
            parts[name] = float(value.detach())
            if weight:
                total = total + weight * value
        return total, parts
