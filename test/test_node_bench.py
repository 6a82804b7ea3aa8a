"""The benchmark's player and monitor match outputs to inputs by header stamp."""

import threading
import time

import numpy as np
import pytest

from stereo_derain_ros.bench.dds_rig import (
    ping,
    rss_growth_mb,
    run_at_rate,
    SECOND,
    StampClock,
    StereoMonitor,
    StereoPlayer,
)

pytestmark = pytest.mark.ros


@pytest.fixture
def spinning_node(rclpy_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    node = Node('bench_test', context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown()
    thread.join(timeout=10)
    node.destroy_node()


def pair(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
            rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_player_and_monitor_measure_a_hop(spinning_node):
    player = StereoPlayer(spinning_node, '/bench_test', *pair(64, 48))
    monitor = StereoMonitor(spinning_node, '/bench_test')
    stamps = StampClock()
    deadline = time.monotonic() + 20
    while not player.subscribers_matched() and time.monotonic() < deadline:
        time.sleep(0.05)
    latencies = ping(player, monitor, stamps, 3, timeout_s=20)
    assert len(latencies) == 3 and all(value > 0 for value in latencies)


def test_fixed_rate_play_sends_every_set_with_unique_stamps(spinning_node):
    import os

    player = StereoPlayer(spinning_node, '/bench_play', *pair(32, 24))
    monitor = StereoMonitor(spinning_node, '/bench_play')
    stamps = StampClock()
    ping(player, monitor, stamps, 1, timeout_s=20)
    run = run_at_rate(player, monitor, stamps, 50.0, 0.2, 1.0, os.getpid())
    assert run.sent == 10 and run.received == 10
    assert len(set(player.sent)) == 11 and min(player.sent) >= 1000 * SECOND
    summary = run.summary()
    assert 0 < summary['latency_p50_ms'] <= summary['latency_max_ms']


def test_rss_growth_sees_a_leak_but_not_a_swing():
    swing = [(float(t), 600.0 + (300.0 if t % 2 else 0.0)) for t in range(40)]
    assert rss_growth_mb(swing, 5.0) == {'rss_growth_mb': 0.0, 'rss_low_growth_mb': 0.0}
    leak = [(float(t), 600.0 + 5.0 * t + (300.0 if t % 2 else 0.0)) for t in range(40)]
    growth = rss_growth_mb(leak, 5.0)
    assert growth['rss_growth_mb'] > 100 and growth['rss_low_growth_mb'] > 100
