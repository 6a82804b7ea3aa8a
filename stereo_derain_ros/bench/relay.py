"""A plain relay node: the transport floor that the derain node is compared against.

It subscribes and publishes exactly the topics, message types and QoS the derain node does,
and republishes each message object untouched. Its latency is what rclpy and DDS cost for these
images on this machine, so `node latency - engine time - relay latency` is the node's own cost.

Run as `python -m stereo_derain_ros.bench.relay [--ros-args ...]`.
"""

import sys

RELAYED = (('left/image_rect', 'left/image_rect'), ('right/image_rect', 'right/image_rect'),
           ('left/camera_info', 'left/camera_info'), ('right/camera_info', 'right/camera_info'))
OUTPUT_NAMESPACE = 'stereo_derained'


def main(args: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data, QoSProfile
    from sensor_msgs.msg import CameraInfo, Image

    rclpy.init(args=args)
    node = Node('stereo_relay_node')
    for source, target in RELAYED:
        message_type = CameraInfo if source.endswith('camera_info') else Image
        publisher = node.create_publisher(message_type, f'{OUTPUT_NAMESPACE}/{target}',
                                          QoSProfile(depth=5))
        node.create_subscription(message_type, source, publisher.publish,
                                 qos_profile_sensor_data)
    node.get_logger().info('stereo_relay_node ready')
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
