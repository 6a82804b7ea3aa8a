"""The refiner's training settings, without torch, so that `--help` can quote them cheaply."""

from dataclasses import dataclass


@dataclass
class RefinerTrainingConfig:
    pairs: int = 400
    # Procedural scenes under preset rain with its full veil, drawn after the photo pairs; their
    # wanted view is the veiled clean one (training.refiner).
    procedural_pairs: int = 0
    seed: int = 11
    steps: int = 30000
    batch_patches: int = 16
    patch: int = 96
    learning_rate: float = 2e-3
    # Steps over which the learning rate rises linearly from zero (training.refiner).
    warmup_steps: int = 500
    # Squared error (unit range) added inside each patch's log: 60 dB, below any frame's error.
    log_floor: float = 1e-6
    hidden: int = 16
