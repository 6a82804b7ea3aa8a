"""Fit the second-view fusion's gate on training photographs (`stereo-derain train-fusion-gate`).

The gate decides, per pixel, how much of the other view's match, and how much of the rainy
input, replaces what the derainer returned. Wherever the clean view is known the best correction
is too, so the gate is fitted to it on training-photograph pairs with fresh rain of every strength
and without rain, drawn as the held-out photo sets draw theirs but from the library's training
split, derained by the derainer it will follow.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from stereo_derain_ros.data.heldout import photo_sample
from stereo_derain_ros.data.photos.library import PhotoLibrary
from stereo_derain_ros.data.seeds import generator
from stereo_derain_ros.engine.view_fusion import gate_features, match_disparity
from stereo_derain_ros.models.fusion_gate import FusionGate
from stereo_derain_ros.pixels import to_uint8, to_unit_float
from stereo_derain_ros.sgbm import warp_disparity_to_right
from stereo_derain_ros.training.fusion_gate_config import GateTrainingConfig
from stereo_derain_ros.training.patches import check_patch_views, random_patch

# (rain preset or None for none, monochrome), taken in turn pair by pair.
PAIR_KINDS = (('medium', False), ('heavy', False), ('light', False), ('medium', True),
              (None, False))
SEED_PURPOSE = 'val-compose'


@dataclass
class GateViews:
    """Derained views of training pairs: gate features, both corrections and the wanted change.

    Each item is one view, C×H×W: features (`fusion_gate.FEATURES`), the gap to the match, the
    way back to the rainy input, and clean (rain-free pairs: rainy) minus derained.
    """

    features: list[torch.Tensor]
    to_match: list[torch.Tensor]
    to_input: list[torch.Tensor]
    wanted: list[torch.Tensor]


Derainer = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def gate_views(derain: Derainer, library: PhotoLibrary, config: GateTrainingConfig,
               progress: Callable[[int], None] = lambda done: None) -> GateViews:
    """Draw `config.pairs` pairs, derain them and compute what the gate learns from.

    `derain` takes and returns uint8 H×W×3 RGB views; `progress` is called after each pair.
    """
    collected = GateViews([], [], [], [])
    for index in range(config.pairs):
        preset, mono = PAIR_KINDS[index % len(PAIR_KINDS)]
        _, sample = photo_sample(library, index, generator(SEED_PURPOSE, config.seed, index),
                                 preset, mono)
        rainy, clean = ([to_uint8(sample[f'{kind}_{view}'].permute(1, 2, 0).numpy())
                         for view in ('left', 'right')] for kind in ('rainy', 'clean'))
        derained = derain(rainy[0], rainy[1])
        left_disparity = match_disparity(derained[0], derained[1], config.disparity_range)
        disparities = (left_disparity, warp_disparity_to_right(left_disparity))
        rainy, clean, derained = ([to_unit_float(view) for view in views]
                                  for views in (rainy, clean, derained))
        reference = rainy if preset is None else clean
        for own, (view, disparity) in enumerate(zip(('left', 'right'), disparities)):
            features, gap, back = gate_features(rainy[own], derained[own], rainy[1 - own],
                                                derained[1 - own], disparity, view)
            collected.features.append(torch.from_numpy(features))
            for part, image in ((collected.to_match, gap), (collected.to_input, back),
                                (collected.wanted, reference[own] - derained[own])):
                part.append(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))))
        progress(index + 1)
    return collected


def fit_gate(views: GateViews, config: GateTrainingConfig,
             progress: Callable[[int, float], None] = lambda step, loss: None
             ) -> tuple[FusionGate, float]:
    """Fit a gate on random patches; return it (eval mode) and its last batch loss.

    The loss is each patch's log squared error after the correction, so every patch weighs as a
    PSNR weighs it: a rain-free patch, whose error is tiny, counts as much as a heavy-rain one, and
    the gate learns to leave clean frames alone without a hand-set weight.
    """
    check_patch_views(views.features, config.patch)
    torch.manual_seed(config.seed)
    gate = FusionGate(config.hidden)
    optimiser = torch.optim.Adam(gate.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.steps)
    draws = torch.Generator().manual_seed(config.seed)
    loss = torch.zeros(())
    parts = (views.features, views.to_match, views.to_input, views.wanted)
    for step in range(config.steps):
        batch = [random_patch(parts, draws, config.patch) for _ in range(config.batch_patches)]
        features, to_match, to_input, wanted = (torch.stack(part) for part in zip(*batch))
        shares = gate(features)
        corrected = shares[:, 0:1] * to_match + shares[:, 1:2] * to_input
        error = ((corrected - wanted) ** 2).mean(dim=(1, 2, 3))
        loss = torch.log(error + config.log_floor).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        progress(step + 1, loss.item())
    return gate.eval(), loss.item()

