"""A test rig around the node: a camera-side publisher and a consumer-side subscriber over DDS."""

import array
import threading
import time

import numpy as np

from stereo_derain_ros.image_codec import fill_image

HEIGHT, WIDTH = 48, 64
OUT = '/stereo_derained'


def make_image(array_: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
    from sensor_msgs.msg import Image

    message = Image()
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    message.header.frame_id = frame_id
    fill_image(message, array_, encoding)
    return message


def make_info(stamp_ns: int, frame_id: str, baseline_px: float = 0.0):
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo(height=HEIGHT, width=WIDTH, distortion_model='plumb_bob')
    info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    info.header.frame_id = frame_id
    info.k = [50.0, 0.0, WIDTH / 2, 0.0, 50.0, HEIGHT / 2, 0.0, 0.0, 1.0]
    info.p = [50.0, 0.0, WIDTH / 2, -baseline_px, 0.0, 50.0, HEIGHT / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def rainy_pair(encoding: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return a textured left/right pair with bright streaks, in `encoding`'s dtype and layout."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.6, (HEIGHT, WIDTH + 4, 3))
    left, right = base[:, 4:].copy(), base[:, :-4].copy()
    for view in (left, right):
        for column in rng.integers(0, WIDTH, 6):
            view[5:40, column] = 0.95
    scale = 65535 if encoding.endswith('16') else 255
    dtype = np.uint16 if encoding.endswith('16') else np.uint8
    pair = []
    for view in (left, right):
        if encoding.startswith('mono'):
            view = view.mean(axis=2)
        elif encoding.startswith('bgr'):
            view = view[:, :, ::-1]
        pair.append(np.round(view * scale).astype(dtype))
    return pair[0], pair[1]


class StereoRig:
    """Publishes stereo sets to the node's inputs and records everything it publishes."""

    def __init__(self, context, input_namespace: str = '', output_namespace: str = OUT) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        self.node = Node('stereo_rig', context=context)
        self.output_namespace = output_namespace
        prefix = input_namespace.rstrip('/')
        self.publishers = {
            'left_image': self.node.create_publisher(Image, f'{prefix}/left/image_rect', 10),
            'left_info': self.node.create_publisher(CameraInfo, f'{prefix}/left/camera_info', 10),
            'right_image': self.node.create_publisher(Image, f'{prefix}/right/image_rect', 10),
            'right_info': self.node.create_publisher(
                CameraInfo, f'{prefix}/right/camera_info', 10),
            'left_compressed': self.node.create_publisher(
                CompressedImage, f'{prefix}/left/image_rect/compressed', 10),
            'right_compressed': self.node.create_publisher(
                CompressedImage, f'{prefix}/right/image_rect/compressed', 10),
        }
        self.lock = threading.Lock()
        self.received: dict[str, list] = {}
        topics = {'left_image': (Image, 'left/image_rect'),
                  'right_image': (Image, 'right/image_rect'),
                  'left_color': (Image, 'left/image_rect_color'),
                  'right_color': (Image, 'right/image_rect_color'),
                  'left_info': (CameraInfo, 'left/camera_info'),
                  'right_info': (CameraInfo, 'right/camera_info')}
        for key, (message_type, leaf) in topics.items():
            self.received[key] = []
            self.node.create_subscription(
                message_type, f'{output_namespace}/{leaf}',
                lambda message, k=key: self._store(k, message), qos_profile_sensor_data)
        self.received['diagnostics'] = []
        self.node.create_subscription(DiagnosticArray, '/diagnostics',
                                      lambda m: self._store('diagnostics', m), 10)

    def _store(self, key: str, message) -> None:
        with self.lock:
            self.received[key].append(message)

    def count(self, key: str) -> int:
        with self.lock:
            return len(self.received[key])

    def messages(self, key: str) -> list:
        with self.lock:
            return list(self.received[key])

    def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def wait_connected(self, compressed: bool = False, timeout: float = 20.0) -> None:
        image_keys = (('left_compressed', 'right_compressed') if compressed
                      else ('left_image', 'right_image'))
        keys = (*image_keys, 'left_info', 'right_info')
        assert self.wait_for(
            lambda: all(self.publishers[k].get_subscription_count() > 0 for k in keys), timeout), \
            'the node did not subscribe to the inputs in time'
        assert self.wait_for(
            lambda: self.node.count_publishers(f'{self.output_namespace}/right/camera_info') > 0,
            timeout), 'the node did not advertise its outputs in time'
        # discovery is asymmetric for a moment: give the node's side time to match us too
        time.sleep(0.5)

    def publish_set(self, left: np.ndarray, right: np.ndarray, encoding: str, stamp_ns: int,
                    right_stamp_ns: int | None = None, with_info: bool = True,
                    right_encoding: str | None = None) -> tuple:
        right_stamp_ns = stamp_ns if right_stamp_ns is None else right_stamp_ns
        messages = (make_image(left, encoding, stamp_ns, 'left_optical'),
                    make_info(stamp_ns, 'left_optical'),
                    make_image(right, right_encoding or encoding, right_stamp_ns,
                               'right_optical'),
                    make_info(right_stamp_ns, 'right_optical', baseline_px=6.0))
        self.publish_messages(*messages, with_info=with_info)
        return messages

    def publish_messages(self, left_image, left_info, right_image, right_info,
                         with_info: bool = True) -> None:
        self.publishers['left_image'].publish(left_image)
        if with_info:
            self.publishers['left_info'].publish(left_info)
        self.publishers['right_image'].publish(right_image)
        if with_info:
            self.publishers['right_info'].publish(right_info)

    def latest_diagnostics(self) -> dict[str, str]:
        arrays = self.messages('diagnostics')
        if not arrays:
            return {}
        status = arrays[-1].status[0]
        values = {kv.key: kv.value for kv in status.values}
        values['level'] = int.from_bytes(status.level, 'little') if isinstance(
            status.level, bytes) else int(status.level)
        values['message'] = status.message
        return values


def raw_image(height: int, width: int, encoding: str, step: int, data: bytes, stamp_ns: int,
              frame_id: str):
    """Build an Image with arbitrary (possibly inconsistent) fields, for bad-input tests."""
    from sensor_msgs.msg import Image

    message = Image(height=height, width=width, encoding=encoding, step=step)
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    message.header.frame_id = frame_id
    message.data = array.array('B', data)
    return message
