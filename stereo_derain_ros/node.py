"""`stereo_derain_node`: synchronized rainy stereo in, derained stereo and camera_info out.

The node sits between a rectifying driver and stereo_image_proc. Subscription callbacks only hand
messages to the stereo synchronizer; a timer (or, with `rate_hz` 0, a guard condition triggered
when a set completes) takes the newest set and runs the engine in its own callback group, so a
MultiThreadedExecutor keeps receiving while inference runs. Outputs carry the input headers
unchanged and the matching camera_info is republished as received, so stereo_image_proc's
exact-time sync downstream still pairs them.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass
import logging
import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data, QoSProfile
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from stereo_derain_ros.image_codec import (
    decode_compressed,
    encoding_for,
    fill_image,
    image_to_numpy,
    ImageCodecError,
)
from stereo_derain_ros.node_params import (
    ENGINE_PARAMETERS,
    NodeParameters,
    parameter_defaults,
    PARAMETER_DESCRIPTIONS,
    READ_ONLY_PARAMETERS,
    validate_parameters,
)
from stereo_derain_ros.node_stats import LatencyWindow, RateMeter, WarningThrottle
from stereo_derain_ros.stereo_sync import (
    AddResult,
    INPUT_NAMES,
    LEFT_IMAGE,
    RIGHT_IMAGE,
    StereoSynchronizer,
    SyncConfig,
)

NODE_NAME = 'stereo_derain_node'
INPUT_TOPICS = ('left/image_rect', 'left/camera_info', 'right/image_rect', 'right/camera_info')
DIAGNOSTICS_TOPIC = '/diagnostics'
NO_SET_WARNING_SECONDS = 5.0
ENGINE_LOGGER = 'stereo_derain_ros.engine'


class NodeStartupError(RuntimeError):
    """The node cannot start with the given parameters (bad value, missing or corrupt weights)."""


class BadInput(ValueError):  # noqa: N818 - the name reads as the condition
    """A stereo set that must not be published; `kind` keys the warning throttle."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class DecodedView:
    """One image of a set as numpy, with what is needed to publish it again."""

    array: np.ndarray
    channel_order: str
    encoding: str


def stamp_ns(message: Any) -> int:
    stamp = message.header.stamp
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def build_engine(params: NodeParameters):
    """Build the deraining engine; raise with a clear message on missing or corrupt weights."""
    from stereo_derain_ros.engine import DerainEngine, EngineConfig

    return DerainEngine(EngineConfig.from_options(
        model=params.model,
        weights=params.weights,
        device=params.device,
        precision=params.precision,
        backend=params.backend,
        max_disparity=params.max_disparity,
        tile=params.tile_size,
        untrained=params.allow_untrained_weights,
    ))


class EngineLogForwarder(logging.Handler):
    """Route the engine's Python log records (e.g. its out-of-memory fall-backs) to ROS logging.

    The engine logs through the standard `logging` module because it knows nothing of ROS; on a
    robot only the ROS log is watched, and an error there must also show in diagnostics.
    """

    def __init__(self, ros_logger) -> None:
        super().__init__(level=logging.INFO)
        self._ros_logger = ros_logger
        self.last_error = ''

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.last_error = message
            self._ros_logger.error(message)
        elif record.levelno >= logging.WARNING:
            self._ros_logger.warning(message)
        else:
            self._ros_logger.info(message)


class StereoDerainNode(Node):
    """Derain synchronized stereo images; see docs/node.md for topics and parameters."""

    def __init__(self, engine_factory: Callable[[NodeParameters], Any] = build_engine,
                 **node_kwargs) -> None:
        super().__init__(node_kwargs.pop('node_name', NODE_NAME), **node_kwargs)
        self._engine_factory = engine_factory
        try:
            for name, default in parameter_defaults().items():
                self.declare_parameter(name, default, ParameterDescriptor(
                    description=PARAMETER_DESCRIPTIONS[name],
                    read_only=name in READ_ONLY_PARAMETERS))
        except InvalidParameterTypeException as error:
            raise NodeStartupError(f'invalid parameter type: {error}') from error
        try:
            self._params = validate_parameters(
                {name: self.get_parameter(name).value for name in parameter_defaults()})
        except (ValueError, TypeError) as error:
            raise NodeStartupError(f'invalid parameters: {error}') from error
        self._engine = None
        if self._params.enable:
            self._engine = self._load_engine(self._params)

        self._throttle = WarningThrottle()
        self._input_sets = RateMeter()
        self._output_sets = RateMeter()
        self._inference = LatencyWindow()
        self._end_to_end = LatencyWindow()
        self._published = 0
        self._rejected = 0
        self._engine_log = EngineLogForwarder(self.get_logger())
        logging.getLogger(ENGINE_LOGGER).addHandler(self._engine_log)
        self._last_published_at = time.monotonic()
        self._started_at = time.monotonic()

        self._sync = StereoSynchronizer(SyncConfig(
            queue_size=self._params.queue_size,
            approximate_sync=self._params.approximate_sync,
            approximate_sync_tolerance_seconds=self._params.approximate_sync_tolerance_seconds,
            camera_info_timeout_seconds=self._params.camera_info_timeout_seconds))
        self._create_topics()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.get_logger().info(f'{NODE_NAME} ready: {self._mode_description()}; output namespace '
                               f'{self._params.output_namespace!r}')

    # -- set-up ---------------------------------------------------------------------------------

    def _create_topics(self) -> None:
        receive_group = ReentrantCallbackGroup()
        process_group = MutuallyExclusiveCallbackGroup()
        diagnostics_group = MutuallyExclusiveCallbackGroup()
        overrides = QoSOverridingOptions.with_default_policies()
        compressed = self._params.input_type == 'compressed'
        for index, topic in enumerate(INPUT_TOPICS):
            is_image = index in (LEFT_IMAGE, RIGHT_IMAGE)
            message_type = (CompressedImage if compressed else Image) if is_image else CameraInfo
            name = topic + '/compressed' if is_image and compressed else topic
            self.create_subscription(
                message_type, name, lambda message, i=index: self._on_message(i, message),
                qos_profile_sensor_data, callback_group=receive_group,
                qos_overriding_options=overrides)

        out = self._params.output_namespace.rstrip('/')
        leaf = self._params.output_image_leaf
        reliable = QoSProfile(depth=5)

        def publisher(message_type, topic):
            return self.create_publisher(message_type, f'{out}/{topic}', reliable,
                                         qos_overriding_options=overrides)

        self._image_pubs = (publisher(Image, f'left/{leaf}'), publisher(Image, f'right/{leaf}'))
        self._info_pubs = (publisher(CameraInfo, 'left/camera_info'),
                           publisher(CameraInfo, 'right/camera_info'))
        self._color_pubs = None
        if leaf == 'image_rect':
            self._color_pubs = (publisher(Image, 'left/image_rect_color'),
                                publisher(Image, 'right/image_rect_color'))
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)

        self._trigger = None
        if self._params.rate_hz > 0.0:
            self.create_timer(1.0 / self._params.rate_hz, self._process_newest,
                              callback_group=process_group)
        else:
            self._trigger = self.create_guard_condition(
                self._process_newest, callback_group=process_group)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=diagnostics_group,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _load_engine(self, params: NodeParameters):
        try:
            return self._engine_factory(params)
        except Exception as error:  # noqa: BLE001 - any failure here means "cannot start"
            raise NodeStartupError(
                f'cannot load model {params.model!r} with weights '
                f'{params.weights or "(packaged default)"!r} on device {params.device!r}: '
                f'{error}') from error

    def _mode_description(self) -> str:
        if not self._params.enable:
            return 'pass-through'
        device = getattr(self._engine, 'device', self._params.device)
        return f'deraining with model {self._params.model} on {device}'

    # -- parameters -----------------------------------------------------------------------------

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in parameter_defaults()}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            candidate = validate_parameters({**asdict(self._params), **changes})
        except (ValueError, TypeError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        engine = self._engine
        needs_engine = candidate.enable and (
            engine is None or any(name in ENGINE_PARAMETERS for name in changes))
        if needs_engine:
            try:
                engine = self._load_engine(candidate)
            except NodeStartupError as error:
                return SetParametersResult(successful=False, reason=str(error))
        self._engine = engine
        self._params = candidate
        self.get_logger().info(
            f'parameters changed ({", ".join(sorted(changes))}): {self._mode_description()}')
        return SetParametersResult(successful=True)

    # -- reception ------------------------------------------------------------------------------

    def _on_message(self, index: int, message: Any) -> None:
        stamp = stamp_ns(message)
        result = self._sync.add(index, stamp, message)
        if result is AddResult.RESET:
            self._warn('stamps_backwards',
                       f'{INPUT_NAMES[index]} stamp went backwards (to {stamp / 1e9:.3f} s); '
                       'cleared the synchronizer queues (bag loop or restarted driver?)')
        elif result is AddResult.COMPLETED:
            self._input_sets.tick()
            if self._trigger is not None:
                self._trigger.trigger()

    # -- processing -----------------------------------------------------------------------------

    def _process_newest(self) -> None:
        stereo_set = self._sync.take()
        if stereo_set is None:
            return
        if stereo_set.left_info is None or stereo_set.right_info is None:
            self._warn('no_camera_info',
                       f'no camera_info for {self._params.camera_info_timeout_seconds:.1f} s: '
                       'publishing images without it (stereo_image_proc needs it)')
        params = self._params
        try:
            left, right = self._decode_pair(stereo_set.left_image, stereo_set.right_image)
            if params.enable:
                outputs = self._derain(left, right)
            elif params.input_type == 'raw':
                outputs = None
            else:
                outputs = (left.array, right.array)
        except BadInput as error:
            self._rejected += 1
            self._warn(error.kind, f'dropped a stereo set: {error}')
            return
        except Exception as error:  # noqa: BLE001 - the node keeps running on engine faults
            self._rejected += 1
            self.get_logger().error(f'deraining failed, set dropped: {error}')
            return

        if outputs is None:
            images = (stereo_set.left_image, stereo_set.right_image)
        else:
            images = tuple(self._to_message(source.header, array, view.encoding)
                           for source, array, view in zip(
                               (stereo_set.left_image, stereo_set.right_image), outputs,
                               (left, right)))
        self._publish(images, (stereo_set.left_info, stereo_set.right_info),
                      color=left.channel_order != 'mono')
        self._published += 1
        self._output_sets.tick()
        self._last_published_at = time.monotonic()
        self._end_to_end.add(time.monotonic() - stereo_set.completed_at)

    def _decode_pair(self, left_message, right_message) -> tuple[DecodedView, DecodedView]:
        views = []
        for side, message in (('left', left_message), ('right', right_message)):
            try:
                if self._params.input_type == 'compressed':
                    array, order = decode_compressed(message.format, message.data)
                    encoding = encoding_for(order, array.dtype)
                else:
                    array, order = image_to_numpy(message)
                    encoding = message.encoding
            except ImageCodecError as error:
                kind = type(error).__name__
                raise BadInput(kind, f'{side} image: {error}') from error
            views.append(DecodedView(array, order, encoding))
        left, right = views
        if left.array.shape != right.array.shape or left.encoding != right.encoding:
            raise BadInput('size_mismatch', describe_mismatch(left, right))
        return left, right

    def _derain(self, left: DecodedView, right: DecodedView) -> tuple[np.ndarray, np.ndarray]:
        started = time.perf_counter()
        outputs = self._engine.derain(left.array, right.array, channel_order=left.channel_order)
        self._inference.add(time.perf_counter() - started)
        return outputs

    def _to_message(self, header, array: np.ndarray, encoding: str) -> Image:
        message = Image()
        message.header = header
        fill_image(message, array, encoding)
        return message

    def _publish(self, images, infos, color: bool) -> None:
        color_pubs = self._color_pubs if color else None
        if color_pubs is not None and not any(p.get_subscription_count() for p in color_pubs):
            color_pubs = None
        for side in (0, 1):
            self._image_pubs[side].publish(images[side])
            if color_pubs is not None:
                color_pubs[side].publish(images[side])
        for side in (0, 1):
            if infos[side] is not None:
                self._info_pubs[side].publish(infos[side])

    # -- diagnostics and warnings ---------------------------------------------------------------

    def _warn(self, kind: str, message: str) -> None:
        if self._throttle.allow(kind):
            self.get_logger().warning(message)

    def _publish_diagnostics(self) -> None:
        counters = self._sync.counters()
        level = DiagnosticStatus.OK
        summary = 'deraining' if self._params.enable else 'pass-through'
        now = time.monotonic()
        if now - max(self._last_published_at, self._started_at) > NO_SET_WARNING_SECONDS:
            missing = self._sync.missing_inputs()
            if missing:
                summary = f'waiting for {", ".join(missing)}'
            elif sum(counters.received):
                summary = ('no synchronized sets: stamps do not match '
                           '(try approximate_sync) or one side stopped')
            else:
                summary = 'no input'
            level = DiagnosticStatus.WARN
            if sum(counters.received):
                self._warn('no_sets', f'no stereo set published for {NO_SET_WARNING_SECONDS:.0f}'
                           f' s: {summary}; received {self._received_summary(counters)}')
        if counters.info_timed_out:
            level, summary = DiagnosticStatus.WARN, 'publishing without camera_info'
        if self._engine_log.last_error:
            level, summary = DiagnosticStatus.ERROR, self._engine_log.last_error

        values = {
            'enabled': str(self._params.enable),
            'input_rate_hz': f'{self._input_sets.rate():.2f}',
            'output_rate_hz': f'{self._output_sets.rate():.2f}',
            'published_sets': str(self._published),
            'dropped_sets': str(counters.dropped),
            'rejected_sets': str(self._rejected),
            'sync_resets': str(counters.resets),
            'received': self._received_summary(counters),
            'device': str(getattr(self._engine, 'device', self._params.device)),
            'model': self._params.model,
            'weights': self._weights_label(),
            'precision': str(getattr(self._engine, 'precision', self._params.precision)),
        }
        for key, window in (('inference_latency', self._inference),
                            ('end_to_end_latency', self._end_to_end)):
            summary_ms = window.summary_ms()
            values[f'{key}_mean_ms'] = f'{summary_ms[0]:.2f}' if summary_ms else 'n/a'
            values[f'{key}_p95_ms'] = f'{summary_ms[1]:.2f}' if summary_ms else 'n/a'

        status = DiagnosticStatus(level=level, name=f'{self.get_fully_qualified_name()}: derain',
                                  message=summary, hardware_id=values['device'])
        status.values = [KeyValue(key=key, value=value) for key, value in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)

    def destroy_node(self) -> None:
        logging.getLogger(ENGINE_LOGGER).removeHandler(self._engine_log)
        super().destroy_node()

    def _weights_label(self) -> str:
        if self._engine is None:
            return 'none loaded (pass-through)'
        return self._engine.weights_source

    @staticmethod
    def _received_summary(counters) -> str:
        return ', '.join(f'{name} {count}' for name, count in zip(INPUT_NAMES, counters.received))


def describe_mismatch(left: DecodedView, right: DecodedView) -> str:
    def describe(view: DecodedView) -> str:
        height, width = view.array.shape[:2]
        return f'{width}x{height} {view.encoding}'

    return (f'left image is {describe(left)} but right image is {describe(right)}; '
            'expected the same size and encoding on both sides')


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down; exit non-zero when it cannot start."""
    rclpy.init(args=args)
    try:
        node = StereoDerainNode()
    except NodeStartupError as error:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(error))
        rclpy.try_shutdown()
        return 1
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
