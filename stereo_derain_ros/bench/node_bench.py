"""`bench node`: the real node over DDS in its own process, fed by a player (running side).

For each size: time the engine alone; start the node (default QoS, the package's transport) and
send sets one at a time (latency without queueing, the node's inference and in-node overhead
from its diagnostics); at the largest size also play at the transport rate for a while and
count the images the node received against those sent (loss in transport, kept apart from sets
superseded while busy), then soak at 3× its processing rate and watch its memory. Finally a
plain relay with the node's topics and QoS gives the transport floor of the same two hops.
`node_report` turns the result into the summary, targets and markdown.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
import os
from pathlib import Path
import tempfile
import threading
import time

from stereo_derain_ros.bench.dds_rig import (
    ping,
    rss_growth_mb,
    run_at_rate,
    StampClock,
    StereoMonitor,
    StereoPlayer,
    wait_until_answered,
)
from stereo_derain_ros.bench.engine_settings import BenchEngineSettings
from stereo_derain_ros.bench.results import SCHEMA_VERSION
from stereo_derain_ros.node_process import (
    isolated_ros_environment,
    NodeProcess,
    NodeProcessError,
    ros_command,
)

INPUT_NAMESPACE = '/bench_in'
OUTPUT_NAMESPACE = '/bench_out'
INPUT_TOPICS = ('left/image_rect', 'left/camera_info', 'right/image_rect', 'right/camera_info')
NODE_UNDER_TEST = 'bench_derain_node'
IMAGE_INPUTS = ('left_image', 'right_image')


class NodeBenchError(RuntimeError):
    """The node or the relay could not be started or did not answer."""


@dataclass
class NodeBenchConfig(BenchEngineSettings):
    """What `bench node` measures, with the node's engine; the CLI fills it from its flags."""

    device: str = 'cpu'
    threads: int = 1
    sizes: list[tuple[int, int]] = field(default_factory=lambda: [(640, 360), (1280, 720)])
    pings: int = 10
    transport_rate_hz: float = 10.0
    transport_s: float = 60.0
    soak_s: float = 60.0
    soak_factor: float = 3.0
    startup_timeout_s: float = 180.0
    engine_repeats: int = 5


def node_parameters(config: NodeBenchConfig) -> dict[str, object]:
    """Return the node's parameters: the engine as configured, everything else default."""
    parameters = {'device': config.device, 'precision': config.precision,
                  'threads': config.threads, 'output_namespace': OUTPUT_NAMESPACE}
    if config.model:
        parameters['model'] = config.model
    if config.weights:
        parameters['weights'] = config.weights
    else:
        parameters['allow_untrained_weights'] = True
    return parameters


def time_engine(config: NodeBenchConfig, left, right) -> dict:
    """Time `engine.derain` on the benchmark pair in this process, built as the node builds it."""
    from stereo_derain_ros.bench.timing import median, time_call
    from stereo_derain_ros.engine import DerainEngine
    from stereo_derain_ros.node_params import engine_config, validate_parameters

    parameters = {k: v for k, v in node_parameters(config).items() if k != 'output_namespace'}
    engine = DerainEngine(engine_config(validate_parameters(parameters)))
    durations = time_call(lambda: engine.derain(left, right), str(engine.device), warmup=1,
                          repeats=config.engine_repeats)
    return {'median_ms': median(durations) * 1000.0,
            'times_ms': [duration * 1000.0 for duration in durations],
            'device': str(engine.device), 'precision': engine.precision,
            'untrained': not config.weights}


class _Rig:
    """The benchmark's own rclpy node: players per size, a monitor and a /diagnostics listener."""

    def __init__(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('stereo_derain_bench', context=self.context)
        self.monitor = StereoMonitor(self.node, OUTPUT_NAMESPACE)
        self.stamps = StampClock()
        self._players: dict[tuple[int, int], StereoPlayer] = {}
        self._lock = threading.Lock()
        self._diagnostics: tuple[float, dict[str, str]] = (0.0, {})
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def player(self, size: tuple[int, int]) -> StereoPlayer:
        """Return the player of a rainy pair at `size` (created once)."""
        from stereo_derain_ros.bench.sequence import rainy_stereo_sequence

        if size not in self._players:
            (left, right), = rainy_stereo_sequence(size[0], size[1], 1)
            self._players[size] = StereoPlayer(self.node, INPUT_NAMESPACE, left, right)
        return self._players[size]

    def _on_diagnostics(self, message) -> None:
        for status in message.status:
            if NODE_UNDER_TEST in status.name:
                with self._lock:
                    values = {item.key: item.value for item in status.values}
                    self._diagnostics = (time.monotonic(), values)

    def fresh_diagnostics(self, timeout_s: float = 5.0) -> dict[str, str]:
        """Return the node's first diagnostics published after this call."""
        asked = time.monotonic()
        while time.monotonic() - asked < timeout_s:
            with self._lock:
                received_at, values = self._diagnostics
            if received_at > asked:
                return values
            time.sleep(0.05)
        raise NodeBenchError(f'the node sent no diagnostics for {timeout_s:.0f} s')

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=5)


def _wait_until_flowing(rig: _Rig, player: StereoPlayer, process: NodeProcess,
                        timeout_s: float) -> None:
    """Wait for discovery and the first complete output set (the node loads its engine first)."""
    def check() -> None:
        try:
            process.check_running('while starting')
        except NodeProcessError as error:
            raise NodeBenchError(str(error)) from None

    if not wait_until_answered(player, rig.monitor, rig.stamps, timeout_s, check):
        raise NodeBenchError(f'{process.log_path.stem} gave no output within {timeout_s:.0f} s: '
                             f'{process.log_tail()}')


def _ping_sets(rig: _Rig, player: StereoPlayer, count: int) -> list[dict]:
    """Send sets one at a time; per set, its latency and how it splits, all in ms.

    After each set the node's diagnostics name the set they describe by stamp and give its
    inference and when it was complete and published, on the monotonic clock that the player
    and monitor read too: `reception` = player sends -> set complete in the node, `in_node` =
    complete -> published, `delivery` = published -> both outputs at the monitor. Inference
    varies from set to set by more than the overhead being measured, so overhead is taken per
    set. A set the diagnostics did not describe keeps only its latency.
    """
    sets = []
    ping(player, rig.monitor, rig.stamps, 1, timeout_s=120.0)  # a warm-up set may be in flight
    for _ in range(count):
        latency = ping(player, rig.monitor, rig.stamps, 1, timeout_s=120.0)
        stamp = next(reversed(player.sent))
        diagnostics = rig.fresh_diagnostics()
        if not latency:
            continue
        row = {'latency_ms': latency[0]}
        if diagnostics.get('last_set_stamp_ns') == str(stamp):
            completed = float(diagnostics['last_set_completed_s'])
            published = float(diagnostics['last_set_published_s'])
            row.update(inference_ms=float(diagnostics['last_set_inference_ms']),
                       reception_ms=(completed - player.sent[stamp]) * 1000.0,
                       in_node_ms=(published - completed) * 1000.0,
                       delivery_ms=(rig.monitor.received[stamp] - published) * 1000.0)
        sets.append(row)
    return sets


def _received(diagnostics: dict[str, str]) -> dict[str, int]:
    return {name: int(diagnostics.get(f'received_{name}', 0)) for name in IMAGE_INPUTS}


def _transport_run(rig: _Rig, player: StereoPlayer, process: NodeProcess,
                   config: NodeBenchConfig) -> dict:
    """Play at the transport rate; count images the node received against those sent."""
    before = _received(rig.fresh_diagnostics())
    run = run_at_rate(player, rig.monitor, rig.stamps, config.transport_rate_hz,
                      config.transport_s, 5.0, process.pid)
    after = rig.fresh_diagnostics()
    received = {name: count - before[name] for name, count in _received(after).items()}
    return {**run.summary(), 'node_received': received,
            'lost_in_transport': sum(run.sent - count for count in received.values()),
            'superseded_sets_total': int(after.get('superseded_sets', 0))}


def _soak(rig: _Rig, player: StereoPlayer, process: NodeProcess, rate_hz: float,
          duration_s: float) -> dict:
    # Sampled four times a second: each inference swings the resident size by hundreds of MB.
    run = run_at_rate(player, rig.monitor, rig.stamps, rate_hz, duration_s, 5.0, process.pid,
                      sample_interval_s=0.25)
    settle_s = min(10.0, duration_s / 4)
    return {**run.summary(), 'settle_s': settle_s, 'rss_samples_mb': run.rss_mb,
            **rss_growth_mb(run.rss_mb, settle_s)}


def _measure_node(rig: _Rig, config: NodeBenchConfig, size: tuple[int, int], logs: Path,
                  largest: bool, progress: Callable[[str], None]) -> dict:
    remaps = {topic: f'{INPUT_NAMESPACE}/{topic}' for topic in INPUT_TOPICS}
    command = ros_command('stereo_derain_ros.node', NODE_UNDER_TEST, remaps,
                          node_parameters(config))
    player = rig.player(size)
    with NodeProcess(command, logs / f'node_{size[0]}x{size[1]}.log', os.environ) as process:
        progress(f'node at {size[0]}x{size[1]}: starting')
        _wait_until_flowing(rig, player, process, config.startup_timeout_s)
        sets = _ping_sets(rig, player, config.pings)
        diagnostics = rig.fresh_diagnostics()
        row = {'size': f'{size[0]}x{size[1]}',
               'ping_latencies_ms': [one['latency_ms'] for one in sets], 'ping_sets': sets,
               'diagnostics': diagnostics}
        if largest:
            progress(f'node at {size[0]}x{size[1]}: {config.transport_rate_hz:g} Hz for '
                     f'{config.transport_s:.0f} s (transport)')
            row['transport'] = _transport_run(rig, player, process, config)
            processing_hz = 1000.0 / float(diagnostics['inference_latency_p50_ms'])
            soak_rate = float(f'{config.soak_factor * processing_hz:.2g}')
            progress(f'node at {size[0]}x{size[1]}: memory soak at {soak_rate:g} Hz for '
                     f'{config.soak_s:.0f} s')
            row['soak'] = _soak(rig, player, process, soak_rate, config.soak_s)
    return row


def _measure_relay(rig: _Rig, config: NodeBenchConfig, size: tuple[int, int], logs: Path,
                   largest: bool, progress: Callable[[str], None]) -> dict:
    command = ros_command('stereo_derain_ros.bench.relay', 'stereo_relay_node', {},
                          {'input_namespace': INPUT_NAMESPACE,
                           'output_namespace': OUTPUT_NAMESPACE})
    player = rig.player(size)
    with NodeProcess(command, logs / f'relay_{size[0]}x{size[1]}.log', os.environ) as process:
        progress(f'relay at {size[0]}x{size[1]} (transport floor)')
        _wait_until_flowing(rig, player, process, config.startup_timeout_s)
        row = {'size': f'{size[0]}x{size[1]}',
               'ping_latencies_ms': ping(player, rig.monitor, rig.stamps, config.pings, 30.0)}
        if largest:
            duration = min(config.transport_s, 20.0)
            row['transport'] = run_at_rate(player, rig.monitor, rig.stamps,
                                           config.transport_rate_hz, duration, 2.0,
                                           process.pid).summary()
    return row


def run_node_bench(config: NodeBenchConfig, machine: dict,
                   progress: Callable[[str], None] = lambda text: None) -> dict:
    """Run the whole node benchmark and return the JSON-ready result."""
    from stereo_derain_ros.bench.node_report import summarise
    from stereo_derain_ros.bench.targets import evaluate, NODE_TARGETS

    isolated_ros_environment()
    sizes = sorted(config.sizes, key=lambda size: size[0] * size[1])
    rig = _Rig()
    engine, node_rows, relay_rows = {}, [], []
    try:
        with tempfile.TemporaryDirectory(prefix='stereo-derain-bench-') as logs:
            for size in sizes:
                largest = size == sizes[-1]
                progress(f'timing the engine alone at {size[0]}x{size[1]}')
                player = rig.player(size)
                engine[f'{size[0]}x{size[1]}'] = time_engine(config, *player.pair)
                node_rows.append(_measure_node(rig, config, size, Path(logs), largest, progress))
                relay_rows.append(_measure_relay(rig, config, size, Path(logs), largest,
                                                 progress))
    finally:
        rig.close()
    result = {
        'schema_version': SCHEMA_VERSION, 'benchmark': 'node', 'machine': machine,
        'settings': asdict(config),
        'ros': {'domain_id': os.environ['ROS_DOMAIN_ID'],
                'rmw': os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp (default)'),
                'fastdds_profile': os.environ.get('FASTRTPS_DEFAULT_PROFILES_FILE', '')},
        'engine': engine, 'node_runs': node_rows, 'relay_runs': relay_rows,
    }
    result['summary'] = summarise(result)
    result['targets'] = evaluate(NODE_TARGETS, result['summary'])
    return result
