"""`stereo-derain make-bag`: render a rainy stereo bag with its clean reference."""

import argparse

from stereo_derain_ros.bagio.clip import RainClip
from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.cli.arguments import add_clip_arguments, clip_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'make-bag', help='render an animated rainy stereo bag with the clean reference',
        description='Render rain falling through a stereo scene into a rosbag2 bag: rainy '
                    '/stereo/{left,right}/image_rect + camera_info (a rectified stereo '
                    'calibration), the clean scene on /stereo_clean/..., optionally /clock.')
    parser.add_argument('output', help='output bag directory (must not exist unless --overwrite)')
    add_clip_arguments(parser, RainClip())
    parser.add_argument('--scene', default='motorcycle', choices=('motorcycle',),
                        help='clean stereo scene (default: %(default)s)')
    parser.add_argument('--clock', action='store_true', help='also write /clock')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                        help='output storage (default: %(default)s)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from stereo_derain_ros.bagio import BagError
    from stereo_derain_ros.bagio.synthetic import make_rain_bag, RainBagConfig

    try:
        config = RainBagConfig(
            output=args.output, **clip_options(args), scene=args.scene, clock=args.clock,
            storage=args.storage, overwrite=args.overwrite)
        with tqdm(total=config.frame_count, unit='frame', desc='render') as bar:
            calibration = make_rain_bag(config, lambda done, total: bar.update(done - bar.n))
    except BagError as error:
        raise CommandError(str(error)) from None
    print(f'wrote {config.output}: {config.frame_count} frames {config.width}x{config.height} '
          f'at {config.rate_hz:g} Hz, preset {config.preset}, seed {config.seed}; '
          f'f = {calibration.focal_px:.1f} px, baseline = {calibration.baseline_m:.3f} m')
    return 0
