"""`stereo-derain train-fusion-gate`: fit the second-view fusion's gate behind a derainer."""

import argparse
from dataclasses import asdict

from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.cli.fit_behind_derainer import (
    add_fit_arguments,
    derainer_and_library,
    ENGINE_ARGUMENTS,
    fit_progress,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from stereo_derain_ros.training.fusion_gate_config import GateTrainingConfig

    parser = subparsers.add_parser(
        'train-fusion-gate', help="fit the gate of the engine's second-view fusion",
        description="Derain training-photograph pairs (the photo library's training split, "
                    'every rain strength and none) with the given derainer, match them with '
                    'SGBM and fit the gate that decides, per pixel, how much of the other '
                    'view and of the rainy input the fusion takes (`--view-fusion`). Writes a '
                    'checkpoint with its recipe; the packaged one is '
                    'stereo_derain_ros/weights/fusion_gate.safetensors. See docs/engine.md.')
    add_fit_arguments(parser, GateTrainingConfig(), 'gate',
                      (*ENGINE_ARGUMENTS, 'refine', 'refiner'))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from stereo_derain_ros.engine.checkpoint import save_checkpoint
    from stereo_derain_ros.training.fusion_gate import fit_gate, gate_views
    from stereo_derain_ros.training.fusion_gate_config import GateTrainingConfig

    engine, derain, library = derainer_and_library(args, view_fusion=False)
    config = GateTrainingConfig(pairs=args.pairs, seed=args.seed, steps=args.steps,
                                learning_rate=args.learning_rate)
    with tqdm(total=config.pairs, desc='pairs', disable=args.no_progress) as bar:
        views = gate_views(derain, library, config, lambda done: bar.update(1))
    with fit_progress(config.steps, args.no_progress, 'loss', '.3g') as show:
        try:
            gate, loss = fit_gate(views, config, show)
        except ValueError as error:
            raise CommandError(str(error)) from None
    recipe = {'command': 'stereo-derain train-fusion-gate', **asdict(config),
              'derainer': engine.weights_source, 'refiner': engine.refiner_source,
              'photos': library.origin, 'views': len(views.features)}
    save_checkpoint(args.out, gate, recipe=recipe, metrics={'last_batch_loss': loss})
    behind = engine.weights_source + (f' and {engine.refiner_source}' if engine.refines else '')
    print(f'wrote {args.out}: gate of width {gate.config.hidden} fitted on '
          f'{recipe["views"]} views of {config.pairs} pairs behind {behind}')
    return 0
