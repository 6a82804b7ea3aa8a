"""The benchmark's side of the wire: a stereo player, an output monitor and fixed-rate runs.

The player publishes a pre-loaded stereo pair (messages built once, only stamps change) and
records when each stamp was sent; the monitor records when both output views of a stamp arrived.
Matching by header stamp is valid because the node (and the relay) copy input headers unchanged.
`run_at_rate` plays one run with fresh stamps and samples the process under test (CPU time,
resident memory) while it runs; `ping` sends sets one at a time, so none waits behind another.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
import threading
import time

import numpy as np

from stereo_derain_ros.image_codec import fill_image
from stereo_derain_ros.node_stats import latency_summary_ms

SECOND = 1_000_000_000


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
        self.pair = (left, right)
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




class ProcessSampler:
    """Sample a process's resident memory about once a second and its CPU time over a run."""

    def __init__(self, pid: int, interval_s: float = 1.0) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self._interval = interval_s
        self._stop = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self.cpu_percent: float | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> 'ProcessSampler':
        self._started = time.monotonic()
        self._cpu_start = self._cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_percent = (100.0 * (self._cpu_seconds() - self._cpu_start)
                            / (time.monotonic() - self._started))

    def _cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    def _run(self) -> None:
        while not self._stop.is_set():
            rss_mb = self._process.memory_info().rss / 2**20
            self.samples.append((time.monotonic() - self._started, rss_mb))
            self._stop.wait(self._interval)


@dataclass
class RateRun:
    """One fixed-rate run: what was sent, what came back, how late, and the process's cost."""

    rate_hz: float
    duration_s: float
    sent: int
    latencies_ms: list[float] = field(repr=False)
    cpu_percent: float | None
    rss_mb: list[tuple[float, float]] = field(repr=False)

    @property
    def received(self) -> int:
        return len(self.latencies_ms)

    @property
    def drop_rate(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0

    def summary(self) -> dict:
        """Return the JSON row: throughput, drops, latency statistics, CPU and memory."""
        latency = latency_summary_ms(value / 1000.0 for value in self.latencies_ms)
        rss = [value for _, value in self.rss_mb]
        return {
            'rate_hz': self.rate_hz, 'duration_s': self.duration_s, 'sent': self.sent,
            'received': self.received, 'drop_rate': self.drop_rate,
            'throughput_hz': self.received / self.duration_s,
            **{f'latency_{key}_ms': latency[key] for key in ('mean', 'p50', 'p95', 'max')},
            'cpu_percent': self.cpu_percent,
            'rss_start_mb': rss[0] if rss else None, 'rss_end_mb': rss[-1] if rss else None,
            'rss_max_mb': max(rss) if rss else None,
        }


class StampClock:
    """Hand out stamp ranges that never repeat or go backwards across runs."""

    def __init__(self, start_ns: int = 1000 * SECOND) -> None:
        self.next_ns = start_ns

    def reserve(self, count: int, period_ns: int) -> int:
        first = self.next_ns
        self.next_ns = first + count * period_ns + SECOND
        return first


def run_at_rate(player: StereoPlayer, monitor: StereoMonitor, stamps: StampClock,
                rate_hz: float, duration_s: float, grace_s: float, pid: int,
                sample_interval_s: float = 1.0) -> RateRun:
    """Play at a fixed rate, wait `grace_s` for stragglers, and match outputs by stamp."""
    count = max(1, round(rate_hz * duration_s))
    period_ns = round(SECOND / rate_hz)
    first = stamps.reserve(count, period_ns)
    with ProcessSampler(pid, sample_interval_s) as sampler:
        player.play(count, rate_hz, first_stamp_ns=first)
        time.sleep(grace_s)
    sent = {stamp: at for stamp, at in player.sent.items()
            if first <= stamp < first + count * period_ns}
    return RateRun(rate_hz=rate_hz, duration_s=count / rate_hz, sent=len(sent),
                   latencies_ms=monitor.latencies_ms(sent), cpu_percent=sampler.cpu_percent,
                   rss_mb=sampler.samples)


def ping(player: StereoPlayer, monitor: StereoMonitor, stamps: StampClock, count: int,
         timeout_s: float) -> list[float]:
    """Send `count` sets one at a time, each after the previous came back; return latencies ms."""
    first = stamps.reserve(count, SECOND // 10)
    sent = {}
    for index in range(count):
        stamp = first + index * SECOND // 10
        player.publish(stamp)
        sent[stamp] = player.sent[stamp]
        deadline = time.monotonic() + timeout_s
        while not monitor.has(stamp) and time.monotonic() < deadline:
            time.sleep(0.001)
    return monitor.latencies_ms(sent)


def rss_growth_mb(samples: list[tuple[float, float]], settle_s: float) -> dict:
    """Return how resident memory moved between the first and last quarter after `settle_s`.

    Inference allocates and frees hundreds of megabytes per set, so single samples swing; a leak
    shows as a rise of both the highest and the lowest samples of a quarter, a swing as neither.
    """
    settled = [rss for at, rss in samples if at >= settle_s]
    if len(settled) < 4:
        return {'rss_growth_mb': None, 'rss_low_growth_mb': None}
    quarter = len(settled) // 4
    first, last = settled[:quarter], settled[-quarter:]
    return {'rss_growth_mb': max(last) - max(first), 'rss_low_growth_mb': min(last) - min(first)}


def wait_until_answered(player: StereoPlayer, monitor: StereoMonitor, stamps: StampClock,
                        timeout_s: float, check: Callable[[], None] = lambda: None) -> bool:
    """Send one set every 2 s until one comes back (discovery done, engine loaded); True if so.

    A set sent before both sides of every topic have matched is lost, so one set is not enough.
    `check` may raise to stop early (e.g. when the process under test exited).
    """
    deadline = time.monotonic() + timeout_s
    sent = []
    while time.monotonic() < deadline:
        check()
        if not player.subscribers_matched():
            time.sleep(0.2)
            continue
        sent.append(stamps.reserve(1, SECOND))
        player.publish(sent[-1])
        answered_by = min(deadline, time.monotonic() + 2.0)
        while time.monotonic() < answered_by:
            # a slow node answers an earlier set while later ones are superseded
            if any(monitor.has(stamp) for stamp in sent):
                return True
            time.sleep(0.01)
    return False
