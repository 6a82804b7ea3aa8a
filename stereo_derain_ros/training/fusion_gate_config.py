"""The fusion gate's training settings, without torch, so that `--help` can quote them cheaply."""

from dataclasses import dataclass


@dataclass
class GateTrainingConfig:
    pairs: int = 100
    seed: int = 11
    steps: int = 2000
    batch_pixels: int = 8192
    learning_rate: float = 3e-3
    pixels_per_view: int = 30000
    rain_free_weight: float = 300.0
    disparity_range: int = 64
    hidden: int = 32
