"""FusionGate: per pixel, how much of the other view to take and how much rain to give back.

A small convolutional net over six cue maps of a derained view and its match in the other view
(`FEATURES`): how far the derainer darkened the pixel (it found rain there) and the match, how
far the two derained views disagree, whether SGBM matched at all, how far the two rainy inputs
disagree, and the derained brightness. Two shares come out. The first moves the pixel towards its
match: what the network left of a streak in one view is background in the other. The second moves
it back towards the rainy input: where both rainy views agree at the match, what the network
darkened was most likely scene, not rain, since a streak sits at its own depth. That share
shrinks as the rainy views disagree and is zero from DISAGREEMENT_SCALE_GREY levels on, whatever
the net makes of the neighbourhood: a streak that one view shows and the other does not is never
given back. A neighbourhood (7×7 pixels) rather than one pixel, because a streak and an SGBM
mismatch look alike per pixel but not in shape. Both shares are zero where the derainer darkened
nothing or SGBM found no match, so a pixel the derainer left alone is never changed. Trained by
`stereo-derain train-fusion-gate`; used by `engine.view_fusion`.
"""

from dataclasses import dataclass

import torch
from torch import nn

FEATURES = ('darkened', 'other_darkened', 'disagreement', 'matched', 'input_disagreement',
            'brightness')
SHARES = ('towards_match', 'towards_input')
# Grey levels (0-255) that scale the features to about unit size.
DARKENED_SCALE_GREY = 10.0
DISAGREEMENT_SCALE_GREY = 30.0


@dataclass
class FusionGateConfig:
    hidden: int = 16


class FusionGate(nn.Module):
    """Map N×6×H×W feature maps (`FEATURES`, scaled) to N×2×H×W shares (`SHARES`) in [0, 1]."""

    name = 'fusion_gate'

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.config = FusionGateConfig(hidden)
        self.layers = nn.Sequential(
            nn.Conv2d(len(FEATURES), hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, len(SHARES), 1))

    @property
    def receptive_radius(self) -> int:
        """Return how many pixels each side of an output pixel the gate reads (3: a 7×7 patch)."""
        return sum(layer.dilation[0] * (layer.kernel_size[0] // 2) for layer in self.layers
                   if isinstance(layer, nn.Conv2d))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.shares(features, self.layers(features))

    @staticmethod
    def shares(features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Return the shares from the features and what `layers` made of them (N×2×H×W).

        Apart from `forward` so that the engine can run `layers` its own way on a CPU.
        """
        darkened, matched = features[:, 0:1], features[:, 3:4]
        input_disagreement = features[:, 4:5]
        shares = torch.sigmoid(logits)
        open_pixels = matched * (darkened > 0)
        # Rain given back only where the rainy views agree: none at DISAGREEMENT_SCALE_GREY.
        agreement = (1.0 - input_disagreement.abs()).clamp(min=0.0)
        return torch.cat([shares[:, 0:1] * darkened.clamp(0.0, 1.0),
                          shares[:, 1:2] * agreement], dim=1) * open_pixels
