"""Fixed-rate runs over DDS with the node helper's player and monitor (`node_latency`).

`run_at_rate` plays one run with fresh stamps, matches outputs to inputs by stamp, and samples
the process under test (CPU time, resident memory) while it runs.
"""

from dataclasses import dataclass, field
import statistics
import threading
import time

import numpy as np

from stereo_derain_ros.bench.node_latency import SECOND, StereoMonitor, StereoPlayer


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
        latencies = self.latencies_ms
        rss = [value for _, value in self.rss_mb]

        def percentile(q: float) -> float | None:
            return float(np.percentile(latencies, q)) if latencies else None

        return {
            'rate_hz': self.rate_hz, 'duration_s': self.duration_s, 'sent': self.sent,
            'received': self.received, 'drop_rate': self.drop_rate,
            'throughput_hz': self.received / self.duration_s,
            'latency_mean_ms': statistics.fmean(latencies) if latencies else None,
            'latency_p50_ms': percentile(50), 'latency_p95_ms': percentile(95),
            'latency_max_ms': max(latencies) if latencies else None,
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
                rate_hz: float, duration_s: float, grace_s: float, pid: int) -> RateRun:
    """Play at a fixed rate, wait `grace_s` for stragglers, and match outputs by stamp."""
    count = max(1, round(rate_hz * duration_s))
    period_ns = round(SECOND / rate_hz)
    first = stamps.reserve(count, period_ns)
    with ProcessSampler(pid) as sampler:
        player.play(count, rate_hz, first_stamp_ns=first)
        time.sleep(grace_s)
    sent = {stamp: at for stamp, at in player.sent.items()
            if first <= stamp < first + count * period_ns}
    return RateRun(rate_hz=rate_hz, duration_s=count / rate_hz, sent=len(sent),
                   latencies_ms=monitor.latencies_ms(sent), cpu_percent=sampler.cpu_percent,
                   rss_mb=sampler.samples)
