"""The node-latency benchmark's player and monitor match outputs to inputs by header stamp."""

import threading

import pytest

from stereo_derain_ros.bench.node_latency import (
    ping,
    StereoMonitor,
    StereoPlayer,
    summarise,
    synthetic_pair,
    wait_until,
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


def test_player_and_monitor_measure_a_hop(spinning_node):
    left, right = synthetic_pair(64, 48)
    player = StereoPlayer(spinning_node, '/bench_test', left, right)
    monitor = StereoMonitor(spinning_node, '/bench_test')
    ping(player, monitor, 1, timeout=20)
    stamps = ping(player, monitor, 3, timeout=20, first_stamp_ns=10**10)
    result = summarise('hop', left, player, monitor, stamps)
    assert (result.width, result.height) == (64, 48)
    assert result.sets_sent == 3 and result.sets_received == 3
    assert 0 < result.median_ms <= result.p95_ms
    assert result.overhead_ms is None


def test_fixed_rate_play_sends_every_set_with_unique_stamps(spinning_node):
    left, right = synthetic_pair(32, 24)
    player = StereoPlayer(spinning_node, '/bench_play', left, right)
    monitor = StereoMonitor(spinning_node, '/bench_play')
    ping(player, monitor, 1, timeout=20)
    player.play(count=10, rate_hz=50.0, first_stamp_ns=10**9 * 5)
    assert len(player.sent) == 11
    assert wait_until(lambda: all(monitor.has(stamp) for stamp in player.sent), 20)
    assert len(monitor.latencies_ms(player.sent)) == 11
