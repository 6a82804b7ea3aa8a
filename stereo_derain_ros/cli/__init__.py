"""The `stereo-derain` command-line tool.

Each subcommand lives in its own module of this package and exposes `register(subparsers)`,
which adds its parser and sets `run` to the function that executes it. Modules import their
heavy dependencies (torch, rclpy, rosbags) inside `run`, so `stereo-derain --help` stays fast and
works even where an optional part of the stack is missing.
"""

import argparse
import importlib
import sys

from stereo_derain_ros import __version__

SUBCOMMAND_MODULES = (
    'bench',
    'demo',
    'derain',
    'export',
    'bag',
    'replay',
    'make_bag',
    'models',
    'synth',
    'train',
    'train_fusion_gate',
    'train_refiner',
    'average',
    'evaluate',
    'heldout',
    'photos',
)


class CommandError(Exception):
    """A user-facing failure: printed as one clear line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='stereo-derain',
        description='Stereo image deraining for ROS 2: models, data, bags, training, benchmarks.',
    )
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    subparsers = parser.add_subparsers(title='subcommands', metavar='COMMAND')
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f'{__name__}.{name}').register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, 'run'):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except CommandError as error:
        print(f'stereo-derain: error: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('stereo-derain: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
