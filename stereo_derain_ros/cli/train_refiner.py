"""`stereo-derain train-refiner`: fit the refiner behind a derainer."""

import argparse
from dataclasses import asdict
from pathlib import Path
import sys
from typing import Any, TYPE_CHECKING

from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.cli.fit_behind_derainer import (
    add_fit_arguments,
    derainer_and_library,
    fit_progress,
)

if TYPE_CHECKING:
    from stereo_derain_ros.models.refiner import Refiner

# A last batch gain under this (dB) says the fit went nowhere.
LEARNT_NOTHING_DB = 0.05


def register(subparsers: argparse._SubParsersAction) -> None:
    from stereo_derain_ros.rain.params import PRESETS
    from stereo_derain_ros.training.refiner_config import RefinerTrainingConfig

    defaults = RefinerTrainingConfig()
    parser = subparsers.add_parser(
        'train-refiner', help="fit the engine's full-resolution refiner behind a derainer",
        description="Derain training-photograph pairs (the photo library's training split, "
                    'every rain strength and none, colour and monochrome) with the given '
                    'derainer and fit the small full-resolution net that corrects what it '
                    'left (`--refine`, on by default). Writes a checkpoint with its recipe; the '
                    'packaged one is stereo_derain_ros/weights/refiner.safetensors. See '
                    'docs/engine.md.')
    parser.add_argument('--hidden', type=int, default=defaults.hidden,
                        help='channels of its convolutions (default: %(default)s)')
    parser.add_argument('--middle-layers', type=int, default=defaults.middle_layers,
                        help='3×3 convolutions between its first and its output one; each '
                             'reaches a pixel further (default: %(default)s)')
    parser.add_argument('--corrections', type=int, choices=(1, 3), default=defaults.corrections,
                        help='brightness corrections per pixel: 1, added to every channel, or '
                             '3, one per colour channel (for colour pairs: a grey view given '
                             'three keeps their mean) (default: %(default)s)')
    parser.add_argument('--pair-kinds', default=','.join(defaults.pair_kinds), metavar='KINDS',
                        help='comma-separated kinds of training photo pair, taken in turn pair '
                             f'by pair: a rain preset ({", ".join(PRESETS)}) or clean, each '
                             'optionally with -mono for monochrome; repeat a kind to weigh '
                             'it more (default: %(default)s)')
    parser.add_argument('--procedural-pairs', type=int, default=defaults.procedural_pairs,
                        help='procedural pairs under preset rain with its full veil, drawn '
                             'after the photo pairs, so that the refiner learns to leave the '
                             'veil to the network; costs some light rain, see '
                             'docs/model_card.md (default: %(default)s)')
    parser.add_argument('--saturation', type=float, default=defaults.saturation,
                        help="half of the colour photo pairs have their scene's chroma scaled "
                             'by a gain drawn up to 1 + SATURATION before rain is laid on it, '
                             'so that saturated scenes are seen more often; 0 for none '
                             '(default: %(default)s)')
    parser.add_argument('--init', type=Path, default=None, metavar='REFINER',
                        help='refiner checkpoint to go on from instead of a new refiner, so '
                             'that a long fit can run in parts; one narrower or shallower than '
                             '--hidden and --middle-layers is first grown to them, computing '
                             'what it computed; its recipe goes into the new one as '
                             'init_recipe')
    add_fit_arguments(parser, defaults, 'refiner')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from stereo_derain_ros.engine.checkpoint import save_checkpoint
    from stereo_derain_ros.training.refiner import fit_refiner, refiner_views
    from stereo_derain_ros.training.refiner_config import RefinerTrainingConfig

    if args.procedural_pairs < 0:
        raise CommandError(f'--procedural-pairs must be 0 or more, got {args.procedural_pairs}')
    # Checked before the derainer is built, so that a typo fails at once.
    kinds = _pair_kinds(args.pair_kinds)
    if args.middle_layers < 0:
        raise CommandError(f'--middle-layers must be 0 or more, got {args.middle_layers}')
    if not args.saturation >= 0.0:
        raise CommandError(f'--saturation must be 0 or more, got {args.saturation}')
    # The refiner learns what the network alone leaves, so neither step after it runs here.
    engine, derain, library = derainer_and_library(args, ('hidden',), refine=False,
                                                   view_fusion=False)
    initial, init_recipe = _initial_refiner(args.init, args.hidden, args.middle_layers,
                                            args.corrections)
    config = RefinerTrainingConfig(pairs=args.pairs, pair_kinds=kinds,
                                   procedural_pairs=args.procedural_pairs, seed=args.seed,
                                   steps=args.steps, learning_rate=args.learning_rate,
                                   hidden=args.hidden,
                                   middle_layers=args.middle_layers,
                                   corrections=args.corrections,
                                   saturation=args.saturation)
    pairs = config.pairs + config.procedural_pairs
    with tqdm(total=pairs, desc='pairs', disable=args.no_progress) as bar:
        views = refiner_views(derain, library, config, lambda done: bar.update(1))
    with fit_progress(config.steps, args.no_progress, 'batch_gain_db', '+.2f') as show:
        try:
            refiner, gain = fit_refiner(views, config, show, initial)
        except ValueError as error:
            raise CommandError(str(error)) from None
    recipe = {'command': 'stereo-derain train-refiner', **asdict(config),
              'derainer': engine.weights_source, 'photos': library.origin,
              'views': len(views.rainy)}
    if initial is not None:
        recipe.update(init=str(args.init), init_recipe=init_recipe)
    save_checkpoint(args.out, refiner, recipe=recipe, metrics={'last_batch_gain_db': gain})
    print(f'wrote {args.out}: refiner of width {refiner.config.hidden} and '
          f'{refiner.config.middle_layers} middle layers fitted on '
          f'{recipe["views"]} views of {pairs} pairs behind {engine.weights_source}; its last '
          f'batch gained {gain:+.2f} dB over the derainer')
    if gain < LEARNT_NOTHING_DB:
        print(f'warning: the refiner learnt almost nothing (last batch {gain:+.2f} dB; a full '
              'fit gains about 2 dB): fit longer (--steps) or from another --seed, and check '
              'it with stereo-derain eval --refiner before using it', file=sys.stderr)
    return 0


def _pair_kinds(text: str) -> tuple[str, ...]:
    """Return the `--pair-kinds` list, each kind checked, or raise CommandError."""
    from stereo_derain_ros.training.refiner_config import parse_pair_kind

    kinds = tuple(kind.strip() for kind in text.split(','))
    for kind in kinds:
        try:
            parse_pair_kind(kind)
        except ValueError as error:
            raise CommandError(f'--pair-kinds: {error}') from None
    return kinds


def _initial_refiner(path: Path | None, hidden: int, middle_layers: int,
                     corrections: int) -> tuple['Refiner | None', dict[str, Any] | None]:
    """Return the `--init` refiner, vetted, and its recipe; (None, None) without one.

    It must fit inside the asked shape, which it is grown to (`grown_refiner`).
    """
    from stereo_derain_ros.engine import CheckpointError, load_checkpoint
    from stereo_derain_ros.engine.checkpoint import build_refiner_from_checkpoint

    if path is None:
        return None, None
    try:
        refiner = build_refiner_from_checkpoint(path)
        recipe = load_checkpoint(path)[1].get('recipe')
    except (CheckpointError, OSError) as error:
        raise CommandError(f'cannot go on from --init: {error}') from None
    found = refiner.config
    if (found.hidden > hidden or found.middle_layers > middle_layers
            or found.corrections > corrections):
        raise CommandError(f'--init {path} is a refiner of width {found.hidden} with '
                           f'{found.middle_layers} middle layers and {found.corrections} '
                           f'correction{"s" if found.corrections > 1 else ""} per pixel, '
                           f'larger than --hidden {hidden} --middle-layers '
                           f'{middle_layers} --corrections {corrections} ask; give at least '
                           f'--hidden {found.hidden} --middle-layers {found.middle_layers} '
                           f'--corrections {found.corrections}')
    return refiner, recipe
