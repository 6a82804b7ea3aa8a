"""A weighted mean of several checkpoints of one model (a "model soup").

Two fine-tuning runs that start from the same weights stay close enough in weight space that
their mean behaves like a model between them: when each run fixes a different failure of the
other (stage 34 in weights/bandnet.md: one loss darkens a light monochrome pair, the other gives
back colour rain), a mean can keep both fixes at no cost per frame. Averaging needs the same
architecture, so the parts must name the same model with the same config, compared as each part
builds it (a refiner file older than a config field gets its default, as the engine loads it);
each part is vetted by the engine's loader (sizes, shapes, finite weights) before anything is
averaged. The small nets
that follow a derainer (refiner, fusion gate) average the same way: their fits go on from one
file too.
"""

from dataclasses import asdict, dataclass, is_dataclass
import math
from pathlib import Path

import torch
from torch import nn

from stereo_derain_ros.engine.checkpoint import (
    build_fusion_gate_from_checkpoint,
    build_model_from_checkpoint,
    build_refiner_from_checkpoint,
    load_checkpoint,
)
from stereo_derain_ros.engine.errors import CheckpointError
from stereo_derain_ros.models.fusion_gate import FusionGate
from stereo_derain_ros.models.refiner import Refiner

# Nets outside the model registry that a checkpoint may hold, by the name it stores.
PIXEL_NET_BUILDERS = {Refiner.name: build_refiner_from_checkpoint,
                      FusionGate.name: build_fusion_gate_from_checkpoint}


@dataclass(frozen=True)
class AveragePart:
    checkpoint: Path
    share: float


def average_parts(checkpoints: list[Path], shares: list[float] | None) -> list[AveragePart]:
    """Pair checkpoints with shares normalised to sum to one (equal shares when None).

    Raises ValueError naming what is wrong with the list.
    """
    if len(checkpoints) < 2:
        raise ValueError(f'averaging needs at least two checkpoints, got {len(checkpoints)}')
    shares = [1.0] * len(checkpoints) if shares is None else shares
    if len(shares) != len(checkpoints):
        raise ValueError(f'{len(shares)} shares for {len(checkpoints)} checkpoints; expected one '
                         'share per checkpoint, in the same order')
    for share in shares:
        if not math.isfinite(share) or share <= 0:
            raise ValueError(f'share {share} is not a positive number; expected shares > 0 '
                             '(they are scaled to sum to 1)')
    total = sum(shares)
    return [AveragePart(Path(path), share / total) for path, share in zip(checkpoints, shares)]


def average_checkpoints(parts: list[AveragePart]) -> tuple[nn.Module, dict]:
    """Return the weighted mean model and a recipe that nests each part's own recipe.

    Tensors are summed in float64 and stored in their own precision (every registered model
    holds floating-point tensors only). Raises CheckpointError naming the part that does not fit
    the first.
    """
    first, reference, model = parts[0].checkpoint, None, None
    sums: dict[str, torch.Tensor] = {}
    recipe_parts = []
    for part in parts:
        _, metadata = load_checkpoint(part.checkpoint)
        build = PIXEL_NET_BUILDERS.get(metadata['model'], build_model_from_checkpoint)
        part_model = build(part.checkpoint)
        built = {'model': metadata['model'], 'config': _built_config(part_model, metadata)}
        reference = reference or built
        for field in ('model', 'config'):
            if built[field] != reference[field]:
                raise CheckpointError(
                    f'{part.checkpoint} has {field} {built[field]!r} but {first} has '
                    f'{reference[field]!r}; only checkpoints of one model and config average')
        if model is None:
            model = part_model
        for key, value in part_model.state_dict().items():
            sums[key] = sums.get(key, 0.0) + part.share * value.double()
        recipe_parts.append({'checkpoint': str(part.checkpoint), 'share': part.share,
                             'recipe': metadata['recipe']})
    with torch.no_grad():
        for key, value in model.state_dict().items():
            value.copy_(sums[key].to(value.dtype))
    return model, {'model': reference['model'], 'average': recipe_parts}


def _built_config(model: nn.Module, metadata: dict) -> dict:
    """Return the config the part was built with: a small net's own, with defaults filled in."""
    config = getattr(model, 'config', None)
    return asdict(config) if is_dataclass(config) else metadata['config']
