"""Node latency: a stereo player, an output monitor, and the node-overhead measurement.

The player publishes a pre-loaded stereo sequence (messages built once, only stamps change) and
records when each stamp was sent; the monitor records when both derained views of a stamp
arrived. Matching by header stamp is valid because the node copies input headers unchanged.
Node overhead = end-to-end latency - engine time (the engine time is the node's own diagnostic
mean over the same sets); the DDS transport floor is the same sets through a plain relay
process, i.e. the same two publisher -> subscriber hops with no work in between.

Run: `python -m stereo_derain_ros.bench.node_latency --sizes 640x360 1280x720 --sets 5`
"""

import argparse
from dataclasses import dataclass
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

from stereo_derain_ros.image_codec import fill_image

SECOND = 1_000_000_000
WARM_UP_SETS = 2


@dataclass
class LatencyResult:
    """Latency statistics of one measurement, in milliseconds."""

    label: str
    width: int
    height: int
    sets_sent: int
    sets_received: int
    mean_ms: float
    p95_ms: float
    median_ms: float
    engine_mean_ms: float | None = None
    node_internal_mean_ms: float | None = None

    @property
    def overhead_ms(self) -> float | None:
        return None if self.engine_mean_ms is None else self.mean_ms - self.engine_mean_ms


def synthetic_pair(width: int, height: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return a textured rgb8 pair with a horizontal shift, as a stand-in for a camera."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width + 8, 3), dtype=np.uint8)
    return np.ascontiguousarray(base[:, 8:]), np.ascontiguousarray(base[:, :-8])


class StereoPlayer:
    """Publish stereo sets (images + camera_info) under a namespace, remembering send times."""

    def __init__(self, node, namespace: str, left: np.ndarray, right: np.ndarray,
                 encoding: str = 'rgb8') -> None:
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import CameraInfo, Image

        prefix = namespace.rstrip('/')
        qos = QoSProfile(depth=5)
        self._publishers = [
            node.create_publisher(Image, f'{prefix}/left/image_rect', qos),
            node.create_publisher(CameraInfo, f'{prefix}/left/camera_info', qos),
            node.create_publisher(Image, f'{prefix}/right/image_rect', qos),
            node.create_publisher(CameraInfo, f'{prefix}/right/camera_info', qos),
        ]
        self._messages = []
        for view, frame in ((left, 'left_optical'), (right, 'right_optical')):
            image = Image()
            image.header.frame_id = frame
            fill_image(image, view, encoding)
            info = CameraInfo(height=image.height, width=image.width)
            info.header.frame_id = frame
            self._messages += [image, info]
        self.sent: dict[int, float] = {}

    def subscribers_matched(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in self._publishers)

    def publish(self, stamp_ns: int) -> None:
        sec, nanosec = divmod(stamp_ns, SECOND)
        for message in self._messages:
            message.header.stamp.sec, message.header.stamp.nanosec = sec, nanosec
        self.sent[stamp_ns] = time.perf_counter()
        for publisher, message in zip(self._publishers, self._messages):
            publisher.publish(message)

    def play(self, count: int, rate_hz: float, first_stamp_ns: int = SECOND) -> None:
        """Publish `count` sets at a fixed rate (for throughput runs)."""
        period = 1.0 / rate_hz
        start = time.perf_counter()
        for index in range(count):
            delay = start + index * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.publish(first_stamp_ns + index * round(period * SECOND))


class StereoMonitor:
    """Record when both views of each stamp arrive on `<namespace>/{left,right}/image_rect`."""

    def __init__(self, node, namespace: str) -> None:
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import Image

        prefix = namespace.rstrip('/')
        self._lock = threading.Lock()
        self._seen: dict[int, set[str]] = {}
        self.received: dict[int, float] = {}
        for side in ('left', 'right'):
            node.create_subscription(
                Image, f'{prefix}/{side}/image_rect',
                lambda message, s=side: self._on_image(s, message), QoSProfile(depth=5))

    def _on_image(self, side: str, message) -> None:
        now = time.perf_counter()
        stamp = message.header.stamp.sec * SECOND + message.header.stamp.nanosec
        with self._lock:
            sides = self._seen.setdefault(stamp, set())
            sides.add(side)
            if len(sides) == 2:
                self.received[stamp] = now

    def has(self, stamp_ns: int) -> bool:
        with self._lock:
            return stamp_ns in self.received

    def latencies_ms(self, sent: dict[int, float]) -> list[float]:
        with self._lock:
            return [(self.received[s] - t) * 1000.0 for s, t in sent.items()
                    if s in self.received]


def ping(player: StereoPlayer, monitor: StereoMonitor, count: int, timeout: float,
         first_stamp_ns: int = SECOND) -> list[int]:
    """Send one set at a time and wait for it, so no set waits behind another; return stamps."""
    stamps = []
    for index in range(count):
        stamp = first_stamp_ns + index * SECOND // 10
        stamps.append(stamp)
        player.publish(stamp)
        deadline = time.monotonic() + timeout
        while not monitor.has(stamp) and time.monotonic() < deadline:
            time.sleep(0.001)
    return stamps


def summarise(label: str, left: np.ndarray, player: StereoPlayer, monitor: StereoMonitor,
              stamps: list[int]) -> LatencyResult:
    """Summarise the latencies of the sets sent with `stamps` (warm-up sets left out)."""
    latencies = monitor.latencies_ms({s: player.sent[s] for s in stamps})
    values = np.array(latencies) if latencies else np.array([np.nan])
    return LatencyResult(label, left.shape[1], left.shape[0], len(stamps), len(latencies),
                         float(values.mean()), float(np.percentile(values, 95)),
                         float(np.median(values)))


class _Spinner:
    """A helper node spun in a background thread."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.node = rclpy.create_node(name)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._executor.shutdown()
        self._thread.join(timeout=5)
        self.node.destroy_node()


def connected(node, player: StereoPlayer, output_namespace: str) -> bool:
    """Return whether the player's topics and the monitored outputs are all matched."""
    return player.subscribers_matched() and all(
        node.count_publishers(f'{output_namespace}/{side}/image_rect') > 0
        for side in ('left', 'right'))


def published_diagnostics(diagnostics: list[dict[str, str]], published: int,
                          timeout: float = 10.0) -> dict[str, str] | None:
    """Wait for a diagnostics report counting `published` sets and return it."""
    def report():
        return next((d for d in reversed(diagnostics)
                     if d.get('published_sets') == str(published)), None)

    wait_until(lambda: report() is not None, timeout)
    return report()


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def relay(input_namespace: str, output_namespace: str) -> None:
    """Republish images and camera_info unchanged: the transport floor of a two-hop path."""
    import rclpy
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import CameraInfo, Image

    rclpy.init()
    node = rclpy.create_node('bench_relay')
    for side in ('left', 'right'):
        for leaf, message_type in (('image_rect', Image), ('camera_info', CameraInfo)):
            publisher = node.create_publisher(
                message_type, f'{output_namespace}/{side}/{leaf}', QoSProfile(depth=5))
            node.create_subscription(message_type, f'{input_namespace}/{side}/{leaf}',
                                     publisher.publish, QoSProfile(depth=5))
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


def measure_transport_floor(left: np.ndarray, right: np.ndarray, sets: int,
                            timeout: float) -> LatencyResult:
    """Return the latency of the same sets through a plain relay process (two DDS hops).

    The node path is player -> node -> monitor, two inter-process hops; a relay that republishes
    each message as received gives the same hops with no work in between.
    """
    command = [sys.executable, '-m', 'stereo_derain_ros.bench.node_latency', '--relay',
               '/bench_floor_in', '/bench_floor_out']
    process = subprocess.Popen(command, env=os.environ.copy())
    spinner = _Spinner('bench_transport_floor')
    try:
        player = StereoPlayer(spinner.node, '/bench_floor_in', left, right)
        monitor = StereoMonitor(spinner.node, '/bench_floor_out')
        if not wait_until(lambda: connected(spinner.node, player, '/bench_floor_out'), 60):
            raise RuntimeError('the relay did not connect within 60 s')
        ping(player, monitor, WARM_UP_SETS, timeout=timeout)
        stamps = ping(player, monitor, sets, timeout=timeout, first_stamp_ns=100 * SECOND)
        return summarise('DDS relay', left, player, monitor, stamps)
    finally:
        spinner.close()
        process.terminate()
        process.wait(timeout=30)


def measure_node(left: np.ndarray, right: np.ndarray, sets: int, node_args: list[str],
                 timeout: float) -> LatencyResult:
    """Start the node in its own process and measure player -> node -> monitor latency."""
    from diagnostic_msgs.msg import DiagnosticArray

    command = [sys.executable, '-m', 'stereo_derain_ros.node', '--ros-args',
               '-r', '__node:=bench_derain_node', '-p', 'output_namespace:=/bench_out']
    for topic in ('left/image_rect', 'left/camera_info', 'right/image_rect', 'right/camera_info'):
        # Large images over best-effort DDS get lost between processes (see docs/node.md).
        command += ['-r', f'{topic}:=/bench_in/{topic}',
                    '-p', f'qos_overrides./bench_in/{topic}.subscription.reliability:=reliable']
    command += node_args
    process = subprocess.Popen(command, env=os.environ.copy())
    spinner = _Spinner('bench_node_latency')
    diagnostics: list[dict[str, str]] = []

    def on_diagnostics(message) -> None:
        for status in message.status:
            if 'bench_derain_node' in status.name:
                diagnostics.append({kv.key: kv.value for kv in status.values})

    try:
        spinner.node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
        player = StereoPlayer(spinner.node, '/bench_in', left, right)
        monitor = StereoMonitor(spinner.node, '/bench_out')
        if not wait_until(lambda: connected(spinner.node, player, '/bench_out'), 60):
            raise RuntimeError('the node did not connect within 60 s (did it fail to start?)')
        ping(player, monitor, WARM_UP_SETS, timeout=timeout)
        before = published_diagnostics(diagnostics, WARM_UP_SETS)
        stamps = ping(player, monitor, sets, timeout=timeout, first_stamp_ns=100 * SECOND)
        after = published_diagnostics(diagnostics, WARM_UP_SETS + sets)
        result = summarise('node', left, player, monitor, stamps)
        if before and after:
            # The node reports running means; recover the means over the timed sets alone.
            for key, field_name in (('inference_latency_mean_ms', 'engine_mean_ms'),
                                    ('end_to_end_latency_mean_ms', 'node_internal_mean_ms')):
                total = (float(after[key]) * (WARM_UP_SETS + sets)
                         - float(before[key]) * WARM_UP_SETS)
                setattr(result, field_name, total / sets)
        return result
    finally:
        spinner.close()
        process.terminate()
        process.wait(timeout=30)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must be WIDTHxHEIGHT, got {text!r}') from None
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', nargs='+', type=parse_size, default=[(640, 360), (1280, 720)])
    parser.add_argument('--sets', type=int, default=5, help='timed sets per size')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--weights', default='', help='checkpoint; empty = untrained bandnet')
    parser.add_argument('--timeout', type=float, default=120.0, help='seconds to wait per set')
    parser.add_argument('--json', help='also write the results to this JSON file')
    parser.add_argument('--relay', nargs=2, metavar=('IN', 'OUT'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.relay:
        relay(*args.relay)
        return 0

    import rclpy

    node_args = ['-p', f'device:={args.device}']
    node_args += (['-p', f'weights:={args.weights}'] if args.weights
                  else ['-p', 'allow_untrained_weights:=true'])
    rclpy.init()
    results = []
    try:
        for width, height in args.sizes:
            left, right = synthetic_pair(width, height)
            results.append(measure_transport_floor(left, right, args.sets, args.timeout))
            results.append(measure_node(left, right, args.sets, node_args, args.timeout))
    finally:
        rclpy.try_shutdown()
    print(f'{"measurement":<10} {"size":>10} {"sets":>5} {"e2e mean":>9} {"median":>9} '
          f'{"p95":>9} {"engine":>9} {"overhead":>9} {"in-node":>9}  (ms)')
    for r in results:
        optional = [r.engine_mean_ms, r.overhead_ms, r.node_internal_mean_ms]
        print(f'{r.label:<10} {f"{r.width}x{r.height}":>10} {r.sets_received:>5} '
              f'{r.mean_ms:>9.1f} {r.median_ms:>9.1f} {r.p95_ms:>9.1f} '
              + ' '.join(f'{v:>9.1f}' if v is not None else f'{"-":>9}' for v in optional))
    if args.json:
        with open(args.json, 'w') as stream:
            json.dump([{**r.__dict__, 'overhead_ms': r.overhead_ms} for r in results], stream,
                      indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
