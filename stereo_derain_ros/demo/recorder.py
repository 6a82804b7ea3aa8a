"""An in-process rclpy recorder of the node's outputs and /diagnostics, written with rosbags.

Messages are taken raw (the CDR bytes DDS delivered) and written unchanged, as `ros2 bag record`
does, with the wall-clock receive time. Arrival times of the derained images are also kept per
header stamp: the node copies input headers, so a stamp names the input set an output came from.
"""

import threading
import time

from stereo_derain_ros.bagio.reading import typestore
from stereo_derain_ros.bagio.replay import message_class
from stereo_derain_ros.demo.node_process import (
    NODE_NAME,
    OUTPUT_IMAGE_TOPICS,
    OUTPUT_INFO_TOPICS,
    SIDES,
)
from stereo_derain_ros.stamps import header_stamp_ns

DIAGNOSTICS_TOPIC = '/diagnostics'
IMAGE_TYPE = 'sensor_msgs/msg/Image'
INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
DIAGNOSTICS_TYPE = 'diagnostic_msgs/msg/DiagnosticArray'


class OutputRecorder:
    """Record the derained stereo topics and the node's diagnostics into an open bag writer."""

    def __init__(self, context, writer) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile

        self.node = Node('stereo_derain_demo_recorder', context=context)
        self._writer = writer
        self._lock = threading.Lock()
        self._sides_seen: dict[int, set[str]] = {}
        self.arrivals: dict[int, float] = {}
        self.diagnostics: list[dict[str, str]] = []
        topics = {**dict.fromkeys(OUTPUT_IMAGE_TOPICS, IMAGE_TYPE),
                  **dict.fromkeys(OUTPUT_INFO_TOPICS, INFO_TYPE),
                  DIAGNOSTICS_TOPIC: DIAGNOSTICS_TYPE}
        store = typestore()
        for topic, msgtype in topics.items():
            connection = writer.add_connection(topic, msgtype, typestore=store)
            self.node.create_subscription(
                message_class(msgtype), topic,
                lambda raw, t=topic, c=connection, m=msgtype: self._on_message(t, c, m, raw),
                QoSProfile(depth=20), raw=True)
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _on_message(self, topic: str, connection, msgtype: str, raw: bytes) -> None:
        received_at = time.monotonic()
        with self._lock:
            self._writer.write(connection, time.time_ns(), raw)
        message = typestore().deserialize_cdr(raw, msgtype)
        if msgtype == IMAGE_TYPE:
            stamp = header_stamp_ns(message)
            side = SIDES[OUTPUT_IMAGE_TOPICS.index(topic)]
            with self._lock:
                sides = self._sides_seen.setdefault(stamp, set())
                sides.add(side)
                if len(sides) == len(SIDES):
                    self.arrivals[stamp] = received_at
        elif msgtype == DIAGNOSTICS_TYPE:
            for status in message.status:
                if NODE_NAME in status.name:
                    with self._lock:
                        self.diagnostics.append({kv.key: kv.value for kv in status.values})

    def derained_count(self) -> int:
        with self._lock:
            return len(self.arrivals)

    def diagnostics_count(self) -> int:
        with self._lock:
            return len(self.diagnostics)

    def close(self) -> None:
        """Stop receiving; afterwards the writer may be closed."""
        self._executor.shutdown()
        self._thread.join(timeout=10)
        self.node.destroy_node()
