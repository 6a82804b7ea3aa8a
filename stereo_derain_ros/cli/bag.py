"""`stereo-derain bag`: derain a recorded stereo bag into a new bag, offline."""

import argparse
from collections.abc import Iterator
import contextlib
import signal
import sys
from types import FrameType

from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.cli.engine_options import add_engine_arguments, build_engine

SHOWN_SKIPS = 5


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'bag', help='derain the stereo pairs of a rosbag2 bag into a new bag',
        description='Read a rosbag2 bag (MCAP or sqlite3), pair left/right images by header '
                    'stamp, derain them in batches and write a new bag holding every input '
                    'message unchanged plus the derained images and camera_info. The output '
                    'appears only once complete; the input is never modified.')
    parser.add_argument('input', help='input bag directory')
    parser.add_argument('output', help='output bag directory (must not exist unless --overwrite)')
    parser.add_argument('--left', required=True, metavar='TOPIC',
                        help='left image topic (sensor_msgs/Image or CompressedImage)')
    parser.add_argument('--right', required=True, metavar='TOPIC', help='right image topic')
    parser.add_argument('--left-info', metavar='TOPIC',
                        help='left camera_info topic (default: the sibling of the image topic)')
    parser.add_argument('--right-info', metavar='TOPIC',
                        help='right camera_info topic (default: the sibling of the image topic)')
    output = parser.add_mutually_exclusive_group()
    output.add_argument('--output-namespace', default='/stereo_derained', metavar='NS',
                        help='namespace of the derained topics (default: %(default)s)')
    output.add_argument('--replace', action='store_true',
                        help='write derained images on the input topics instead')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                        help='output storage (default: %(default)s)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output')
    parser.add_argument('--batch-size', type=int, default=4, metavar='N',
                        help='pairs per engine call (default: %(default)s)')
    parser.add_argument('--stamp-tolerance', type=float, default=0.0, metavar='SECONDS',
                        help='pair stamps this far apart (default: exact match)')
    add_engine_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from stereo_derain_ros.bagio import BagError
    from stereo_derain_ros.bagio.derain import BagDerainConfig, check_bag_derain, derain_bag
    from stereo_derain_ros.engine import EngineError

    try:
        config = BagDerainConfig(
            input=args.input, output=args.output, topics=(args.left, args.right),
            info_topics=(args.left_info, args.right_info),
            output_namespace=args.output_namespace, replace=args.replace, storage=args.storage,
            batch_size=args.batch_size, stamp_tolerance_s=args.stamp_tolerance,
            overwrite=args.overwrite)
        check_bag_derain(config)
    except BagError as error:
        raise CommandError(str(error)) from None
    engine = build_engine(args)
    with tqdm(unit='pair', desc='derain', dynamic_ncols=True) as bar, sigterm_as_interrupt():
        def progress(done: int, expected: int) -> None:
            bar.total = max(expected, done)
            bar.update(done - bar.n)

        try:
            summary = derain_bag(config, engine.derain_batch, progress)
        except (BagError, EngineError) as error:
            raise CommandError(str(error)) from None
    print(f'wrote {config.output}: {summary.pairs} pairs derained in {summary.seconds:.1f} s '
          f'({summary.pairs_per_second:.2f} pairs/s), {summary.messages_copied} messages copied')
    for role, topic in summary.output_topics.items():
        print(f'  {role.replace("_", " ")}: {topic}')
    if any(summary.unpaired):
        print(f'  unpaired images left as they were: {summary.unpaired[0]} left, '
              f'{summary.unpaired[1]} right')
    for note in summary.notes:
        print(f'  note: {note}')
    if summary.skipped:
        print(f'  skipped {len(summary.skipped)} image(s) or pair(s) that could not be derained, '
              'left as they were:', file=sys.stderr)
        for reason in summary.skipped[:SHOWN_SKIPS]:
            print(f'    {reason}', file=sys.stderr)
        if len(summary.skipped) > SHOWN_SKIPS:
            print(f'    ... and {len(summary.skipped) - SHOWN_SKIPS} more', file=sys.stderr)
    return 0


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (kill, systemd, docker stop) like Ctrl-C, so the partial output is removed."""
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
