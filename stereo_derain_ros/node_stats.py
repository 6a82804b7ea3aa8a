"""Rate, latency and warning-throttle bookkeeping for the node's diagnostics and logs.

Kept apart from the node so the arithmetic is testable without ROS and so the benchmark tools
can summarise latencies the same way the node reports them.
"""

from collections import deque
from collections.abc import Callable
import threading
import time

import numpy as np


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
    """The most recent latency samples (seconds), summarised as mean and p95 in milliseconds."""

    def __init__(self, size: int = 200) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)

    def summary_ms(self) -> tuple[float, float] | None:
        """Return `(mean, p95)` in milliseconds, or None before the first sample."""
        with self._lock:
            if not self._samples:
                return None
            values = np.fromiter(self._samples, dtype=np.float64) * 1000.0
        return float(values.mean()), float(np.percentile(values, 95))


class WarningThrottle:
    """Say whether a warning of a given kind may be logged now (at most once per period).

    rclpy's own throttling is keyed by call site, so one site logging different problems would
    hide all but the first; this keys by the kind of problem instead.
    """

    def __init__(self, period_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._period = period_seconds
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, kind: str) -> bool:
        with self._lock:
            now = self._clock()
            last = self._last.get(kind)
            if last is not None and now - last < self._period:
                return False
            self._last[kind] = now
            return True
