"""`stereo-derain replay`: publish a bag over DDS with its recorded timing."""

import argparse

from stereo_derain_ros.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'replay', help="publish a bag's topics over DDS with recorded timing (no ros2 needed)",
        description='Publish the messages of a rosbag2 bag with their recorded timing and QoS, '
                    'like `ros2 bag play`, using only rclpy. Stops at the end unless --loop; '
                    'Ctrl-C stops cleanly.')
    parser.add_argument('bag', help='bag directory (MCAP or sqlite3)')
    parser.add_argument('--rate', type=float, default=1.0,
                        help='playback speed factor (default: %(default)s)')
    parser.add_argument('--loop', action='store_true', help='start over at the end, forever')
    parser.add_argument('--clock', action='store_true',
                        help='publish bag time on /clock (for nodes with use_sim_time:=true)')
    parser.add_argument('--topics', nargs='+', metavar='TOPIC',
                        help='replay only these topics (default: all)')
    parser.add_argument('--delay', type=float, default=0.5, metavar='SECONDS',
                        help='wait before the first message, for discovery (default: %(default)s)')
    parser.add_argument('--wait-for-subscribers', type=float, default=0.0, metavar='SECONDS',
                        help='first wait up to this long for every topic to have a subscriber')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.context import Context

    from stereo_derain_ros.bagio import BagError
    from stereo_derain_ros.bagio.replay import replay_bag, ReplayConfig

    try:
        config = ReplayConfig(bag=args.bag, rate=args.rate, loop=args.loop, clock=args.clock,
                              topics=args.topics, delay_s=args.delay,
                              wait_for_subscribers_s=args.wait_for_subscribers)
    except BagError as error:
        raise CommandError(str(error)) from None
    context = Context()
    rclpy.init(context=context)
    try:
        summary = replay_bag(config, context=context)
    except BagError as error:
        raise CommandError(str(error)) from None
    finally:
        context.try_shutdown()
    total = sum(summary.published.values())
    print(f'published {total} messages on {len(summary.published)} topics in '
          f'{summary.seconds:.1f} s')
    for topic, reason in summary.skipped_topics.items():
        print(f'  skipped {topic}: {reason}')
    return 0
