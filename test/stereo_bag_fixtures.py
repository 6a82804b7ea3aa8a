"""Write small real stereo bags with rosbags for the bag tool tests."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
T = TYPESTORE.types

BEST_EFFORT = Qos(QosHistory.KEEP_LAST, 5, QosReliability.BEST_EFFORT, QosDurability.VOLATILE,
                  QosTime(0, 0), QosTime(0, 0), QosLiveliness.AUTOMATIC, QosTime(0, 0), False)

HEIGHT, WIDTH = 16, 24


@dataclass
class BagSpec:
    """What `write_stereo_bag` puts in a bag."""

    frames: int = 5
    storage: str = 'mcap'
    compressed_format: str | None = None
    drop_right: tuple[int, ...] = ()
    corrupt_left: tuple[int, ...] = ()
    narrow_right: tuple[int, ...] = ()
    namespace: str = '/stereo'
    # 'rgb8', or 'bgra8' (the colours of frame_pixels reversed, behind a translucent alpha of 7).
    encoding: str = 'rgb8'


def frame_pixels(index: int, side: int) -> np.ndarray:
    """Return the deterministic rgb8 test image of frame `index` for side 0 (left) / 1."""
    rng = np.random.default_rng(index * 2 + side)
    return rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def stamp_ns(index: int) -> int:
    return 1_700_000_000_000_000_000 + index * 100_000_000


def header(index: int, frame_id: str):
    ns = stamp_ns(index)
    return T['std_msgs/msg/Header'](
        stamp=T['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9),
        frame_id=frame_id)


def camera_info(index: int, frame_id: str, tx: float):
    return T['sensor_msgs/msg/CameraInfo'](
        header=header(index, frame_id), height=HEIGHT, width=WIDTH, distortion_model='plumb_bob',
        d=np.zeros(5), k=np.array([20.0, 0, 12, 0, 20.0, 8, 0, 0, 1]), r=np.eye(3).reshape(-1),
        p=np.array([20.0, 0, 12, tx, 0, 20.0, 8, 0, 0, 0, 1, 0]), binning_x=0, binning_y=0,
        roi=T['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def image_message(index: int, side: int, frame_id: str, compressed_format: str | None,
                  encoding: str = 'rgb8'):
    import cv2

    pixels = frame_pixels(index, side)
    if compressed_format is not None:
        ok, encoded = cv2.imencode('.png', pixels[:, :, ::-1])
        assert ok
        return T['sensor_msgs/msg/CompressedImage'](
            header=header(index, frame_id), format=compressed_format,
            data=np.frombuffer(encoded.tobytes(), np.uint8))
    if encoding == 'bgra8':
        pixels = np.dstack([pixels[:, :, ::-1], np.full((HEIGHT, WIDTH), 7, np.uint8)])
    return T['sensor_msgs/msg/Image'](
        header=header(index, frame_id), height=HEIGHT, width=WIDTH, encoding=encoding,
        is_bigendian=0, step=WIDTH * pixels.shape[2], data=pixels.reshape(-1))


def image_topic(spec: BagSpec, side: str) -> str:
    suffix = '/compressed' if spec.compressed_format else ''
    return f'{spec.namespace}/{side}/image_rect{suffix}'


def write_stereo_bag(path: Path, spec: BagSpec) -> Path:
    """Write a bag with stereo images, camera_info, a string topic and /tf-like chatter."""
    plugin = StoragePlugin.MCAP if spec.storage == 'mcap' else StoragePlugin.SQLITE3
    image_type = ('sensor_msgs/msg/CompressedImage' if spec.compressed_format
                  else 'sensor_msgs/msg/Image')
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections = {}
        for side in ('left', 'right'):
            connections[f'{side}_image'] = writer.add_connection(
                image_topic(spec, side), image_type, typestore=TYPESTORE,
                offered_qos_profiles=[BEST_EFFORT])
            connections[f'{side}_info'] = writer.add_connection(
                f'{spec.namespace}/{side}/camera_info', 'sensor_msgs/msg/CameraInfo',
                typestore=TYPESTORE, offered_qos_profiles=[BEST_EFFORT])
        chatter = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=TYPESTORE)
        for index in range(spec.frames):
            receive = stamp_ns(index) + 5_000_000
            for side_index, side in enumerate(('left', 'right')):
                if side == 'right' and index in spec.drop_right:
                    continue
                frame_id = f'stereo_{side}_optical_frame'
                image = image_message(index, side_index, frame_id, spec.compressed_format,
                                      spec.encoding)
                if side == 'right' and index in spec.narrow_right:
                    image.data = frame_pixels(index, 1)[:, :WIDTH // 2].reshape(-1)
                    image.width, image.step = WIDTH // 2, WIDTH // 2 * 3
                raw = bytes(TYPESTORE.serialize_cdr(image, image_type))
                if side == 'left' and index in spec.corrupt_left:
                    raw = raw[:40]
                # Right arrives first on odd frames: pairing must not rely on order.
                offset = (1 - side_index if index % 2 else side_index) * 1000
                writer.write(connections[f'{side}_image'], receive + offset, raw)
                info = camera_info(index, frame_id, 0.0 if side == 'left' else -2.0)
                writer.write(connections[f'{side}_info'], receive + offset + 1,
                             TYPESTORE.serialize_cdr(info, 'sensor_msgs/msg/CameraInfo'))
            text = T['std_msgs/msg/String'](data=f'frame {index}')
            writer.write(chatter, receive + 2000,
                         TYPESTORE.serialize_cdr(text, 'std_msgs/msg/String'))
    return path


def read_all(path: Path) -> dict[str, list[tuple[int, bytes]]]:
    """Return every message of a bag as {topic: [(receive timestamp, raw bytes), ...]}."""
    messages: dict[str, list[tuple[int, bytes]]] = {}
    with Reader(path) as reader:
        for connection in reader.connections:
            messages.setdefault(connection.topic, [])
        for connection, timestamp, raw in reader.messages():
            messages[connection.topic].append((timestamp, bytes(raw)))
    return messages


def tree_digest(path: Path) -> dict[str, bytes]:
    """Return every file of a directory with its content, to prove it was not modified."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob('*'))
            if p.is_file()}
