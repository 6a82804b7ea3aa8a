"""`stereo-derain demo`: the README's main command."""

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'demo', help='derain the embedded rainy demo bag through the real node and write a report')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print('stereo-derain demo: the demo is not built yet (it arrives with the rosbag/demo work); '
          'nothing was run.', file=sys.stderr)
    return 1
