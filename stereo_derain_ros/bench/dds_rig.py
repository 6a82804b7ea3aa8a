"""Player and monitor for node benchmarks over real DDS, in the ros2_benchmark manner.

The player publishes a pre-loaded stereo sequence (images + camera_info, one shared stamp per
set) at a fixed rate; every set gets a fresh stamp that serves as its identity, and the node
under test must copy headers to its outputs (it does, for stereo_image_proc's ExactTime sync).
The monitor records when both derained views of a stamp have arrived, so latency is measured
per set from the moment the player published it, and sets never seen count as drops.
"""

from dataclasses import dataclass, field
import statistics
import threading
import time

import numpy as np

from stereo_derain_ros.bench.sequence import StereoFrame
from stereo_derain_ros.image_codec import fill_image

INPUT_TOPICS = ('left/image_rect', 'right/image_rect', 'left/camera_info', 'right/camera_info')
OUTPUT_TOPICS = ('stereo_derained/left/image_rect', 'stereo_derained/right/image_rect')
# Stamps are identities, not times: a large base keeps them clear of anything else on the bus.
STAMP_BASE_NS = 1_000_000 * 1_000_000_000
STAMP_STEP_NS = 1_000_000


def _set_stamp(message, stamp_ns: int) -> None:
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)


def _stamp_of(message) -> int:
    return message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec


def _camera_info(width: int, height: int, frame_id: str, baseline_px: float):
    from sensor_msgs.msg import CameraInfo

    focal = float(width)
    info = CameraInfo(width=width, height=height, distortion_model='plumb_bob')
    info.header.frame_id = frame_id
    info.k = [focal, 0.0, width / 2, 0.0, focal, height / 2, 0.0, 0.0, 1.0]
    info.p = [focal, 0.0, width / 2, -baseline_px, 0.0, focal, height / 2, 0.0, 0.0, 0.0, 1.0,
              0.0]
    return info


class StereoPlayer:
    """Publish pre-built stereo sets at a fixed rate; remember when each stamp was sent."""

    def __init__(self, node, frames: list[StereoFrame]) -> None:
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import CameraInfo, Image

        self._publishers = [node.create_publisher(Image if 'image' in topic else CameraInfo,
                                                  topic, QoSProfile(depth=5))
                            for topic in INPUT_TOPICS]
        self._sets = []
        for left, right in frames:
            height, width = left.shape[:2]
            images = []
            for view, frame_id in ((left, 'left_camera'), (right, 'right_camera')):
                image = Image()
                image.header.frame_id = frame_id
                fill_image(image, view, 'rgb8')
                images.append(image)
            infos = [_camera_info(width, height, 'left_camera', 0.0),
                     _camera_info(width, height, 'right_camera', 0.1 * width)]
            self._sets.append((*images, *infos))
        self._next_stamp = STAMP_BASE_NS

    def subscriber_counts(self) -> list[int]:
        """Return how many subscriptions each input topic has (discovery progress)."""
        return [publisher.get_subscription_count() for publisher in self._publishers]

    def publish_one(self, index: int) -> tuple[int, float]:
        """Publish set `index % len(sequence)` with a fresh stamp; return (stamp, send time)."""
        left, right, left_info, right_info = self._sets[index % len(self._sets)]
        stamp = self._next_stamp
        self._next_stamp += STAMP_STEP_NS
        for message in (left, right, left_info, right_info):
            _set_stamp(message, stamp)
        sent_at = time.monotonic()
        image_left, image_right, info_left, info_right = self._publishers
        info_left.publish(left_info)
        info_right.publish(right_info)
        image_left.publish(left)
        image_right.publish(right)
        return stamp, sent_at

    def play(self, rate_hz: float, duration_s: float) -> dict[int, float]:
        """Publish at `rate_hz` for `duration_s` on a drift-free schedule; return stamp -> time."""
        period = 1.0 / rate_hz
        count = max(1, round(rate_hz * duration_s))
        sent = {}
        start = time.monotonic()
        for index in range(count):
            delay = start + index * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamp, sent_at = self.publish_one(index)
            sent[stamp] = sent_at
        return sent


class StereoMonitor:
    """Record when both output views of each stamp have arrived."""

    def __init__(self, node) -> None:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        self._lock = threading.Lock()
        self._halves: dict[int, float] = {}
        self._completed: dict[int, float] = {}
        self._subscriptions = [
            node.create_subscription(Image, topic, self._on_image, qos_profile_sensor_data)
            for topic in OUTPUT_TOPICS]

    def publisher_counts(self) -> list[int]:
        """Return how many publishers each output topic has (discovery progress)."""
        return [subscription.get_publisher_count() for subscription in self._subscriptions]

    def _on_image(self, message) -> None:
        arrived = time.monotonic()
        stamp = _stamp_of(message)
        with self._lock:
            if stamp in self._halves:
                self._completed[stamp] = arrived
                del self._halves[stamp]
            else:
                self._halves[stamp] = arrived

    def completed(self) -> dict[int, float]:
        """Return stamp -> time both views had arrived, for every set seen so far."""
        with self._lock:
            return dict(self._completed)


class ProcessSampler:
    """Sample a process's resident memory about once a second, in a background thread."""

    def __init__(self, pid: int | None, interval_s: float = 1.0) -> None:
        import psutil

        self._process = psutil.Process(pid) if pid else None
        self._interval = interval_s
        self._stop = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu_start = None

    def __enter__(self) -> 'ProcessSampler':
        if self._process:
            self._cpu_start = (time.monotonic(), self._cpu_seconds())
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._process:
            self.cpu_percent = (100.0 * (self._cpu_seconds() - self._cpu_start[1])
                                / (time.monotonic() - self._cpu_start[0]))

    def _cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            rss_mb = self._process.memory_info().rss / 2**20
            self.samples.append((time.monotonic() - started, rss_mb))
            self._stop.wait(self._interval)


@dataclass
class RateRun:
    """One fixed-rate run: what was sent, what came back, how late, and the process's cost."""

    rate_hz: float
    duration_s: float
    sent: int
    received: int
    latencies_ms: list[float] = field(repr=False)
    cpu_percent: float | None
    rss_mb: list[tuple[float, float]] = field(repr=False)

    @property
    def drop_rate(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 1.0

    def summary(self) -> dict:
        """Return the JSON row: throughput, drops, latency statistics, CPU and memory."""
        latencies = self.latencies_ms
        rss = [value for _, value in self.rss_mb]
        return {
            'rate_hz': self.rate_hz, 'duration_s': self.duration_s, 'sent': self.sent,
            'received': self.received, 'drop_rate': self.drop_rate,
            'throughput_hz': self.received / self.duration_s,
            'latency_mean_ms': statistics.fmean(latencies) if latencies else None,
            'latency_p50_ms': float(np.percentile(latencies, 50)) if latencies else None,
            'latency_p95_ms': float(np.percentile(latencies, 95)) if latencies else None,
            'latency_max_ms': max(latencies) if latencies else None,
            'cpu_percent': self.cpu_percent,
            'rss_start_mb': rss[0] if rss else None,
            'rss_end_mb': rss[-1] if rss else None,
            'rss_max_mb': max(rss) if rss else None,
        }


def run_at_rate(player: StereoPlayer, monitor: StereoMonitor, rate_hz: float,
                duration_s: float, grace_s: float, pid: int | None) -> RateRun:
    """Play at a fixed rate, wait `grace_s` for stragglers, and match outputs by stamp."""
    with ProcessSampler(pid) as sampler:
        sent = player.play(rate_hz, duration_s)
        time.sleep(grace_s)
    completed = monitor.completed()
    latencies = [(completed[stamp] - sent_at) * 1000.0 for stamp, sent_at in sent.items()
                 if stamp in completed]
    return RateRun(rate_hz=rate_hz, duration_s=duration_s, sent=len(sent),
                   received=len(latencies), latencies_ms=latencies,
                   cpu_percent=getattr(sampler, 'cpu_percent', None), rss_mb=sampler.samples)
