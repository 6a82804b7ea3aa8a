"""A plain relay node: the transport floor that the derain node is compared against.

It subscribes and publishes the derain node's topics with the same message types and QoS
(including the same QoS-override parameters), and republishes each message object untouched:
two DDS hops, like player -> node -> monitor. Its
latency is what rclpy and DDS cost for these images on this machine, so
`node latency - engine time - relay latency` is the node's own cost.

Run as `python -m stereo_derain_ros.bench.relay --ros-args -p input_namespace:=/in
-p output_namespace:=/out`.
"""

import sys

TOPICS = ('left/image_rect', 'right/image_rect', 'left/camera_info', 'right/camera_info')


def main(args: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import qos_profile_sensor_data, QoSProfile
    from rclpy.qos_overriding_options import QoSOverridingOptions
    from sensor_msgs.msg import CameraInfo, Image

    rclpy.init(args=args)
    node = rclpy.create_node('stereo_relay_node')
    source = node.declare_parameter('input_namespace', '').value.rstrip('/')
    target = node.declare_parameter('output_namespace', 'stereo_derained').value.rstrip('/')
    for topic in TOPICS:
        message_type = CameraInfo if topic.endswith('camera_info') else Image
        publisher = node.create_publisher(message_type, f'{target}/{topic}', QoSProfile(depth=5))
        node.create_subscription(message_type, f'{source}/{topic}' if source else topic,
                                 publisher.publish, qos_profile_sensor_data,
                                 qos_overriding_options=QoSOverridingOptions.with_default_policies())
    node.get_logger().info(f'stereo_relay_node ready: {source or "."} -> {target}')
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
