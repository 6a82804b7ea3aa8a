"""`stereo-derain train-fusion-gate`: fit the second-view fusion's gate behind a derainer."""

import argparse
from dataclasses import asdict
from pathlib import Path

from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.cli.engine_options import add_engine_arguments, build_engine

ENGINE_ARGUMENTS = ('model', 'weights', 'untrained', 'device', 'precision', 'threads', 'refine',
                    'refiner')


def register(subparsers: argparse._SubParsersAction) -> None:
    from stereo_derain_ros.training.fusion_gate_config import GateTrainingConfig

    defaults = GateTrainingConfig()
    parser = subparsers.add_parser(
        'train-fusion-gate', help="fit the gate of the engine's second-view fusion",
        description="Derain training-photograph pairs (the photo library's training split, "
                    'every rain strength and none) with the given derainer, match them with '
                    'SGBM and fit the gate that decides, per pixel, how much of the other '
                    'view and of the rainy input the fusion takes (`--view-fusion`). Writes a '
                    'checkpoint with its recipe; the packaged one is '
                    'stereo_derain_ros/weights/fusion_gate.safetensors. See docs/engine.md.')
    parser.add_argument('--out', type=Path, required=True, metavar='OUT.safetensors',
                        help='gate checkpoint to write (atomically)')
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
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bars')
    add_engine_arguments(parser, ENGINE_ARGUMENTS,
                         weights='derainer checkpoint the gate will follow (default: the '
                                 'packaged weights of the model)')
    parser.set_defaults(run=run, precision='fp32')


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from stereo_derain_ros.data.photos.library import default_cache, PhotoLibrary
    from stereo_derain_ros.engine.checkpoint import save_checkpoint
    from stereo_derain_ros.training.fusion_gate import fit_gate, gate_views
    from stereo_derain_ros.training.fusion_gate_config import GateTrainingConfig

    if args.out.suffix != '.safetensors':
        raise CommandError(f'--out must name a .safetensors file, got {args.out}')
    for name in ('pairs', 'steps'):
        if getattr(args, name) < 1:
            raise CommandError(f'--{name} must be at least 1, got {getattr(args, name)}')
    config = GateTrainingConfig(pairs=args.pairs, seed=args.seed, steps=args.steps)
    engine = build_engine(args, view_fusion=False)
    library = PhotoLibrary.open_or_builtin(args.photos or default_cache(), 'train')

    def derain(left, right):
        return engine.derain(left, right, 'rgb')

    with tqdm(total=config.pairs, desc='pairs', disable=args.no_progress) as bar:
        views = gate_views(derain, library, config, lambda done: bar.update(1))
    with tqdm(total=config.steps, desc='fit', disable=args.no_progress) as bar:
        def show(step: int, loss: float) -> None:
            bar.update(1)
            if step % 100 == 0:
                bar.set_postfix(loss=f'{loss:.3g}')
        try:
            gate, loss = fit_gate(views, config, show)
        except ValueError as error:
            raise CommandError(str(error)) from None
    recipe = {'command': 'stereo-derain train-fusion-gate', **asdict(config),
              'derainer': engine.weights_source, 'refiner': engine.refiner_source,
              'photos': library.origin,
              'views': len(views.features)}
    save_checkpoint(args.out, gate, recipe=recipe, metrics={'last_batch_loss': loss})
    behind = engine.weights_source + (f' and {engine.refiner_source}' if engine.refines else '')
    print(f'wrote {args.out}: gate of width {gate.config.hidden} fitted on '
          f'{recipe["views"]} views of {config.pairs} pairs behind {behind}')
    return 0

