"""`stereo-derain train-refiner`: fit the refiner behind a derainer."""

import argparse
from dataclasses import asdict
from pathlib import Path

from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.cli.engine_options import add_engine_arguments, build_engine

ENGINE_ARGUMENTS = ('model', 'weights', 'untrained', 'device', 'precision', 'threads')


def register(subparsers: argparse._SubParsersAction) -> None:
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
    parser.add_argument('--out', type=Path, required=True, metavar='OUT.safetensors',
                        help='refiner checkpoint to write (atomically)')
    parser.add_argument('--photos', type=Path, default=None,
                        help='photo cache (default: $STEREO_DERAIN_PHOTOS or '
                             '~/.cache/stereo_derain_ros/photos; without one, the built-in '
                             'photographs)')
    parser.add_argument('--pairs', type=int, default=defaults.pairs,
                        help='training pairs to draw (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=defaults.seed,
                        help='seed of the pairs, the patches and the fit (default: %(default)s)')
    parser.add_argument('--steps', type=int, default=defaults.steps,
                        help='optimiser steps (default: %(default)s)')
    parser.add_argument('--hidden', type=int, default=defaults.hidden,
                        help='channels of its convolutions (default: %(default)s)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bars')
    add_engine_arguments(parser, ENGINE_ARGUMENTS,
                         weights='derainer checkpoint the refiner will follow (default: the '
                                 'packaged weights of the model)')
    parser.set_defaults(run=run, precision='fp32')


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from stereo_derain_ros.data.photos.library import default_cache, PhotoLibrary
    from stereo_derain_ros.engine.checkpoint import save_checkpoint
    from stereo_derain_ros.training.refiner import fit_refiner, refiner_views
    from stereo_derain_ros.training.refiner_config import RefinerTrainingConfig

    if args.out.suffix != '.safetensors':
        raise CommandError(f'--out must name a .safetensors file, got {args.out}')
    for name in ('pairs', 'steps', 'hidden'):
        if getattr(args, name) < 1:
            raise CommandError(f'--{name} must be at least 1, got {getattr(args, name)}')
    config = RefinerTrainingConfig(pairs=args.pairs, seed=args.seed, steps=args.steps,
                                   hidden=args.hidden)
    # The refiner learns what the network alone leaves, so neither step after it runs here.
    engine = build_engine(args, refine=False, view_fusion=False)
    library = PhotoLibrary.open_or_builtin(args.photos or default_cache(), 'train')

    def derain(left, right):
        return engine.derain(left, right, 'rgb')

    with tqdm(total=config.pairs, desc='pairs', disable=args.no_progress) as bar:
        views = refiner_views(derain, library, config, lambda done: bar.update(1))
    with tqdm(total=config.steps, desc='fit', disable=args.no_progress) as bar:
        def show(step: int, gain: float) -> None:
            bar.update(1)
            if step % 100 == 0:
                bar.set_postfix(batch_gain_db=f'{gain:+.2f}')
        try:
            refiner, gain = fit_refiner(views, config, show)
        except ValueError as error:
            raise CommandError(str(error)) from None
    recipe = {'command': 'stereo-derain train-refiner', **asdict(config),
              'derainer': engine.weights_source, 'photos': library.origin,
              'views': len(views.rainy)}
    save_checkpoint(args.out, refiner, recipe=recipe, metrics={'last_batch_gain_db': gain})
    print(f'wrote {args.out}: refiner of width {refiner.config.hidden} fitted on '
          f'{recipe["views"]} views of {config.pairs} pairs behind {engine.weights_source}')
    return 0
