"""`stereo-derain demo`: the README's main command."""

import argparse

from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.cli.arguments import add_clip_arguments, clip_options
from stereo_derain_ros.cli.engine_options import add_engine_arguments, engine_config
from stereo_derain_ros.demo.config import DemoConfig

# The engine options the demo hands to its node process.
DEMO_ENGINE_OPTIONS = ('model', 'weights', 'untrained', 'device')


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'demo', help='render a rainy stereo bag, derain it through the real node, write a report',
        description='Render a rainy stereo bag (cached), start stereo_derain_node as its own '
                    'process, replay the bag through it over DDS, record its output to a bag, '
                    'and write a report: side-by-side frames, a GIF, PSNR/SSIM and SGBM '
                    "disparity error, and the node's latency and throughput.")
    parser.add_argument('--output', default='demo_output', metavar='DIR',
                        help='report folder; the rendered bag is cached here (default: '
                             '%(default)s)')
    add_clip_arguments(parser, DemoConfig())
    parser.add_argument('--replay-rate', type=float, metavar='FACTOR',
                        help='replay speed factor (default: chosen so the node keeps up)')
    parser.add_argument('--frames', type=int, default=3, metavar='N',
                        help='side-by-side PNGs to write (default: %(default)s)')
    parser.add_argument('--score-frames', type=int, default=5, metavar='N',
                        help='derained frames to score, spread over the sequence (default: '
                             '%(default)s)')
    add_engine_arguments(parser, DEMO_ENGINE_OPTIONS,
                         weights='checkpoint for the node (default: the packaged weights)',
                         device='node device: auto, cpu, cuda or cuda:N (default: %(default)s)')
    parser.set_defaults(run=run)


def demo_config(args: argparse.Namespace):
    """Return the `DemoConfig` of the command line; the node is told the model it will run."""
    from stereo_derain_ros.demo import DemoError
    from stereo_derain_ros.engine.errors import CheckpointError

    engine = engine_config(args)
    try:
        return DemoConfig(
            output=args.output, **clip_options(args), model=engine.model_to_run(),
            weights=engine.weights, untrained=engine.allow_untrained, device=engine.device,
            replay_rate=args.replay_rate, sample_frames=args.frames,
            scored_frames=args.score_frames)
    except (CheckpointError, DemoError) as error:
        raise CommandError(str(error)) from None


def run(args: argparse.Namespace) -> int:
    from stereo_derain_ros.demo import DemoError
    from stereo_derain_ros.demo.runner import run_demo

    config = demo_config(args)
    try:
        run_demo(config)
    except DemoError as error:
        raise CommandError(str(error)) from None
    return 0
