"""A rainy stereo bag from the synthesizer: the demo's input and a fixture for tests.

One drop population is sampled per bag and advanced by its velocities frame after frame, so the
rain moves between frames as it would in front of a camera rather than being redrawn at random.
The clean scene is written on its own topics so that metrics can compare against it later.
"""

from collections.abc import Callable
from dataclasses import dataclass
import json
from pathlib import Path

import numpy as np

from stereo_derain_ros.bagio import BagError
from stereo_derain_ros.bagio.atomic import atomic_bag_directory
from stereo_derain_ros.bagio.clip import RainClip
from stereo_derain_ros.bagio.reading import typestore
from stereo_derain_ros.image_codec import encode_image
from stereo_derain_ros.stamps import split_ns

SCENES = ('motorcycle',)
RAINY_NAMESPACE = '/stereo'
CLEAN_NAMESPACE = '/stereo_clean'
IMAGE_LEAF = 'image_rect'
FRAME_IDS = {'left': 'stereo_left_optical_frame', 'right': 'stereo_right_optical_frame'}
START_TIME_NS = 1_700_000_000_000_000_000


@dataclass
class RainBagConfig(RainClip):
    """What `make_rain_bag` renders (the clip) and where; see `stereo-derain make-bag --help`."""

    output: Path
    scene: str = 'motorcycle'
    clock: bool = False
    storage: str = 'mcap'
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        problem = self.clip_problem()
        if problem:
            raise BagError(problem)
        if self.scene not in SCENES:
            raise BagError(f'unknown scene {self.scene!r}; expected one of {", ".join(SCENES)}')
        if self.storage not in ('mcap', 'sqlite3'):
            raise BagError(f'unknown storage {self.storage!r}; expected mcap or sqlite3')


@dataclass
class StereoCalibration:
    """A rectified pair's intrinsics: right principal point shifted by doffs (Middlebury)."""

    width: int
    height: int
    focal_px: float
    baseline_m: float
    cx: float
    cy: float
    doffs_px: float = 0.0

    def projection(self, side: str) -> np.ndarray:
        """Return the 3x4 P of one camera; the right one carries Tx = -f * baseline."""
        cx = self.cx + (self.doffs_px if side == 'right' else 0.0)
        tx = -self.focal_px * self.baseline_m if side == 'right' else 0.0
        return np.array([[self.focal_px, 0.0, cx, tx],
                         [0.0, self.focal_px, self.cy, 0.0],
                         [0.0, 0.0, 1.0, 0.0]])


def scene_for(config: RainBagConfig):
    """Return the clean scene scaled to cover the requested size and centre-cropped to it."""
    from stereo_derain_ros.rain.scene import motorcycle_scene

    scene = motorcycle_scene()
    width, height = scene.size
    scale = max(config.width / width, config.height / height)
    if scale != 1.0:
        scene = scene.resized(scale)
    width, height = scene.size
    return scene.crop((width - config.width) // 2, (height - config.height) // 2,
                      config.width, config.height)


def calibration_for(scene) -> StereoCalibration:
    """Return the calibration the renderer used for `scene` (principal point at the centre)."""
    from stereo_derain_ros.rain.render import scene_camera

    camera = scene_camera(scene)
    return StereoCalibration(width=camera.width, height=camera.height, focal_px=camera.focal_px,
                             baseline_m=camera.baseline_m, cx=camera.cx, cy=camera.cy,
                             doffs_px=camera.doffs_px)


def make_rain_bag(config: RainBagConfig,
                  progress: Callable[[int, int], None] | None = None) -> StereoCalibration:
    """Render `config.frame_count` rainy stereo frames into a new bag; return its calibration.

    Topics: `/stereo/{left,right}/image_rect` (rainy, rgb8) and `.../camera_info`, the same for
    the clean scene under `/stereo_clean`, and `/clock` when asked. The four messages of one
    frame in a namespace share one header stamp, which is also their receive time.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    from stereo_derain_ros.rain.params import rain_params
    from stereo_derain_ros.rain.sequence import RainSequence

    try:
        params = rain_params(config.preset)
    except ValueError as error:
        raise BagError(str(error)) from None
    scene = scene_for(config)
    calibration = calibration_for(scene)
    animation = RainSequence(scene, params, config.seed)
    store = typestore()
    plugin = StoragePlugin.MCAP if config.storage == 'mcap' else StoragePlugin.SQLITE3
    with atomic_bag_directory(config.output, config.overwrite) as temporary:
        with Writer(temporary, version=9, storage_plugin=plugin) as writer:
            writer.set_custom_data('stereo_derain_ros.make_bag', json.dumps({
                'scene': config.scene, 'preset': config.preset, 'seed': config.seed,
                'rate_hz': config.rate_hz, 'rain': params.to_dict()}))
            connections = {}
            for namespace in (RAINY_NAMESPACE, CLEAN_NAMESPACE):
                for side in ('left', 'right'):
                    for leaf, msgtype in ((IMAGE_LEAF, 'sensor_msgs/msg/Image'),
                                          ('camera_info', 'sensor_msgs/msg/CameraInfo')):
                        topic = f'{namespace}/{side}/{leaf}'
                        connections[topic] = writer.add_connection(
                            topic, msgtype, typestore=store, offered_qos_profiles=[_RELIABLE])
            if config.clock:
                connections['/clock'] = writer.add_connection(
                    '/clock', 'rosgraph_msgs/msg/Clock', typestore=store)
            infos = {side: _camera_info(calibration, side) for side in ('left', 'right')}
            for index in range(config.frame_count):
                stamp = START_TIME_NS + round(index * 1e9 / config.rate_hz)
                rainy = animation.frame(index / config.rate_hz)
                views = {RAINY_NAMESPACE: {'left': rainy.rainy_left, 'right': rainy.rainy_right},
                         CLEAN_NAMESPACE: {'left': scene.left, 'right': scene.right}}
                if config.clock:
                    writer.write(connections['/clock'], stamp, store.serialize_cdr(
                        store.types['rosgraph_msgs/msg/Clock'](clock=_time(stamp)),
                        'rosgraph_msgs/msg/Clock'))
                for namespace, images in views.items():
                    for side, pixels in images.items():
                        header = _header(stamp, FRAME_IDS[side])
                        writer.write(connections[f'{namespace}/{side}/{IMAGE_LEAF}'], stamp,
                                     _image_cdr(header, pixels))
                        infos[side].header = header
                        writer.write(connections[f'{namespace}/{side}/camera_info'], stamp,
                                     store.serialize_cdr(infos[side],
                                                         'sensor_msgs/msg/CameraInfo'))
                if progress is not None:
                    progress(index + 1, config.frame_count)
    return calibration


def _make_reliable_qos():
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    never = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.VOLATILE,
               never, never, QosLiveliness.AUTOMATIC, never, False)


_RELIABLE = _make_reliable_qos()


def _time(stamp_ns: int):
    sec, nanosec = split_ns(stamp_ns)
    return typestore().types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec)


def _header(stamp_ns: int, frame_id: str):
    return typestore().types['std_msgs/msg/Header'](stamp=_time(stamp_ns), frame_id=frame_id)


def _image_cdr(header, pixels: np.ndarray) -> memoryview:
    store = typestore()
    step, data = encode_image(pixels, 'rgb8')
    message = store.types['sensor_msgs/msg/Image'](
        header=header, height=pixels.shape[0], width=pixels.shape[1], encoding='rgb8',
        is_bigendian=0, step=step, data=np.frombuffer(data, dtype=np.uint8))
    return store.serialize_cdr(message, 'sensor_msgs/msg/Image')


def _camera_info(calibration: StereoCalibration, side: str):
    types = typestore().types
    projection = calibration.projection(side)
    return types['sensor_msgs/msg/CameraInfo'](
        header=_header(START_TIME_NS, FRAME_IDS[side]), height=calibration.height,
        width=calibration.width, distortion_model='plumb_bob', d=np.zeros(5),
        k=projection[:, :3].reshape(-1).copy(), r=np.eye(3).reshape(-1),
        p=projection.reshape(-1).copy(), binning_x=0, binning_y=0,
        roi=types['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
