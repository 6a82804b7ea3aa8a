"""Arguments shared by the subcommands, so that WxH or a rain clip means the same everywhere."""

import argparse

from stereo_derain_ros.bagio.clip import RainClip


def parse_size(text: str) -> tuple[int, int]:
    """Parse 'WxH' (e.g. 640x360) into (width, height), for argparse's `type=`."""
    parts = text.lower().split('x')
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(
            f'size must be WIDTHxHEIGHT with positive sides, e.g. 640x360, got {text!r}')
    return int(parts[0]), int(parts[1])


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """Parse a comma-separated list of sizes, e.g. 640x360,1280x720."""
    return [parse_size(item) for item in text.split(',')]


def add_clip_arguments(parser: argparse.ArgumentParser, defaults: RainClip) -> None:
    """Add the options of a rainy clip (`RainClip`): size, duration, rate, preset and seed."""
    parser.add_argument('--size', type=parse_size, default=(defaults.width, defaults.height),
                        metavar='WxH', help=f'image size (default: {defaults.width}x'
                                            f'{defaults.height})')
    parser.add_argument('--duration', type=float, default=defaults.duration_s, metavar='SECONDS',
                        help='length of the rainy sequence (default: %(default)s)')
    parser.add_argument('--rate', type=float, default=defaults.rate_hz, metavar='HZ',
                        help='frames per second of the rainy sequence (default: %(default)s)')
    parser.add_argument('--preset', default=defaults.preset,
                        help='rain preset: light, medium, heavy or torrential (default: '
                             '%(default)s)')
    parser.add_argument('--seed', type=int, default=defaults.seed,
                        help='rain seed (default: %(default)s)')


def clip_options(args: argparse.Namespace) -> dict[str, object]:
    """Return the `RainClip` fields of options added by `add_clip_arguments`."""
    width, height = args.size
    return {'width': width, 'height': height, 'duration_s': args.duration, 'rate_hz': args.rate,
            'preset': args.preset, 'seed': args.seed}
