"""A real publisher and subscriber exchange a sensor_msgs/Image over Fast DDS on loopback."""

import array
import time

import pytest

pytestmark = pytest.mark.ros


def test_image_round_trip_over_dds(rclpy_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    publisher_node = Node('transport_pub', context=rclpy_context)
    subscriber_node = Node('transport_sub', context=rclpy_context)
    received = []
    subscriber_node.create_subscription(
        Image, 'transport_test/image', received.append, qos_profile_sensor_data)
    publisher = publisher_node.create_publisher(Image, 'transport_test/image', 10)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(publisher_node)
    executor.add_node(subscriber_node)

    message = Image(height=4, width=6, encoding='rgb8', step=18)
    message.header.frame_id = 'left_camera_optical_frame'
    message.header.stamp.sec = 42
    message.data = array.array('B', bytes(range(72)))
    deadline = time.monotonic() + 20.0
    while not received and time.monotonic() < deadline:
        publisher.publish(message)
        executor.spin_once(timeout_sec=0.1)
    executor.shutdown()
    publisher_node.destroy_node()
    subscriber_node.destroy_node()

    assert received, 'no image arrived over DDS within 20 s'
    image = received[0]
    assert (image.height, image.width, image.encoding, image.step) == (4, 6, 'rgb8', 18)
    assert image.header.frame_id == 'left_camera_optical_frame'
    assert image.header.stamp.sec == 42
    assert bytes(image.data) == bytes(range(72))
