"""Refiner: a small full-resolution net that corrects what the derainer left, pixel by pixel.

The deraining network works at 1/4 resolution and below, and its error sits on streak pixels as
fine detail: faint streaks a few grey levels high it does not touch, strong ones it leaves a
quarter of (docs/model_card.md, "Where the remaining error sits"); a second pass of the same
network over its own output changes nothing. This net reads each derained view at full
resolution beside what the derainer took away (rainy minus derained, amplified so that a grey
level is a sizeable input) and returns one brightness correction per pixel, added to every
channel: rain is grey light, so a colour view keeps its hues and a monochrome view stays grey.
A refiner for colour views may return one correction per channel instead (`corrections` 3): on
colour photographs a third of the error the network leaves on rain is a colour cast along the
streaks, which a grey correction cannot reach (docs/model_card.md, "Per-channel corrections").
3×3 convolutions, five by default (an 11×11 neighbourhood, the shape of files that do not say),
seven in the packaged one (15×15), zero-initialised output, so an untrained refiner returns the
derainer's output unchanged. Trained on its own behind a fixed derainer (`stereo-derain
train-refiner`); used by `engine.refinement`.
"""

from dataclasses import dataclass

import torch
from torch import nn

FEATURES = ('derained_red', 'derained_green', 'derained_blue', 'removed_red', 'removed_green',
            'removed_blue')
# One grey level (1/255) of removed rain, and of the correction, is this much input or output.
GREY_GAIN = 255.0 / 10.0
MIDDLE_LAYERS = 3
# Corrections per pixel: one added to every channel, or one for each colour channel.
GREY_CORRECTION = 1
CHANNEL_CORRECTIONS = 3


@dataclass
class RefinerConfig:
    hidden: int = 16
    middle_layers: int = MIDDLE_LAYERS
    corrections: int = GREY_CORRECTION


class Refiner(nn.Module):
    """Map N×3×H×W rainy and derained views ([0, 1]) to refined derained views."""

    name = 'refiner'

    def __init__(self, hidden: int = 16, middle_layers: int = MIDDLE_LAYERS,
                 corrections: int = GREY_CORRECTION) -> None:
        super().__init__()
        if corrections not in (GREY_CORRECTION, CHANNEL_CORRECTIONS):
            raise ValueError(f'a refiner returns {GREY_CORRECTION} or {CHANNEL_CORRECTIONS} '
                             f'corrections per pixel, not {corrections}')
        self.config = RefinerConfig(hidden, middle_layers, corrections)
        layers: list[nn.Module] = [nn.Conv2d(len(FEATURES), hidden, 3, padding=1), nn.ReLU()]
        for _ in range(middle_layers):
            layers += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU()]
        out = nn.Conv2d(hidden, corrections, 3, padding=1)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.layers = nn.Sequential(*layers, out)

    @property
    def receptive_radius(self) -> int:
        """Return how many pixels each side of an output pixel the refiner reads (default 5)."""
        return sum(conv.dilation[0] * (conv.kernel_size[0] // 2) for conv in _convolutions(self))

    def forward(self, rainy: torch.Tensor, derained: torch.Tensor) -> torch.Tensor:
        return self.refined(derained, self.layers(self.features(rainy, derained)))

    @staticmethod
    def features(rainy: torch.Tensor, derained: torch.Tensor) -> torch.Tensor:
        """Return the N×6×H×W input (`FEATURES`): the derained view and what was taken away."""
        return torch.cat([derained - 0.5, (rainy - derained) * GREY_GAIN], dim=1)

    @staticmethod
    def refined(derained: torch.Tensor, correction: torch.Tensor) -> torch.Tensor:
        """Return the derained views plus the N×1×H×W or N×3×H×W correction `layers` gave.

        As floats; apart from `forward` so that the engine can run `layers` its own way on a CPU.
        """
        return derained + correction.float() / GREY_GAIN


def grown_refiner(refiner: Refiner, hidden: int, middle_layers: int,
                  corrections: int | None = None) -> Refiner:
    """Return a refiner of at least `refiner`'s width and depth that computes what it computes.

    So that a fit can go on from a trained refiner with more capacity instead of starting again
    (its fits took hours on a CPU). New channels read what the old ones read, from fresh random
    weights, but nothing reads them yet: their outgoing weights start at zero and learn from
    there. New middle layers come after the old ones as identities (the centre tap 1 from each
    channel to itself), which the ReLU behind them keeps exact, its input being a ReLU's output.
    A grey correction grown to one per channel (`corrections`, default: the refiner's own) starts
    as the grey one repeated for each channel.
    """
    old = refiner.config
    corrections = old.corrections if corrections is None else corrections
    if (hidden < old.hidden or middle_layers < old.middle_layers
            or corrections < old.corrections):
        old_shape = _shape(old.hidden, old.middle_layers, old.corrections)
        raise ValueError(f'cannot grow a refiner of {old_shape} '
                         f'to {_shape(hidden, middle_layers, corrections)}; a grown refiner is at '
                         'least as wide and as deep and returns at least as many corrections')
    grown = Refiner(hidden, middle_layers, corrections)
    old_convs = _convolutions(refiner)
    new_convs = _convolutions(grown)
    kept = old_convs[:-1] + [None] * (middle_layers - old.middle_layers) + old_convs[-1:]
    with torch.no_grad():
        for source, target in zip(kept, new_convs):
            if source is None:
                nn.init.dirac_(target.weight)
                target.bias.zero_()
                continue
            outputs, inputs = source.weight.shape[:2]
            # Each new correction repeats the grey one (the output layer's single row).
            rows = target.weight.shape[0] if source is old_convs[-1] else outputs
            target.weight[:rows, inputs:] = 0.0
            target.weight[:rows, :inputs] = source.weight
            target.bias[:rows] = source.bias
    return grown


def _shape(hidden: int, middle_layers: int, corrections: int) -> str:
    return (f'width {hidden}, {middle_layers} middle layers and {corrections} '
            f'correction{"s" if corrections > 1 else ""} per pixel')


def _convolutions(refiner: Refiner) -> list[nn.Conv2d]:
    return [layer for layer in refiner.layers if isinstance(layer, nn.Conv2d)]
