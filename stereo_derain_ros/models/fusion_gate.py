"""FusionGate: how much of the other view the second-view fusion takes at each pixel.

A small MLP over four per-pixel cues that a hand-set rule weighs poorly together: how far the
derainer darkened the pixel (it found rain there), how far it darkened the pixel's match in the
other view (rain there too makes the match a poor stand-in), how far the two disagree, and whether
SGBM found a match at all. Its output is a share in [0, 1], scaled by the darkening (full at
DARKENED_SCALE_GREY levels) so that a pixel the derainer left alone is never changed: rain-free
frames stay as the derainer returns them. Trained by `stereo-derain train-fusion-gate`; used by
`engine.view_fusion`.
"""

from dataclasses import dataclass

import torch
from torch import nn

FEATURES = ('darkened', 'other_darkened', 'disagreement', 'matched')
# Grey levels (0-255) that scale the features to about unit size.
DARKENED_SCALE_GREY = 10.0
DISAGREEMENT_SCALE_GREY = 30.0


@dataclass
class FusionGateConfig:
    hidden: int = 32


class FusionGate(nn.Module):
    """Map features (..., 4) (`FEATURES`, scaled) to shares (...) of the other view.

    Pixels rather than images: the engine evaluates it only where the share can be non-zero
    (the derainer darkened the pixel and SGBM matched it), often a small part of the frame.
    """

    name = 'fusion_gate'

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.config = FusionGateConfig(hidden)
        self.layers = nn.Sequential(
            nn.Linear(len(FEATURES), hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        darkened, matched = features[..., 0], features[..., 3]
        share = torch.sigmoid(self.layers(features)[..., 0])
        return share * darkened.clamp(0.0, 1.0) * matched
