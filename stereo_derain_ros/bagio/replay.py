"""Publish a bag's messages over DDS with their recorded timing, for machines without ros2 bag.

Message classes are resolved by name (`sensor_msgs/msg/Image` -> `sensor_msgs.msg.Image`) with
importlib, because `rosidl_runtime_py` is not part of the pip-installed ROS wheels. The class is
only needed to create the publisher: recorded CDR bytes are published as they are
(`Publisher.publish` accepts serialised bytes), since a bag stores exactly what DDS carries.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
import importlib
from pathlib import Path
import threading
import time

from rosbags.interfaces import ConnectionExtRosbag2, Qos, QosDurability, QosReliability

from stereo_derain_ros.bagio import BagError
from stereo_derain_ros.bagio.reading import open_bag

CLOCK_TOPIC = '/clock'
CLOCK_PERIOD_S = 0.01
DELIVERY_TIMEOUT_S = 5.0
BEST_EFFORT_LINGER_S = 0.5


@dataclass
class ReplayConfig:
    """What to replay and how; see `stereo-derain replay --help`."""

    bag: Path
    rate: float = 1.0
    loop: bool = False
    clock: bool = False
    topics: list[str] | None = None
    delay_s: float = 0.0
    wait_for_subscribers_s: float = 0.0

    def __post_init__(self) -> None:
        self.bag = Path(self.bag)
        if not self.rate > 0:
            raise BagError(f'replay rate must be > 0, got {self.rate}')
        if self.delay_s < 0 or self.wait_for_subscribers_s < 0:
            raise BagError('delay and subscriber wait must be >= 0 s')


@dataclass
class ReplaySummary:
    """Messages published per topic, and how long it took."""

    published: dict[str, int] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)
    loops: int = 0
    seconds: float = 0.0


def message_class(msgtype: str) -> type:
    """Return the rclpy message class for a type name like `sensor_msgs/msg/Image`."""
    package, _, name = msgtype.rpartition('/')
    module_name = package.replace('/', '.')
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        raise BagError(f'message type {msgtype} is not installed (no Python class '
                       f'{module_name}.{name})') from None


def qos_profile(recorded: list[Qos]):
    """Return the QoS to publish with: the recorded publishers' if they agree, else reliable.

    This is ros2 bag play's rule; a best-effort recording stays best effort so that a reliable
    subscriber behaves as it would against the original driver.
    """
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    profile = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
    if not recorded:
        return profile
    if len({(q.reliability, q.durability) for q in recorded}) != 1:
        return profile
    if recorded[0].reliability == QosReliability.BEST_EFFORT:
        profile.reliability = ReliabilityPolicy.BEST_EFFORT
    if recorded[0].durability == QosDurability.TRANSIENT_LOCAL:
        profile.durability = DurabilityPolicy.TRANSIENT_LOCAL
    profile.depth = max(profile.depth, int(recorded[0].depth))
    return profile


def replay_bag(config: ReplayConfig, context=None, stop: threading.Event | None = None,
               on_message: Callable[[str, int], None] | None = None) -> ReplaySummary:
    """Publish the bag's messages at their recorded pace until the end (or forever with loop).

    `context` is an initialised rclpy context (None: the default one). `stop` ends the replay
    early from another thread; `on_message(topic, bag_timestamp_ns)` is called after each
    publication.
    """
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock

    stop = stop or threading.Event()
    summary = ReplaySummary()
    started = time.monotonic()
    with open_bag(config.bag) as reader:
        connections = _selected_connections(reader, config.topics, summary)
        node = Node('stereo_derain_replay', context=context)
        try:
            publishers = {}
            for connection in connections:
                publishers[connection.id] = node.create_publisher(
                    message_class(connection.msgtype), connection.topic,
                    qos_profile(_recorded_qos(connection)))
                summary.published.setdefault(connection.topic, 0)
            clock = node.create_publisher(Clock, CLOCK_TOPIC, 10) if config.clock else None
            _wait_for_subscribers(publishers.values(), config.wait_for_subscribers_s, stop)
            if stop.wait(config.delay_s):
                return summary
            while not stop.is_set():
                _play_once(reader, connections, publishers, clock, config.rate, stop, summary,
                           on_message)
                summary.loops += 1
                if not config.loop:
                    break
            _wait_for_delivery(publishers.values(), stop)
        finally:
            node.destroy_node()
    summary.seconds = time.monotonic() - started
    return summary


def _selected_connections(reader, topics: list[str] | None, summary: ReplaySummary) -> list:
    available = sorted({c.topic for c in reader.connections})
    if topics:
        missing = [t for t in topics if t not in available]
        if missing:
            raise BagError(f'topics {", ".join(missing)} are not in the bag; its topics are: '
                           f'{", ".join(available)}')
    chosen = []
    for connection in reader.connections:
        if topics and connection.topic not in topics:
            continue
        try:
            message_class(connection.msgtype)
        except BagError as error:
            if topics:
                raise
            summary.skipped_topics[connection.topic] = str(error)
            continue
        chosen.append(connection)
    if not chosen:
        raise BagError(f'nothing to replay in {reader.path}')
    return chosen


def _recorded_qos(connection) -> list[Qos]:
    ext = connection.ext
    return list(ext.offered_qos_profiles) if isinstance(ext, ConnectionExtRosbag2) else []


def _wait_for_subscribers(publishers, timeout_s: float, stop: threading.Event) -> None:
    """Give subscribers time to match, so that a replay does not start into the void."""
    deadline = time.monotonic() + timeout_s
    pending = list(publishers)
    while pending and time.monotonic() < deadline and not stop.is_set():
        pending = [p for p in pending if p.get_subscription_count() == 0]
        if pending:
            stop.wait(0.05)


def _wait_for_delivery(publishers, stop: threading.Event) -> None:
    """Let subscribers receive the last messages before the publishers go away.

    Destroying a publisher discards what its DDS writer has not delivered yet; a large image is
    sent in many fragments, so without this the final frame of a replay is often lost. Reliable
    subscribers acknowledge; best-effort ones (the node's sensor-data inputs) never do, and a
    replay into the node lost its last stereo set in some test runs, so the publishers also
    linger BEST_EFFORT_LINGER_S.
    """
    from rclpy.duration import Duration

    for publisher in publishers:
        if stop.is_set():
            return
        publisher.wait_for_all_acked(Duration(seconds=DELIVERY_TIMEOUT_S))
    stop.wait(BEST_EFFORT_LINGER_S)


def _play_once(reader, connections, publishers, clock, rate: float, stop: threading.Event,
               summary: ReplaySummary, on_message) -> None:
    bag_start = None
    wall_start = time.monotonic()
    for connection, timestamp, raw in reader.messages(connections=connections):
        if bag_start is None:
            bag_start = timestamp
        due = wall_start + (timestamp - bag_start) / 1e9 / rate
        while True:
            remaining = due - time.monotonic()
            if clock is not None:
                elapsed_bag_ns = (time.monotonic() - wall_start) * rate * 1e9
                _publish_clock(clock, min(bag_start + int(elapsed_bag_ns), timestamp))
            if remaining <= 0:
                break
            if stop.wait(min(remaining, CLOCK_PERIOD_S if clock is not None else remaining)):
                return
        publishers[connection.id].publish(bytes(raw))
        summary.published[connection.topic] += 1
        if on_message is not None:
            on_message(connection.topic, timestamp)


def _publish_clock(publisher, timestamp_ns: int) -> None:
    from rosgraph_msgs.msg import Clock

    message = Clock()
    message.clock.sec, message.clock.nanosec = divmod(int(timestamp_ns), 1_000_000_000)
    publisher.publish(message)
