"""Replay -> node -> recorded output: the live part of the demo, also run alone by the tests."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
import statistics
import time

import numpy as np

from stereo_derain_ros.demo import DemoError
from stereo_derain_ros.demo.node_process import (
    INPUT_NAMESPACE,
    INPUT_TOPICS,
    OUTPUT_NAMESPACE,
    running_node,
    wait_until_ready,
)
from stereo_derain_ros.demo.recorder import OutputRecorder

DRAIN_POLL_S = 0.05
DIAGNOSTICS_WAIT_S = 2.5
PROBE_SETS = 3
PROBE_TIMEOUT_S = 60.0
PROBE_LEAD_S = 300
# Replay one set every HEADROOM x the node's own time per set, so that it keeps up.
HEADROOM = 1.25


@dataclass
class Pacing:
    """Pace the replay from the node itself: its time per set on `pair`, sent one at a time.

    Timing the engine in the demo's own process misjudged the node (2.7 s per pair against the
    node's 0.55 s on a busy 2-core machine), so the node is probed once it runs.
    """

    pair: tuple[np.ndarray, np.ndarray]
    bag_rate_hz: float
    first_stamp_ns: int
    on_paced: Callable[[float, float], None] = lambda seconds, rate: None


@dataclass
class LiveRun:
    """Timing of one live run: when each input set was on the wire and its output came back.

    Stamps are header stamps (nanoseconds); times are `time.monotonic()` seconds in this
    process, so a stamp's latency is `received[stamp] - sent[stamp]`. `node_seconds_per_set` is
    the probe's measurement when the pace was measured.
    """

    replay_rate: float | None
    node_ready_s: float = 0.0
    node_seconds_per_set: float | None = None
    sent: dict[int, float] = field(default_factory=dict)
    received: dict[int, float] = field(default_factory=dict)
    diagnostics: list[dict[str, str]] = field(default_factory=list)


def probe_node(recorder: OutputRecorder, pacing: Pacing) -> float:
    """Return the node's median seconds per set, for PROBE_SETS sets sent one at a time.

    Sets are first sent until one comes back (the node's subscriptions must discover the probe's
    publishers). Probe stamps lie a few minutes before the bag's first stamp, so the replay that
    follows moves forward in time and the report, which looks outputs up by the bag's stamps,
    ignores them.
    """
    from stereo_derain_ros.bench.dds_rig import (
        ping,
        SECOND,
        StampClock,
        StereoMonitor,
        StereoPlayer,
        wait_until_answered,
    )

    player = StereoPlayer(recorder.node, INPUT_NAMESPACE, *pacing.pair)
    monitor = StereoMonitor(recorder.node, OUTPUT_NAMESPACE)
    stamps = StampClock(max(SECOND, pacing.first_stamp_ns - PROBE_LEAD_S * SECOND))
    if not wait_until_answered(player, monitor, stamps, PROBE_TIMEOUT_S):
        raise DemoError(f'the node answered no probe set within {PROBE_TIMEOUT_S:.0f} s')
    latencies_ms = ping(player, monitor, stamps, PROBE_SETS, PROBE_TIMEOUT_S)
    if len(latencies_ms) < PROBE_SETS:
        raise DemoError(f'the node answered {len(latencies_ms)} of {PROBE_SETS} probe sets')
    return statistics.median(latencies_ms) / 1000.0


def record_live_run(bag: Path, recorded: Path, node_command: list[str], node_log: Path,
                    env: dict[str, str], replay_rate: float | None, *, drain_timeout_s: float,
                    ready_timeout_s: float = 120.0, pacing: Pacing | None = None,
                    progress: Callable[[int, int], None] | None = None) -> LiveRun:
    """Start the node, replay the bag's rainy topics through it and record what it publishes.

    `replay_rate` None measures the pace with `pacing` once the node runs. `progress(sets_sent,
    sets_derained)` is called as sets go out and come back. After the replay it waits until
    every sent set came back, or none came for `drain_timeout_s`; the node is stopped and the
    recorded bag completed (atomically) before returning.
    """
    import rclpy
    from rclpy.context import Context
    from rosbags.rosbag2 import StoragePlugin, Writer

    from stereo_derain_ros.bagio.atomic import atomic_bag_directory

    run = LiveRun(replay_rate=replay_rate)
    context = Context()
    rclpy.init(context=context)
    try:
        with atomic_bag_directory(recorded, overwrite=True) as temporary, \
                Writer(temporary, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            recorder = OutputRecorder(context, writer)
            try:
                with running_node(node_command, node_log, env) as process:
                    run.node_ready_s = wait_until_ready(process, recorder.node, ready_timeout_s)
                    if run.replay_rate is None:
                        _pace(recorder, run, pacing)
                    _replay(bag, context, recorder, run, drain_timeout_s, progress)
                    if process.poll() is not None:
                        raise DemoError(f'the node exited with status {process.poll()} '
                                        f'during the replay: {process.log_tail()}')
            finally:
                recorder.close()
            run.received = {stamp: at for stamp, at in recorder.arrivals.items()
                            if stamp in run.sent}
            run.diagnostics = list(recorder.diagnostics)
    finally:
        context.try_shutdown()
    return run


def _pace(recorder: OutputRecorder, run: LiveRun, pacing: Pacing | None) -> None:
    if pacing is None:
        raise ValueError('replay_rate None needs a Pacing to measure the node with')
    run.node_seconds_per_set = probe_node(recorder, pacing)
    run.replay_rate = min(1.0, 1.0 / (HEADROOM * run.node_seconds_per_set * pacing.bag_rate_hz))
    pacing.on_paced(run.node_seconds_per_set, run.replay_rate)


def _replay(bag: Path, context, recorder: OutputRecorder, run: LiveRun, drain_timeout_s: float,
            progress: Callable[[int, int], None] | None) -> None:
    from stereo_derain_ros.bagio.replay import replay_bag, ReplayConfig

    published: dict[int, int] = {}
    baseline = recorder.derained_count()

    def on_message(topic: str, timestamp: int) -> None:
        published[timestamp] = published.get(timestamp, 0) + 1
        if published[timestamp] == len(INPUT_TOPICS):
            run.sent[timestamp] = time.monotonic()
            if progress is not None:
                progress(len(run.sent), recorder.derained_count() - baseline)

    replay_bag(ReplayConfig(bag=bag, rate=run.replay_rate, topics=list(INPUT_TOPICS),
                            delay_s=0.5, wait_for_subscribers_s=10.0),
               context=context, on_message=on_message)
    _drain(recorder, run, baseline, drain_timeout_s, progress)


def _drain(recorder: OutputRecorder, run: LiveRun, baseline: int, timeout_s: float,
           progress: Callable[[int, int], None] | None) -> None:
    """Wait for the sets still in the node, then for one more diagnostics message."""
    last_count, last_change = recorder.derained_count() - baseline, time.monotonic()
    while last_count < len(run.sent) and time.monotonic() - last_change < timeout_s:
        time.sleep(DRAIN_POLL_S)
        count = recorder.derained_count() - baseline
        if count != last_count:
            last_count, last_change = count, time.monotonic()
            if progress is not None:
                progress(len(run.sent), count)
    diagnostics_before = recorder.diagnostics_count()
    deadline = time.monotonic() + DIAGNOSTICS_WAIT_S
    while recorder.diagnostics_count() == diagnostics_before and time.monotonic() < deadline:
        time.sleep(DRAIN_POLL_S)
