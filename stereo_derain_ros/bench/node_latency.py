"""Node latency probes: a stereo player and an output monitor, used by `stereo-derain bench node`.

The player publishes a pre-loaded stereo sequence (messages built once, only stamps change) and
records when each stamp was sent; the monitor records when both derained views of a stamp
arrived. Matching by header stamp is valid because the node copies input headers unchanged.
Node overhead = end-to-end latency - engine time (the engine time is the node's own diagnostic
mean over the same sets); the DDS transport floor is the same sets through a plain relay
process, i.e. the same two publisher -> subscriber hops with no work in between.
"""

from dataclasses import dataclass
import threading
import time

import numpy as np

from stereo_derain_ros.image_codec import fill_image

SECOND = 1_000_000_000


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


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
