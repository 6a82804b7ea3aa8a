"""Refinement: the full-resolution correction of what the deraining network left.

The network's remaining error is fine detail on streak pixels, below its 1/4 resolution
(docs/model_card.md, "Refiner"); the packaged refiner (`models.refiner`, trained behind the
packaged bandnet weights by `stereo-derain train-refiner`) reads each derained view at full
resolution beside what the network took away and corrects its brightness pixel by pixel (the
colour-pair refiner each channel's). Both views of every pair go through it as one batch, on the
network's device and in its precision.
"""

import torch

from stereo_derain_ros.engine.checkpoint import build_refiner_from_checkpoint
from stereo_derain_ros.engine.errors import EngineError
from stereo_derain_ros.engine.pixel_layers import run_layers
from stereo_derain_ros.engine.weights import packaged_weights
from stereo_derain_ros.models.refiner import Refiner

# The model whose packaged weights the packaged refiners were trained behind.
REFINER_DERAINER = 'bandnet'
# The packaged refiner fitted on colour pairs alone, run on pairs that are not grey; the packaged
# `refiner`, fitted on both kinds and then on monochrome pairs, keeps monochrome pairs
# (docs/model_card.md, "Colour pairs", "Monochrome continuations averaged").
COLOUR_REFINER = f'{Refiner.name}_colour'


def load_refiner(path: str | None = None) -> Refiner:
    """Return the refiner at `path`, else the packaged one, vetted like any checkpoint."""
    if path is None:
        path = packaged_weights(Refiner.name)
        if path is None:
            raise EngineError(
                f'refine needs the packaged {Refiner.name}.safetensors, which this installation '
                'lacks; expected it in stereo_derain_ros/weights (stereo-derain train-refiner '
                'writes one), or turn refine off')
    return build_refiner_from_checkpoint(path).to(memory_format=torch.channels_last)


def load_colour_refiner() -> Refiner | None:
    """Return the packaged colour-pair refiner, or None where this installation has none."""
    path = packaged_weights(COLOUR_REFINER)
    return None if path is None else load_refiner(path)


def views_are_grey(left: torch.Tensor, right: torch.Tensor) -> bool:
    """Tell whether every view of N×3×H×W `left` and `right` has three equal channels.

    Monochrome cameras reach the engine as mono images spread over three channels, or as
    colour encodings of grey; either way their channels are equal to the bit. A batch is told
    as one: any colour view makes every pair in it a colour pair.
    """
    return all(torch.equal(views[:, :1].expand_as(views), views) for views in (left, right))


def refine_views(refiner: Refiner, rainy_left: torch.Tensor, rainy_right: torch.Tensor,
                 left: torch.Tensor, right: torch.Tensor, precision: str,
                 *, grey: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine N×3×H×W derained views (floats in [0, 1], any device) given their rainy inputs.

    `refiner` is moved to the views' device first, so it follows the network there and back to
    the CPU after an out-of-memory fall-back; `precision` is the network's, as the backend
    resolved it; `grey` is what `views_are_grey` said of the rainy views, told once by the
    caller, who also chose the refiner by it.
    """
    refiner.to(left.device)
    rainy = torch.cat([rainy_left, rainy_right]).float()
    derained = torch.cat([left, right]).float()
    correction = run_layers(refiner.layers, refiner.features(rainy, derained),
                            refiner.receptive_radius, precision)
    if correction.shape[1] > 1 and grey:
        # One correction per channel would tint grey views: they take the corrections' mean.
        correction = correction.float().mean(dim=1, keepdim=True)
    return refiner.refined(derained, correction).chunk(2)
