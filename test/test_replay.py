"""`replay` publishes a real bag over Fast DDS to real rclpy subscribers."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from rosbags.interfaces import Qos, QosDurability, QosReliability
from stereo_bag_fixtures import BagSpec, BEST_EFFORT, frame_pixels, stamp_ns, write_stereo_bag

from stereo_derain_ros.bagio import BagError
from stereo_derain_ros.bagio.replay import message_class, qos_profile, replay_bag, ReplayConfig

from conftest import REPO_ROOT

pytestmark = pytest.mark.ros


def test_message_classes_resolve_by_name():
    from sensor_msgs.msg import CameraInfo, Image

    assert message_class('sensor_msgs/msg/Image') is Image
    assert message_class('sensor_msgs/msg/CameraInfo') is CameraInfo
    with pytest.raises(BagError, match='no_such_msgs/msg/Thing is not installed'):
        message_class('no_such_msgs/msg/Thing')


def test_qos_follows_the_recording_else_reliable():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    assert qos_profile([]).reliability == ReliabilityPolicy.RELIABLE
    assert qos_profile([BEST_EFFORT]).reliability == ReliabilityPolicy.BEST_EFFORT
    latched = BEST_EFFORT._replace(reliability=QosReliability.RELIABLE,
                                   durability=QosDurability.TRANSIENT_LOCAL)
    assert qos_profile([latched]).durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert qos_profile([BEST_EFFORT, latched]).reliability == ReliabilityPolicy.RELIABLE
    assert isinstance(latched, Qos)


class Recorder:
    """A real rclpy node that records what arrives, spun in a background thread."""

    def __init__(self, context, topics: dict):
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data

        self.node = Node('replay_recorder', context=context)
        self.received = {topic: [] for topic in topics}
        for topic, msg_class in topics.items():
            self.node.create_subscription(msg_class, topic, self.received[topic].append,
                                          qos_profile_sensor_data if 'image' in topic else 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def wait_for(self, topic: str, count: int, timeout: float = 10.0) -> None:
        event = threading.Event()
        deadline = threading.Timer(timeout, event.set)
        deadline.start()
        while len(self.received[topic]) < count and not event.wait(0.05):
            pass
        deadline.cancel()

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=5)
        self.node.destroy_node()


def test_replay_delivers_every_message_with_recorded_content(tmp_path, rclpy_context):
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    bag = write_stereo_bag(tmp_path / 'bag', BagSpec(frames=5))
    recorder = Recorder(rclpy_context, {'/chatter': String, '/stereo/left/image_rect': Image,
                                        '/clock': Clock})
    published = []
    try:
        summary = replay_bag(
            ReplayConfig(bag=bag, rate=4.0, clock=True, delay_s=0.3, wait_for_subscribers_s=15,
                         topics=['/chatter', '/stereo/left/image_rect']),
            context=rclpy_context, on_message=lambda topic, t: published.append(topic))
        recorder.wait_for('/chatter', 5)
        recorder.wait_for('/stereo/left/image_rect', 5)
    finally:
        recorder.close()

    assert summary.published == {'/chatter': 5, '/stereo/left/image_rect': 5}
    assert summary.loops == 1
    assert len(published) == 10
    assert [m.data for m in recorder.received['/chatter']] == [f'frame {i}' for i in range(5)]
    images = recorder.received['/stereo/left/image_rect']
    assert images, 'no image arrived over DDS'
    for image in images:
        index = round((image.header.stamp.sec * 10**9 + image.header.stamp.nanosec
                       - stamp_ns(0)) / 1e8)
        assert image.header.frame_id == 'stereo_left_optical_frame'
        pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, 3)
        np.testing.assert_array_equal(pixels, frame_pixels(index, 0))
    clock_ns = [c.clock.sec * 10**9 + c.clock.nanosec for c in recorder.received['/clock']]
    assert clock_ns and clock_ns == sorted(clock_ns)
    assert stamp_ns(0) <= clock_ns[0] and clock_ns[-1] <= stamp_ns(5) + 10**7


def test_replay_stops_from_another_thread_while_looping(tmp_path, rclpy_context):
    bag = write_stereo_bag(tmp_path / 'bag', BagSpec(frames=2))
    stop = threading.Event()
    threading.Timer(1.5, stop.set).start()
    summary = replay_bag(ReplayConfig(bag=bag, rate=10.0, loop=True, topics=['/chatter']),
                         context=rclpy_context, stop=stop)
    assert summary.loops >= 2
    assert summary.published['/chatter'] >= 4


def test_unknown_topic_is_an_error_listing_the_bag_topics(tmp_path, rclpy_context):
    bag = write_stereo_bag(tmp_path / 'bag', BagSpec(frames=1))
    with pytest.raises(BagError, match='/nope are not in the bag.*/chatter'):
        replay_bag(ReplayConfig(bag=bag, topics=['/nope']), context=rclpy_context)


@pytest.mark.slow
def test_cli_replays_to_a_subscriber_in_another_process(tmp_path, rclpy_context):
    from std_msgs.msg import String

    bag = write_stereo_bag(tmp_path / 'bag', BagSpec(frames=3))
    recorder = Recorder(rclpy_context, {'/chatter': String})
    try:
        result = subprocess.run(
            [sys.executable, '-m', 'stereo_derain_ros', 'replay', str(bag), '--rate', '5',
             '--topics', '/chatter', '--wait-for-subscribers', '15'],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, 'PYTHONPATH': str(REPO_ROOT)})
        recorder.wait_for('/chatter', 3)
    finally:
        recorder.close()
    assert result.returncode == 0, result.stderr
    assert 'published 3 messages on 1 topics' in result.stdout
    assert [m.data for m in recorder.received['/chatter']] == ['frame 0', 'frame 1', 'frame 2']
