"""Rates, latencies, warning throttling and the diagnosis of the node's health, without ROS.

Kept apart from the node so the arithmetic is testable without ROS, and so the benchmark and the
demo summarise latencies exactly as the node reports them (`latency_summary_ms`).
"""

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
import threading
import time

import numpy as np

from stereo_derain_ros.stereo_sync import (
    INPUT_NAMES,
    LEFT_IMAGE,
    RIGHT_IMAGE,
    SyncCounters,
)

NO_SET_WARNING_SECONDS = 5.0
# One side delivering fewer images than this share of the other's means images were lost.
LOSS_RATIO = 0.9
LOSS_MIN_IMAGES = 3


def latency_summary_ms(seconds: Iterable[float]) -> dict[str, float | int | None]:
    """Summarise latencies given in seconds: count, mean, p50, p95 and max in milliseconds.

    The one latency summary of the package: node diagnostics, `bench node` and the demo report
    all use it, so their figures mean the same thing.
    """
    values = np.fromiter(seconds, dtype=np.float64) * 1000.0
    if not values.size:
        return {'count': 0, 'mean': None, 'p50': None, 'p95': None, 'max': None}
    return {'count': int(values.size), 'mean': float(values.mean()),
            'p50': float(np.percentile(values, 50)), 'p95': float(np.percentile(values, 95)),
            'max': float(values.max())}


class RateMeter:
    """Events per second over a sliding window of recent event times."""

    def __init__(self, window_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_seconds
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            now = self._clock()
            self._times.append(now)
            self._trim(now)

    def rate(self) -> float:
        with self._lock:
            now = self._clock()
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], self._times[-1] - self._times[0])
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()


class LatencyWindow:
    """The most recent latency samples (seconds), summarised by `latency_summary_ms`."""

    def __init__(self, size: int = 200) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)

    def summary_ms(self) -> dict[str, float | int | None]:
        with self._lock:
            samples = list(self._samples)
        return latency_summary_ms(samples)


# Where a stereo set's time in the node goes, in order. `wait`: set complete -> processing starts
# (hand-over to the processing thread, or a set still in flight); `decode`: messages -> numpy and
# checks; `encode`: numpy -> output messages; `publish`: handing the outputs to DDS.
PHASES = ('wait', 'decode', 'inference', 'encode', 'publish')


class PhaseTimer:
    """Split one set's time in the node into the consecutive PHASES, one `mark` per phase end."""

    def __init__(self, started: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = started
        self.seconds: dict[str, float] = {}

    def mark(self, phase: str) -> float:
        """End `phase` now; return its duration in seconds."""
        now = self._clock()
        self.seconds[phase] = now - self._last
        self._last = now
        return self.seconds[phase]


class PhaseWindows:
    """Recent durations per phase, summarised like every other latency (`latency_summary_ms`)."""

    def __init__(self, size: int = 200) -> None:
        self._windows = {phase: LatencyWindow(size) for phase in PHASES}

    def add(self, seconds: dict[str, float]) -> None:
        for phase, duration in seconds.items():
            self._windows[phase].add(duration)

    def windows(self) -> dict[str, LatencyWindow]:
        return dict(self._windows)


class WarningThrottle:
    """Say whether a warning of a given kind may be logged now.

    rclpy's own throttling is keyed by call site, so one site logging different problems would
    hide all but the first; this keys by the kind of problem instead. While a problem persists
    its period doubles after each warning (up to `max_period_seconds`), so a node left idle or
    misconfigured for hours does not fill the log; `clear` restores the short period once the
    problem is gone.
    """

    def __init__(self, period_seconds: float = 5.0, max_period_seconds: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._period = period_seconds
        self._max_period = max_period_seconds
        self._clock = clock
        self._next: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, kind: str) -> bool:
        with self._lock:
            now = self._clock()
            allowed_at, period = self._next.get(kind, (now, self._period))
            if now < allowed_at:
                return False
            self._next[kind] = (now + period, min(2.0 * period, self._max_period))
            return True

    def clear(self, kind: str) -> None:
        with self._lock:
            self._next.pop(kind, None)


@dataclass(frozen=True)
class Health:
    """What diagnostics say: level ('ok', 'warn', 'error'), one line, and a throttle key."""

    level: str
    summary: str
    kind: str = ''


@dataclass(frozen=True)
class NodeActivity:
    """What the node saw besides the synchronizer: times in seconds ago, reasons as text."""

    since_input_s: float
    since_output_s: float
    published: int
    rejected: int
    last_rejection: str
    unstamped: bool
    processing_s: float = 0.0


def diagnose(counters: SyncCounters, activity: NodeActivity) -> Health:
    """Name the true cause when sets do not come out, or say all is well."""
    lost = _lost_in_transport(counters)
    if activity.since_input_s > NO_SET_WARNING_SECONDS:
        if not sum(counters.received):
            return Health('warn', 'no input yet: waiting for all four inputs', 'no_input')
        return Health('warn', f'idle: no input for {activity.since_input_s:.0f} s', 'idle')
    if activity.unstamped:
        return Health('warn', 'unstamped input: images carry header stamp 0, so only the first '
                      'set can be paired; stamp the images in the driver (stereo sets are '
                      'paired by header stamp)', 'unstamped')
    if activity.since_output_s <= NO_SET_WARNING_SECONDS:
        if lost:
            return Health('warn', lost, 'lost')
        if counters.info_timed_out:
            return Health('warn', 'publishing without camera_info: it did not come within '
                          'camera_info_timeout_seconds (stereo_image_proc needs it)', 'no_info')
        return Health('ok', _busy_summary(counters, activity))
    return _why_no_sets(counters, activity, lost)


def _why_no_sets(counters: SyncCounters, activity: NodeActivity, lost: str) -> Health:
    quiet = f'no stereo set published for {activity.since_output_s:.0f} s: '
    if activity.processing_s > 0.0:
        return Health('warn', quiet + f'busy: the current set has been processing for '
                      f'{activity.processing_s:.1f} s (inference slower than the input)', 'busy')
    missing = [INPUT_NAMES[i] for i in range(4) if counters.received[i] == 0]
    if missing:
        return Health('warn', quiet + f'one side missing: nothing received on '
                      f'{", ".join(missing)} (check remappings and the camera)', 'missing')
    if lost:
        return Health('warn', quiet + lost, 'lost')
    if activity.rejected and counters.completed:
        return Health('warn', quiet + f'every set rejected: {activity.last_rejection}',
                      'rejected')
    left, right = counters.last_stamps[LEFT_IMAGE], counters.last_stamps[RIGHT_IMAGE]
    if counters.completed == 0 or (left is not None and right is not None and left != right):
        return Health('warn', quiet + f'stamps differ: newest left image {left / 1e9:.6f} s, '
                      f'right image {right / 1e9:.6f} s; if the cameras are not hardware-'
                      'triggered set approximate_sync:=true', 'stamps')
    return Health('warn', quiet + 'sets complete but none was processed (rate_hz timer or '
                  'use_sim_time without /clock?)', 'stalled')


def _lost_in_transport(counters: SyncCounters) -> str:
    """Describe image loss between the camera and the node, judged by left/right counts.

    A side that delivered nothing at all is "missing" (a remapping or a camera), not loss.
    """
    left, right = counters.received[LEFT_IMAGE], counters.received[RIGHT_IMAGE]
    fewer, more = sorted((left, right))
    if not fewer or more - fewer < LOSS_MIN_IMAGES or fewer >= LOSS_RATIO * more:
        return ''
    side = 'left' if left < right else 'right'
    return (f'images lost in transport: {left} left and {right} right images received; '
            f'{more - fewer} {side} images never arrived (large images between processes: use '
            'the shipped Fast DDS profile, docs/node.md "Transport")')


def _busy_summary(counters: SyncCounters, activity: NodeActivity) -> str:
    if not counters.superseded:
        return 'deraining'
    return (f'deraining; busy: {counters.superseded} of {counters.completed} sets superseded by '
            'newer ones while processing (newest wins)')
