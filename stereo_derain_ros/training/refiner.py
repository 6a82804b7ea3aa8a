"""Fit the refiner behind a fixed derainer (`stereo-derain train-refiner`).

The refiner corrects what the derainer left, so it learns from the derainer's own output: pairs
of training photographs with fresh rain of every strength and without rain, colour and
monochrome, drawn as the held-out photo sets draw theirs but from the library's training split,
derained once; then random patches of those views, each scored by its log squared error against
the clean view (rain-free pairs: the input), so that every patch weighs as a PSNR weighs it and a
rain-free patch, whose error is tiny, counts as much as a heavy-rain one.

Photographs carry almost no veil (their scenes are near), so a refiner fitted on them alone gives
back part of the brightness the network took from strongly veiled rain. Procedural pairs under
the presets' full veil (`procedural_pairs`) teach it otherwise; what is wanted of them is the
clean view under that veil, since lifting the veil is the network's work and not the refiner's,
whose job is the streak detail the network left. Wanting the veil-free view instead taught it to
dehaze at the cost of photograph rain; even the veiled-clean target costs some light rain, so the
packaged refiner is fitted without procedural pairs (docs/model_card.md, "Veiled rain").
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch

from stereo_derain_ros.data.heldout import LUMA, photo_sample
from stereo_derain_ros.data.photos.library import PhotoLibrary
from stereo_derain_ros.data.seeds import generator
from stereo_derain_ros.models.refiner import grown_refiner, Refiner
from stereo_derain_ros.pixels import to_uint8
from stereo_derain_ros.rain.params import rain_params
from stereo_derain_ros.rain.procedural import procedural_scene
from stereo_derain_ros.rain.render import render_rain, veiled_views
from stereo_derain_ros.rain.scene import StereoScene
from stereo_derain_ros.training.patches import check_patch_views, random_patch
from stereo_derain_ros.training.refiner_config import parse_pair_kind, RefinerTrainingConfig
from stereo_derain_ros.training.schedule import cosine_lr

# Procedural pairs take these presets in turn, each with its own veil.
PROCEDURAL_PRESETS = ('heavy', 'medium', 'light')
SEED_PURPOSE = 'val-compose'
# Draws of the scene's saturation gain, apart from SEED_PURPOSE's so that every pair keeps the
# scene and rain it has without them.
SATURATION_PURPOSE = 'val-saturation'
SATURATED_SHARE = 0.5
# A natural log of a squared-error ratio, in dB of PSNR.
DB_PER_NEPER = 10.0 / float(np.log(10.0))


@dataclass
class RefinerViews:
    """Views of training pairs as uint8 3×H×W tensors: rainy, derained, and what is wanted.

    Kept as uint8 (a quarter of float32's memory); patches are turned into floats as drawn.
    """

    rainy: list[torch.Tensor]
    derained: list[torch.Tensor]
    wanted: list[torch.Tensor]


Derainer = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def refiner_views(derain: Derainer, library: PhotoLibrary, config: RefinerTrainingConfig,
                  progress: Callable[[int], None] = lambda done: None) -> RefinerViews:
    """Draw `config.pairs` photo and `config.procedural_pairs` procedural pairs and derain them.

    `derain` takes and returns uint8 H×W×3 RGB views; `progress` is called after each pair.
    Pair `index` of either kind draws from `generator(SEED_PURPOSE, seed, index)`, the procedural
    pairs numbered on after the photo pairs.
    """
    kinds = [parse_pair_kind(kind) for kind in config.pair_kinds]
    if not kinds:
        raise ValueError('no pair kinds to draw photo pairs of; expected at least one, e.g. '
                         'medium')
    collected = RefinerViews([], [], [])
    for index in range(config.pairs + config.procedural_pairs):
        rng = generator(SEED_PURPOSE, config.seed, index)
        if index < config.pairs:
            preset, mono = kinds[index % len(kinds)]
            gain = 1.0 if mono else _saturation_gain(config, index)
            rainy, wanted = _photo_pair(library, index, rng, preset, mono, gain)
        else:
            rainy, wanted = _procedural_pair(index - config.pairs, rng)
        derained = derain(rainy[0], rainy[1])
        for part, views in ((collected.rainy, rainy), (collected.derained, derained),
                            (collected.wanted, wanted)):
            part.extend(torch.from_numpy(np.ascontiguousarray(view.transpose(2, 0, 1)))
                        for view in views)
        progress(index + 1)
    return collected


Views = tuple[np.ndarray, np.ndarray]


def _saturation_gain(config: RefinerTrainingConfig, index: int) -> float:
    """Return the chroma gain of colour pair `index`'s scene: 1, or up to 1 + saturation.

    Saturated scenes (graphics, signs, painted surfaces) are where the derainer leaves the
    largest colour cast, since rain laid over a saturated colour lifts its weak channels most;
    they are a small share of the photographs (docs/model_card.md, "Saturated scenes").
    """
    if config.saturation <= 0.0:
        return 1.0
    rng = generator(SATURATION_PURPOSE, config.seed, index)
    if rng.random() >= SATURATED_SHARE:
        return 1.0
    return 1.0 + float(rng.uniform(0.0, config.saturation))


def saturated_scene(scene: StereoScene, gain: float) -> StereoScene:
    """Return the scene with each view's chroma (its difference from its luma) scaled by gain."""
    def saturated(view: np.ndarray) -> np.ndarray:
        pixels = view.astype(np.float32)
        luma = (pixels @ LUMA)[..., None]
        return np.clip(np.rint(luma + gain * (pixels - luma)), 0, 255).astype(np.uint8)

    return replace(scene, left=saturated(scene.left), right=saturated(scene.right))


def _photo_pair(library: PhotoLibrary, index: int, rng: np.random.Generator,
                preset: str | None, mono: bool, gain: float) -> tuple[Views, Views]:
    """Return the rainy views and the wanted ones of photo pair `index` (uint8 H×W×3)."""
    adjust = None if gain == 1.0 else partial(saturated_scene, gain=gain)
    _, sample = photo_sample(library, index, rng, preset, mono, adjust)
    rainy, clean = (tuple(to_uint8(sample[f'{kind}_{view}'].permute(1, 2, 0).numpy())
                          for view in ('left', 'right')) for kind in ('rainy', 'clean'))
    return rainy, rainy if preset is None else clean


def _procedural_pair(index: int, rng: np.random.Generator) -> tuple[Views, Views]:
    """Return the rainy views of procedural pair `index` and its clean views under the veil."""
    scene = procedural_scene(int(rng.integers(2 ** 62)))
    params = rain_params(PROCEDURAL_PRESETS[index % len(PROCEDURAL_PRESETS)])
    sample = render_rain(scene, params, int(rng.integers(2 ** 62)))
    return (sample.rainy_left, sample.rainy_right), veiled_views(scene, params)


def _rate_factor(config: RefinerTrainingConfig, step: int) -> float:
    """Return the share of the learning rate at `step`: a linear warm-up, then cosine decay.

    The output layer starts at zero, so the first steps' gradients into the layers below are
    tiny and noisy, and Adam, which scales every step to the learning rate, would walk those
    layers at full rate where no signal leads: of three fits tried without a warm-up, one (seed
    11 with procedural pairs) never gained from its first steps on, its last hidden layer dead
    on every pixel after 12 000 steps; with the warm-up it learns as the others did.
    """
    return cosine_lr(step, config.steps, 1.0, 0.0, config.warmup_steps)


def fit_refiner(views: RefinerViews, config: RefinerTrainingConfig,
                progress: Callable[[int, float], None] = lambda step, gain: None,
                initial: Refiner | None = None) -> tuple[Refiner, float]:
    """Fit a refiner on random patches; return it (eval mode) and its last batch's gain.

    The gain is what the refiner added to the derainer on the batch, as the mean over patches of
    their PSNR gain in dB (what the loss minimises, in the units users read); `progress` gets it
    after every step. `initial` is trained on in place of a new refiner, with the same warm-up
    and decay: fits paid up to 60 000 steps, more than one CPU session holds (docs/model_card.md,
    "Trained longer", "Trained longer still"), so going on from a checkpoint lets them run in
    parts; one narrower or shallower than `config` asks is grown to it first (`grown_refiner`).
    """
    check_patch_views(views.rainy, config.patch)
    torch.manual_seed(config.seed)
    refiner = (Refiner(config.hidden, config.middle_layers, config.corrections) if initial is None
               else grown_refiner(initial, config.hidden, config.middle_layers,
                                  config.corrections))
    optimiser = torch.optim.Adam(refiner.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, partial(_rate_factor, config))
    draws = torch.Generator().manual_seed(config.seed)
    gain = 0.0
    parts = (views.rainy, views.derained, views.wanted)
    for step in range(config.steps):
        batch = [random_patch(parts, draws, config.patch) for _ in range(config.batch_patches)]
        rainy, derained, wanted = (torch.stack(part).float() / 255.0 for part in zip(*batch))
        error = ((refiner(rainy, derained) - wanted) ** 2).mean(dim=(1, 2, 3))
        loss = torch.log(error + config.log_floor).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        before = torch.log(((derained - wanted) ** 2).mean(dim=(1, 2, 3)) + config.log_floor)
        gain = float(before.mean() - loss.detach()) * DB_PER_NEPER
        progress(step + 1, gain)
    return refiner.eval(), gain

