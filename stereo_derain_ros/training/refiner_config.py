"""The refiner's training settings, without torch, so that `--help` can quote them cheaply."""

from dataclasses import dataclass

from stereo_derain_ros.rain.params import PRESETS

# The training photo pairs' kinds, taken in turn pair by pair: a rain preset, or `clean` for none,
# with `-mono` for monochrome. The first packaged fits used these eight in turn.
EVERY_PAIR_KIND = ('medium', 'heavy', 'light', 'medium-mono', 'clean', 'heavy-mono', 'light-mono',
                   'clean-mono')
CLEAN = 'clean'
MONO_SUFFIX = '-mono'


@dataclass
class RefinerTrainingConfig:
    pairs: int = 400
    pair_kinds: tuple[str, ...] = EVERY_PAIR_KIND
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
    # 3×3 convolutions between the first and the output one: the packaged refiner's depth
    # (docs/model_card.md, "Shallower"); files from before it have models.refiner.MIDDLE_LAYERS.
    middle_layers: int = 5
    # Corrections per pixel (models.refiner): 1, added to every channel, or 3, one per colour
    # channel, for a refiner of colour pairs.
    corrections: int = 1
    # Half of the colour photo pairs have their scene's chroma scaled by a gain drawn up to
    # 1 + saturation before rain is laid on it (training.refiner); 0 draws none.
    saturation: float = 0.0


def parse_pair_kind(kind: str) -> tuple[str | None, bool]:
    """Return (rain preset or None for none, monochrome) for a kind such as `medium-mono`.

    Raises ValueError naming the kind and the accepted forms.
    """
    mono = kind.endswith(MONO_SUFFIX)
    rain = kind[:-len(MONO_SUFFIX)] if mono else kind
    if rain != CLEAN and rain not in PRESETS:
        raise ValueError(f'unknown pair kind {kind!r}; expected a rain preset '
                         f'({", ".join(PRESETS)}) or {CLEAN}, each optionally followed by '
                         f'{MONO_SUFFIX}')
    return (None if rain == CLEAN else rain), mono
