"""`stereo-derain average`: one checkpoint from a weighted mean of several runs of one model."""

import argparse
from pathlib import Path

from stereo_derain_ros.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'average', help='average the weights of checkpoints of one model (a model soup)',
        description='Write OUT.safetensors holding the weighted mean of the checkpoints, which '
                    'must be the same model with the same config (typically fine-tuning runs '
                    'from one starting point). Its recipe lists each part with its share and '
                    'its own recipe. See docs/training.md.')
    parser.add_argument('out', type=Path, metavar='OUT.safetensors',
                        help='checkpoint to write (atomically)')
    parser.add_argument('checkpoints', type=Path, nargs='+', metavar='CHECKPOINT',
                        help='two or more .safetensors checkpoints')
    parser.add_argument('--shares', default=None, metavar='S1,S2,...',
                        help='one weight per checkpoint, in order, scaled to sum to 1 '
                             '(default: equal)')
    parser.set_defaults(run=run)


def _shares(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(item) for item in text.split(',')]
    except ValueError:
        raise CommandError(f'--shares {text!r} must be comma-separated numbers, '
                           'e.g. 0.3,0.7') from None


def run(args: argparse.Namespace) -> int:
    from stereo_derain_ros.engine.checkpoint import save_checkpoint
    from stereo_derain_ros.engine.errors import CheckpointError
    from stereo_derain_ros.training.averaging import average_checkpoints, average_parts

    if args.out.suffix != '.safetensors':
        raise CommandError(f'OUT must name a .safetensors file, got {args.out}')
    try:
        parts = average_parts(args.checkpoints, _shares(args.shares))
        model, recipe = average_checkpoints(parts)
    except (CheckpointError, ValueError) as error:
        raise CommandError(str(error)) from None
    save_checkpoint(args.out, model, recipe=recipe)
    shares = ', '.join(f'{part.checkpoint} × {part.share:.3g}' for part in parts)
    print(f'wrote {args.out}: {recipe["model"]} = {shares}')
    return 0
