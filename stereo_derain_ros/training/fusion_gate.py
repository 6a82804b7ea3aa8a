"""Fit the second-view fusion's gate on training photographs (`stereo-derain train-fusion-gate`).

The gate decides, per pixel, how much of the other view's match replaces what the derainer
returned. The best share at a pixel is known wherever the clean view is: (clean - derained) .
gap / |gap|², so the gate is fitted by least squares on pixels of training-photograph pairs with
fresh rain of every strength and without rain, drawn as the held-out photo sets draw theirs but
from the library's training split, derained by the derainer it will follow. Rain-free pairs weigh
more (`rain_free_weight`): their errors are tiny, and an unweighted fit lets the gate blend
texture on clean frames for a little more rain removed elsewhere.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from stereo_derain_ros.data.heldout import photo_sample
from stereo_derain_ros.data.photos.library import PhotoLibrary
from stereo_derain_ros.data.seeds import generator
from stereo_derain_ros.engine.view_fusion import gate_features
from stereo_derain_ros.models.fusion_gate import FEATURES, FusionGate
from stereo_derain_ros.pixels import to_uint8, to_unit_float
from stereo_derain_ros.sgbm import sgbm_disparity, warp_disparity_to_right
from stereo_derain_ros.training.fusion_gate_config import GateTrainingConfig

# (rain preset or None for none, monochrome), taken in turn pair by pair.
PAIR_KINDS = (('medium', False), ('heavy', False), ('light', False), ('medium', True),
              (None, False))
SEED_PURPOSE = 'val-compose'


@dataclass
class GateSamples:
    """Pixels the gate can open on: features, gap to the match, wanted change, loss weight."""

    features: torch.Tensor
    gaps: torch.Tensor
    wanted: torch.Tensor
    weights: torch.Tensor


Derainer = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def gate_samples(derain: Derainer, library: PhotoLibrary, config: GateTrainingConfig,
                 progress: Callable[[int], None] = lambda done: None) -> GateSamples:
    """Draw `config.pairs` pairs, derain them and sample pixels where the gate may open.

    `derain` takes and returns uint8 H×W×3 RGB views; `progress` is called after each pair.
    """
    rng = np.random.default_rng(config.seed)
    parts: dict[str, list[np.ndarray]] = {'features': [], 'gaps': [], 'wanted': [], 'weights': []}
    for index in range(config.pairs):
        preset, mono = PAIR_KINDS[index % len(PAIR_KINDS)]
        _, sample = photo_sample(library, index, generator(SEED_PURPOSE, config.seed, index),
                                 preset, mono)
        rainy, clean = ([to_uint8(sample[f'{kind}_{view}'].permute(1, 2, 0).numpy())
                         for view in ('left', 'right')] for kind in ('rainy', 'clean'))
        derained = derain(rainy[0], rainy[1])
        left_disparity = sgbm_disparity(derained[0], derained[1], config.disparity_range)
        disparities = (left_disparity, warp_disparity_to_right(left_disparity))
        rainy, clean, derained = ([to_unit_float(view) for view in views]
                                  for views in (rainy, clean, derained))
        for own, (view, disparity) in enumerate(zip(('left', 'right'), disparities)):
            features, gap = gate_features(rainy[own], derained[own], rainy[1 - own],
                                          derained[1 - own], disparity, view)
            features, gap = features.reshape(-1, len(FEATURES)), gap.reshape(-1, 3)
            open_pixels = np.flatnonzero((features[:, 0] > 0) & (features[:, 3] > 0))
            chosen = rng.choice(open_pixels, min(config.pixels_per_view, open_pixels.size),
                                replace=False)
            parts['features'].append(features[chosen])
            parts['gaps'].append(gap[chosen])
            parts['wanted'].append((clean[own] - derained[own]).reshape(-1, 3)[chosen])
            weight = config.rain_free_weight if preset is None else 1.0
            parts['weights'].append(np.full(chosen.size, weight, np.float32))
        progress(index + 1)
    return GateSamples(**{key: torch.from_numpy(np.concatenate(value))
                          for key, value in parts.items()})


def fit_gate(samples: GateSamples, config: GateTrainingConfig,
             progress: Callable[[int, float], None] = lambda step, loss: None
             ) -> tuple[FusionGate, float]:
    """Fit a gate by weighted least squares; return it (eval mode) and its last batch loss."""
    torch.manual_seed(config.seed)
    gate = FusionGate(config.hidden)
    optimiser = torch.optim.Adam(gate.parameters(), lr=config.learning_rate)
    batches = torch.Generator().manual_seed(config.seed)
    count = samples.features.shape[0]
    if count == 0:
        raise ValueError('no pixel where the derainer removed rain and SGBM found a match; '
                         'expected rainy training pairs (more --pairs)')
    loss = torch.zeros(())
    for step in range(config.steps):
        batch = torch.randint(0, count, (config.batch_pixels,), generator=batches)
        share = gate(samples.features[batch])[:, None]
        error = ((share * samples.gaps[batch] - samples.wanted[batch]) ** 2).mean(dim=1)
        loss = (error * samples.weights[batch]).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        progress(step + 1, loss.item())
    return gate.eval(), loss.item()
