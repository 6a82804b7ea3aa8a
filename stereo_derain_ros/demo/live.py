"""Replay -> node -> recorded output: the live part of the demo, also run alone by the tests."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
import time

from stereo_derain_ros.demo import DemoError
from stereo_derain_ros.demo.node_process import (
    INPUT_TOPICS,
    log_tail,
    running_node,
    wait_until_ready,
)
from stereo_derain_ros.demo.recorder import OutputRecorder

DRAIN_POLL_S = 0.05
DIAGNOSTICS_WAIT_S = 2.5


@dataclass
class LiveRun:
    """Timing of one live run: when each input set was on the wire and its output came back.

    Stamps are header stamps (nanoseconds); times are `time.monotonic()` seconds in this
    process, so a stamp's latency is `received[stamp] - sent[stamp]`.
    """

    replay_rate: float
    node_ready_s: float = 0.0
    replay_s: float = 0.0
    sent: dict[int, float] = field(default_factory=dict)
    received: dict[int, float] = field(default_factory=dict)
    diagnostics: list[dict[str, str]] = field(default_factory=list)
    recorded_messages: int = 0


def record_live_run(bag: Path, recorded: Path, node_command: list[str], node_log: Path,
                    env: dict[str, str], replay_rate: float, *, drain_timeout_s: float,
                    ready_timeout_s: float = 120.0,
                    progress: Callable[[int, int], None] | None = None) -> LiveRun:
    """Start the node, replay the bag's rainy topics through it and record what it publishes.

    `progress(sets_sent, sets_derained)` is called as sets go out and come back. After the replay
    it waits until every sent set came back, or none came for `drain_timeout_s`; the node is
    stopped and the recorded bag completed (atomically) before returning.
    """
    import rclpy
    from rclpy.context import Context
    from rosbags.rosbag2 import StoragePlugin, Writer

    from stereo_derain_ros.bagio.atomic import atomic_bag_directory
    from stereo_derain_ros.bagio.replay import replay_bag, ReplayConfig

    run = LiveRun(replay_rate=replay_rate)
    context = Context()
    rclpy.init(context=context)
    try:
        with atomic_bag_directory(recorded, overwrite=True) as temporary, \
                Writer(temporary, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            recorder = OutputRecorder(context, writer)
            try:
                with running_node(node_command, node_log, env) as process:
                    run.node_ready_s = wait_until_ready(process, recorder.node, node_log,
                                                        ready_timeout_s)
                    published: dict[int, int] = {}

                    def on_message(topic: str, timestamp: int) -> None:
                        published[timestamp] = published.get(timestamp, 0) + 1
                        if published[timestamp] == len(INPUT_TOPICS):
                            run.sent[timestamp] = time.monotonic()
                            if progress is not None:
                                progress(len(run.sent), recorder.derained_count())

                    started = time.monotonic()
                    replay_bag(ReplayConfig(bag=bag, rate=replay_rate, topics=list(INPUT_TOPICS),
                                            delay_s=0.5, wait_for_subscribers_s=10.0),
                               context=context, on_message=on_message)
                    run.replay_s = time.monotonic() - started
                    _drain(recorder, run, drain_timeout_s, progress)
                    if process.poll() is not None:
                        raise DemoError(f'the node exited with status {process.returncode} '
                                        f'during the replay: {log_tail(node_log)}')
            finally:
                recorder.close()
            run.received = dict(recorder.arrivals)
            run.diagnostics = list(recorder.diagnostics)
            run.recorded_messages = recorder.messages
    finally:
        context.try_shutdown()
    return run


def _drain(recorder: OutputRecorder, run: LiveRun, timeout_s: float,
           progress: Callable[[int, int], None] | None) -> None:
    """Wait for the sets still in the node, then for one more diagnostics message."""
    last_count, last_change = recorder.derained_count(), time.monotonic()
    while last_count < len(run.sent) and time.monotonic() - last_change < timeout_s:
        time.sleep(DRAIN_POLL_S)
        count = recorder.derained_count()
        if count != last_count:
            last_count, last_change = count, time.monotonic()
            if progress is not None:
                progress(len(run.sent), count)
    diagnostics_before = recorder.diagnostics_count()
    deadline = time.monotonic() + DIAGNOSTICS_WAIT_S
    while recorder.diagnostics_count() == diagnostics_before and time.monotonic() < deadline:
        time.sleep(DRAIN_POLL_S)
