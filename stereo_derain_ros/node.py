"""`stereo_derain_node`: synchronized rainy stereo in, derained stereo and camera_info out.

The node sits between a rectifying driver and stereo_image_proc. Subscription callbacks hand
messages to the stereo synchronizer; the node's own processing thread derains the newest complete
set (one at a time, newest wins) as soon as it is complete, or at each tick of a timer when
`rate_hz` is set. Callbacks only hand messages over and never wait for inference, so the node
keeps receiving while it runs. `main` spins them on a SingleThreadedExecutor: with inference on
its own thread one executor thread is enough, and rclpy's MultiThreadedExecutor measured 4-5 ms
more per 1280x720 set in reception (docs/node.md). The callback groups keep the node correct
under a multi-threaded executor as well.
Outputs carry the input headers unchanged and the matching camera_info is republished as
received, so stereo_image_proc's exact-time sync downstream still pairs them.
"""

from collections.abc import Callable
from dataclasses import dataclass
import logging
import os
import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation
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
    changed,
    engine_config,
    NodeParameters,
    PARAMETER_TABLE,
    PARAMETERS,
    ParameterSpec,
    sync_config,
    validate_parameters,
)
from stereo_derain_ros.node_stats import (
    diagnose,
    Health,
    LatencyWindow,
    NodeActivity,
    PhaseTimer,
    PhaseWindows,
    RateMeter,
    WarningThrottle,
)
from stereo_derain_ros.stereo_sync import (
    AddResult,
    INFO_OF_IMAGE,
    INPUT_NAMES,
    StereoSet,
    StereoSynchronizer,
)
from stereo_derain_ros.transport import apply_large_image_profile

NODE_NAME = 'stereo_derain_node'
INPUT_TOPICS = ('left/image_rect', 'left/camera_info', 'right/image_rect', 'right/camera_info')
DIAGNOSTICS_TOPIC = '/diagnostics'
ENGINE_LOGGER = 'stereo_derain_ros.engine'
# How often a stereo pair waiting for its camera_info is checked against its timeout.
INFO_WAIT_POLL_S = 0.05
# On SIGINT/SIGTERM, how long an inference in flight may finish before the process just exits.
SHUTDOWN_WAIT_S = 2.0
LEVELS = {'ok': DiagnosticStatus.OK, 'warn': DiagnosticStatus.WARN,
          'error': DiagnosticStatus.ERROR}


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


@dataclass(frozen=True)
class LastSet:
    """The newest published set: its stamp, its inference and when it was complete and out.

    The times are CLOCK_MONOTONIC seconds (`time.monotonic`), which other processes on the host
    read too: `bench node` takes from them how long the inputs took to arrive and the outputs
    to be received.
    """

    stamp_ns: int = 0
    inference_s: float = 0.0
    completed_at: float = 0.0
    published_at: float = 0.0

    def values(self) -> dict[str, str]:
        return {'last_set_stamp_ns': str(self.stamp_ns),
                'last_set_inference_ms': f'{self.inference_s * 1000.0:.3f}',
                'last_set_completed_s': f'{self.completed_at:.6f}',
                'last_set_published_s': f'{self.published_at:.6f}'}


def stamp_ns(message: Any) -> int:
    stamp = message.header.stamp
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def build_engine(params: NodeParameters):
    """Build the deraining engine; raise with a clear message on missing or corrupt weights."""
    from stereo_derain_ros.engine import DerainEngine

    return DerainEngine(engine_config(params))


def parameter_descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """Describe one table row to ROS: description, choices, range and read-only flag."""
    descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices:
        descriptor.additional_constraints = f'one of: {", ".join(spec.choices)}'
    if spec.minimum is not None and spec.type is int:
        descriptor.integer_range = [IntegerRange(
            from_value=int(spec.minimum), to_value=int(spec.maximum), step=1)]
    elif spec.minimum is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.minimum), to_value=float(spec.maximum), step=0.0)]
    return descriptor


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
        self._params = self._declare_parameters()
        # Attached before the engine is built, so that what it says while loading (a precision
        # this device cannot run, the device it fell back to) reaches the ROS log too.
        self._engine_log = EngineLogForwarder(self.get_logger())
        engine_logger = logging.getLogger(ENGINE_LOGGER)
        engine_logger.addHandler(self._engine_log)
        if engine_logger.level == logging.NOTSET:
            engine_logger.setLevel(logging.INFO)
        try:
            self._engine = self._load_engine(self._params) if self._params.enable else None
        except Exception:
            engine_logger.removeHandler(self._engine_log)
            raise

        self._throttle = WarningThrottle()
        self._input_sets = RateMeter()
        self._output_sets = RateMeter()
        self._inference = LatencyWindow()
        self._end_to_end = LatencyWindow()
        self._overhead = LatencyWindow()
        self._phases = PhaseWindows()
        self._published = 0
        self._last_set = LastSet()
        self._rejected = 0
        self._last_rejection = ''
        self._unstamped = False
        self._stopping = False
        self._processing = threading.Lock()
        self._processing_since: float | None = None
        self._wake = threading.Condition()
        self._timer_due = False
        self._started_at = time.monotonic()
        self._last_published_at = self._last_received_at = self._started_at

        self._sync = StereoSynchronizer(sync_config(self._params))
        self._create_topics()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._worker = threading.Thread(target=self._work, name=f'{NODE_NAME}_processing',
                                        daemon=True)
        self._worker.start()
        self.get_logger().info(f'{NODE_NAME} ready: {self._mode_description()}; output namespace '
                               f'{self._params.output_namespace!r}')

    # -- set-up ---------------------------------------------------------------------------------

    def _declare_parameters(self) -> NodeParameters:
        try:
            for spec in PARAMETERS:
                self.declare_parameter(spec.name, spec.default, parameter_descriptor(spec))
        except (InvalidParameterTypeException, InvalidParameterValueException) as error:
            raise NodeStartupError(f'invalid parameter: {error}') from error
        try:
            return validate_parameters(
                {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS})
        except (ValueError, TypeError) as error:
            raise NodeStartupError(f'invalid parameters: {error}') from error

    def _create_topics(self) -> None:
        receive_group = ReentrantCallbackGroup()
        overrides = QoSOverridingOptions.with_default_policies()
        compressed = self._params.input_type == 'compressed'
        for index, topic in enumerate(INPUT_TOPICS):
            is_image = index in INFO_OF_IMAGE
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
        self._create_timers()

    def _create_timers(self) -> None:
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        if self._params.rate_hz > 0.0:
            self.create_timer(1.0 / self._params.rate_hz, self._on_rate_timer,
                              callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(INFO_WAIT_POLL_S, self._expire_info_wait,
                          callback_group=MutuallyExclusiveCallbackGroup(), clock=steady)
        self.create_timer(1.0, self._publish_diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup(), clock=steady)

    def _load_engine(self, params: NodeParameters):
        try:
            return self._engine_factory(params)
        except Exception as error:  # noqa: BLE001 - any failure here means "cannot start"
            raise NodeStartupError(
                f'cannot load model {params.model or "(default)"!r} with weights '
                f'{params.weights or "(packaged default)"!r} on device {params.device!r}: '
                f'{error}') from error

    def _mode_description(self) -> str:
        if not self._params.enable:
            return 'pass-through'
        device = getattr(self._engine, 'device', self._params.device)
        precision = getattr(self._engine, 'precision', self._params.precision)
        return f'deraining with model {self._model_label()} on {device} in {precision}'

    def _model_label(self) -> str:
        model = getattr(self._engine, 'model_name', None)
        return str(model or self._params.model or '(default)')

    # -- parameters -----------------------------------------------------------------------------

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in PARAMETER_TABLE}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            candidate = changed(self._params, changes)
        except (ValueError, TypeError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        engine = self._engine
        needs_engine = candidate.enable and (engine is None or any(
            PARAMETER_TABLE[name].rebuilds_engine for name in changes))
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
        self._last_received_at = time.monotonic()
        if index in INFO_OF_IMAGE:
            self._unstamped = stamp == 0
            if self._unstamped:
                self._warn('unstamped', f'{INPUT_NAMES[index]} has header stamp 0: the node '
                           'pairs left, right and camera_info by stamp, so unstamped sets after '
                           'the first cannot be told apart; stamp the images in the driver')
        result = self._sync.add(index, stamp, message)
        if result is AddResult.RESET:
            self._warn('stamps_backwards',
                       f'{INPUT_NAMES[index]} stamp went backwards (to {stamp / 1e9:.3f} s); '
                       'cleared the synchronizer queues (bag loop or restarted driver?)')
        elif result is AddResult.COMPLETED:
            self._on_set_completed()

    def _on_set_completed(self) -> None:
        self._input_sets.tick()
        with self._wake:
            self._wake.notify()

    def _on_rate_timer(self) -> None:
        with self._wake:
            self._timer_due = True
            self._wake.notify()

    def _expire_info_wait(self) -> None:
        if self._sync.expire():
            self._on_set_completed()

    # -- processing -----------------------------------------------------------------------------

    def _work(self) -> None:
        """Derain sets one at a time on this thread, the only one that runs inference.

        glibc gives each thread a heap of its own that keeps what torch freed, so inference on
        whichever executor thread was free grew the node by about 630 MB in 30 s (1280x720 at
        4 Hz) although the engine alone stays flat; one thread reuses one heap. Trimming the
        heaps after each set instead (an earlier fix) cost 11 ms per trim at 640x360 and slowed
        the next inference by a quarter or more, as every page it touched faulted in again.
        """
        while True:
            with self._wake:
                self._wake.wait_for(self._ready_to_process)
                if self._stopping:
                    return
                self._timer_due = False
            with self._processing:
                self._process_taken()

    def _ready_to_process(self) -> bool:
        return self._stopping or (self._sync.has_pending() and (
            self._params.rate_hz == 0.0 or self._timer_due))

    def _process_taken(self) -> None:
        if self._stopping:
            return
        stereo_set = self._sync.take()
        if stereo_set is not None:
            self._processing_since = time.monotonic()
            timer = PhaseTimer(stereo_set.completed_at)
            timer.mark('wait')
            try:
                self._process(stereo_set, timer)
            finally:
                self._processing_since = None

    def _process(self, stereo_set: StereoSet, timer: PhaseTimer) -> None:
        params = self._params
        try:
            left, right = self._decode_pair(stereo_set.left_image, stereo_set.right_image)
            self._check_infos(stereo_set, left)
            timer.mark('decode')
            if params.enable:
                outputs = self._engine.derain(left.array, right.array,
                                              channel_order=left.channel_order)
                self._inference.add(timer.mark('inference'))
            elif params.input_type == 'raw':
                outputs = None
            else:
                outputs = (left.array, right.array)
        except BadInput as error:
            self._reject(error.kind, f'dropped a stereo set: {error}')
            return
        except Exception as error:  # noqa: BLE001 - the node keeps running on engine faults
            self._reject('engine', f'deraining failed, set dropped: {error}', error=True)
            return
        if self._stopping:
            return
        sources = (stereo_set.left_image, stereo_set.right_image)
        images = sources if outputs is None else tuple(
            self._to_message(source.header, array, view.encoding)
            for source, array, view in zip(sources, outputs, (left, right)))
        timer.mark('encode')
        try:
            self._publish(images, (stereo_set.left_info, stereo_set.right_info),
                          color=left.channel_order != 'mono')
        except rclpy_implementation.RCLError:
            if rclpy.ok(context=self.context):
                raise
            return  # SIGINT/SIGTERM shut the context down while this set was derained
        timer.mark('publish')
        self._published += 1
        self._output_sets.tick()
        self._last_published_at = time.monotonic()
        self._last_set = LastSet(stereo_set.stamp_ns, timer.seconds.get('inference', 0.0),
                                 stereo_set.completed_at, self._last_published_at)
        end_to_end = self._last_published_at - stereo_set.completed_at
        self._end_to_end.add(end_to_end)
        self._overhead.add(end_to_end - timer.seconds.get('inference', 0.0))
        self._phases.add(timer.seconds)

    def _reject(self, kind: str, message: str, error: bool = False) -> None:
        self._rejected += 1
        self._last_rejection = message
        if error:
            self.get_logger().error(message)
        else:
            self._warn(kind, message)

    def _check_infos(self, stereo_set: StereoSet, left: DecodedView) -> None:
        """Warn when a camera_info describes another image size than the image it came with."""
        height, width = left.array.shape[:2]
        for side, info in (('left', stereo_set.left_info), ('right', stereo_set.right_info)):
            if info is not None and (info.width, info.height) != (width, height):
                self._warn('info_size', f'{side} camera_info is {info.width}x{info.height} but '
                           f'its image is {width}x{height}: stereo_image_proc will use the wrong '
                           'geometry; publishing anyway (check the calibration or remappings)')

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

    def health(self) -> Health:
        """Return the node's state as diagnostics report it."""
        if self._engine_log.last_error:
            return Health('error', self._engine_log.last_error)
        now = time.monotonic()
        health = diagnose(self._sync.counters(), NodeActivity(
            since_input_s=now - self._last_received_at,
            since_output_s=now - max(self._last_published_at, self._started_at),
            published=self._published, rejected=self._rejected,
            last_rejection=self._last_rejection, unstamped=self._unstamped,
            processing_s=now - started if (started := self._processing_since) else 0.0))
        if health.level == 'ok' and not self._params.enable:
            return Health('ok', 'pass-through')
        return health

    def _log_health(self, health: Health) -> None:
        """Log a problem once, then ever more rarely while it lasts; forget it once it is gone."""
        if health.level == 'ok':
            for kind in ('no_input', 'idle', 'missing', 'lost', 'rejected', 'stamps', 'busy',
                         'stalled', 'no_info'):
                self._throttle.clear(kind)
            return
        if not health.kind or not self._throttle.allow(health.kind):
            return
        if health.kind in ('idle', 'no_input'):
            self.get_logger().info(health.summary)
        else:
            self.get_logger().warning(health.summary)

    def _publish_diagnostics(self) -> None:
        health = self.health()
        self._log_health(health)
        status = DiagnosticStatus(level=LEVELS[health.level],
                                  name=f'{self.get_fully_qualified_name()}: derain',
                                  message=health.summary)
        values = self._diagnostic_values()
        status.hardware_id = values['device']
        status.values = [KeyValue(key=key, value=value) for key, value in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array)

    def _diagnostic_values(self) -> dict[str, str]:
        counters = self._sync.counters()
        values = {
            'enabled': str(self._params.enable),
            'input_rate_hz': f'{self._input_sets.rate():.2f}',
            'output_rate_hz': f'{self._output_sets.rate():.2f}',
            'published_sets': str(self._published),
            **self._last_set.values(),
            'superseded_sets': str(counters.superseded),
            'abandoned_pairs': str(counters.abandoned),
            'rejected_sets': str(self._rejected),
            'sync_resets': str(counters.resets),
            'received': ', '.join(f'{name} {count}'
                                  for name, count in zip(INPUT_NAMES, counters.received)),
            'device': str(getattr(self._engine, 'device', self._params.device)),
            'model': self._model_label(),
            'weights': self._weights_label(),
            'precision': str(getattr(self._engine, 'precision', self._params.precision)),
            'self_ensemble': str(self._params.self_ensemble),
            'refine': str(getattr(self._engine, 'refines', self._params.refine)).lower(),
            'view_fusion': str(self._params.view_fusion).lower(),
        }
        for name, received, unmatched in zip(INPUT_NAMES, counters.received, counters.unmatched):
            key = name.replace(' ', '_')
            values[f'received_{key}'] = str(received)
            values[f'unmatched_{key}'] = str(unmatched)
        windows = {'inference_latency': self._inference, 'end_to_end_latency': self._end_to_end,
                   'processing_overhead': self._overhead,
                   **{f'phase_{phase}': window
                      for phase, window in self._phases.windows().items()}}
        for key, window in windows.items():
            summary = window.summary_ms()
            for statistic in ('mean', 'p50', 'p95'):
                value = summary[statistic]
                values[f'{key}_{statistic}_ms'] = 'n/a' if value is None else f'{value:.2f}'
        return values

    def _weights_label(self) -> str:
        if self._engine is None:
            return 'none loaded (pass-through)'
        return self._engine.weights_source

    # -- shutdown -------------------------------------------------------------------------------

    def stop(self, timeout_s: float) -> bool:
        """Publish nothing more; wait up to `timeout_s` for a set in flight; True if none is."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        idle = self._processing.acquire(timeout=timeout_s)
        if idle:
            self._processing.release()
        return idle

    def destroy_node(self) -> None:
        self.stop(timeout_s=0.0)
        logging.getLogger(ENGINE_LOGGER).removeHandler(self._engine_log)
        super().destroy_node()


def describe_mismatch(left: DecodedView, right: DecodedView) -> str:
    def describe(view: DecodedView) -> str:
        height, width = view.array.shape[:2]
        return f'{width}x{height} {view.encoding}'

    return (f'left image is {describe(left)} but right image is {describe(right)}; '
            'expected the same size and encoding on both sides')


def spin_until_shutdown(executor: SingleThreadedExecutor) -> bool:
    """Spin `executor` on a thread of its own until the context shuts down or SIGINT arrives.

    Python runs signal handlers on the main thread only. When the main thread itself spins, a
    SIGINT handled while rclpy converts a message being taken ends spin with a RuntimeError from
    pybind11 instead of a shutdown (seen with the single-threaded executor); here the signal only
    interrupts the main thread's wait, and rclpy's own handler shuts the context down, which
    ends spin. The main thread waits on an event the spin thread sets, not on `Thread.join`:
    Python 3.11 marks a thread as finished when a KeyboardInterrupt breaks into its join, so the
    process went on to exit while spin was still inside rcl's wait, and the interpreter's exit
    then killed that thread inside C++ code ("terminate called without an active exception").

    Returns False when spin has not ended SHUTDOWN_WAIT_S after the signal.
    """
    failures: list[BaseException] = []
    finished = threading.Event()

    def spin() -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
        except rclpy_implementation.RCLError as error:
            # A signal can shut the context down between two waits of spin (rclpy then fails to
            # build its wait set instead of raising ExternalShutdownException): a shutdown too.
            if rclpy.ok():
                failures.append(error)
        except BaseException as error:  # noqa: BLE001 - re-raised on the main thread below
            failures.append(error)
        finally:
            finished.set()

    thread = threading.Thread(target=spin, name=f'{NODE_NAME}_executor', daemon=True)
    thread.start()
    try:
        finished.wait()
    except KeyboardInterrupt:
        # rclpy's own SIGINT handler shuts the context down, concurrently; shutting it down
        # here as well races with it (rcl: "shutdown already called") and aborts the process.
        finished.wait(timeout=SHUTDOWN_WAIT_S)
    if failures:
        raise failures[0]
    return finished.is_set()


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; exit non-zero when it cannot start.

    rclpy turns both signals into a context shutdown, which ends `spin`. An inference still
    running then gets SHUTDOWN_WAIT_S to finish; after that the process exits without waiting
    for it (its thread pool would otherwise be joined at interpreter exit, however long the
    inference takes), and so it does when spin itself has not ended by then (an interpreter exit
    would kill that thread inside rcl and abort).
    """
    profile = apply_large_image_profile()
    rclpy.init(args=args)
    try:
        node = StereoDerainNode()
    except NodeStartupError as error:
        rclpy.logging.get_logger(NODE_NAME).fatal(str(error))
        rclpy.try_shutdown()
        return 1
    if profile:
        node.get_logger().info(f'Fast DDS transport for large images: {profile} (set '
                               'FASTRTPS_DEFAULT_PROFILES_FILE to use your own profile)')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spun_down = spin_until_shutdown(executor)
    idle = node.stop(SHUTDOWN_WAIT_S)
    executor.shutdown(timeout_sec=0.0)
    node.destroy_node()
    rclpy.try_shutdown()
    if not (idle and spun_down):
        busy = 'the inference in progress' if not idle else 'the executor thread'
        print(f'{NODE_NAME}: exiting without waiting for {busy}', file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == '__main__':
    sys.exit(main())
