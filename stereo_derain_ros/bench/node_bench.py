"""`bench node`: the real node over DDS, fed by a player at fixed rates (ros2_benchmark method).

Order of a run: time the engine alone on the benchmark pair; start the node in its own process
and scan rates upwards until more than 5 % of sets are dropped (the peak is the last rate that
kept up); start a plain relay with the node's topics and QoS and measure it at the same rates
(the transport floor); finally run the node for a while at 3× its processing rate and watch its
memory. Node overhead = node latency − engine time − relay latency, at the lowest rate where
nothing queues.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass
import os
from pathlib import Path
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from stereo_derain_ros.bench.results import format_number, machine_block, markdown_table

FIXED_RATES_HZ = (5.0, 10.0, 30.0, 60.0)
INPUT_NAMESPACE = '/bench_in'
OUTPUT_NAMESPACE = '/bench_out'
INPUT_TOPICS = ('left/image_rect', 'left/camera_info', 'right/image_rect', 'right/camera_info')
NODE_UNDER_TEST = 'bench_derain_node'
SCAN_FACTORS = (0.25, 0.5, 0.8, 1.0, 1.25)
MAX_RATE_HZ = 100.0


class NodeBenchError(RuntimeError):
    """The node or the relay could not be started or did not answer."""


@dataclass
class NodeBenchConfig:
    """What `bench node` measures; the CLI fills it from its flags."""

    model: str = 'bandnet'
    weights: str = ''
    width: int = 1280
    height: int = 720
    device: str = 'cpu'
    precision: str = 'auto'
    rates_hz: list[float] | None = None
    duration_s: float = 10.0
    min_sets_per_run: int = 10
    soak_s: float = 60.0
    soak_factor: float = 3.0
    max_drop_rate: float = 0.05
    startup_timeout_s: float = 180.0
    engine_repeats: int = 5
    threads: int | None = None
    engine_max_repeats: int = 30
    engine_seconds: float = 5.0


def scan_rates(processing_hz: float, explicit: list[float] | None) -> list[float]:
    """Return ascending rates to scan: around the node's own rate, then upwards to 100 Hz.

    The scan stops at the first rate with too many drops, so the list may run far past the
    expected peak at no cost; it only has to reach it.
    """
    if explicit:
        return sorted(set(explicit))
    factors = [*SCAN_FACTORS, *(SCAN_FACTORS[-1] * 1.25 ** step for step in range(1, 8))]
    rates = {float(f'{factor * processing_hz:.2g}') for factor in factors}
    rates |= {rate for rate in FIXED_RATES_HZ if rate <= max(rates)}
    return sorted(rate for rate in rates if 0 < rate <= MAX_RATE_HZ)


def kept_up(row: dict, max_drop_rate: float) -> bool:
    """Tell whether a run dropped at most `max_drop_rate` of its sets (counted, not float)."""
    return row['sent'] - row['received'] <= round(max_drop_rate * row['sent'], 9)


def node_processing_rate(rig: '_Rig', sets: int = 5) -> tuple[float, list[float]]:
    """Send sets one at a time and return (1 / median latency, latencies in ms).

    The node's rate in its own process under the same load sets the scan, which a timing of
    the engine in this process could not: its threads compete differently.
    """
    from stereo_derain_ros.bench.node_latency import ping, SECOND

    first = rig.stamps.reserve(sets, SECOND // 10)
    before = dict(rig.player.sent)
    ping(rig.player, rig.monitor, sets, timeout=60.0, first_stamp_ns=first)
    sent = {stamp: at for stamp, at in rig.player.sent.items() if stamp not in before}
    latencies = rig.monitor.latencies_ms(sent)
    if not latencies:
        raise NodeBenchError('the node answered none of the sets sent one at a time')
    return 1000.0 / statistics.median(latencies), latencies


def time_engine(config: NodeBenchConfig, left, right) -> dict:
    """Time `engine.derain` on the benchmark pair, in this process, as the node calls it."""
    import torch

    from stereo_derain_ros.bench.timing import median, time_call
    from stereo_derain_ros.engine import DerainEngine, EngineConfig

    if config.threads:
        torch.set_num_threads(config.threads)
    engine = DerainEngine(EngineConfig.from_options(
        model=config.model, weights=config.weights, untrained=not config.weights,
        device=config.device, precision=config.precision))
    def one_pair() -> None:
        engine.derain(left, right)

    # Shared cores make single runs noisy: keep timing for a few seconds, then take the median.
    durations = time_call(one_pair, str(engine.device), warmup=2,
                          repeats=config.engine_repeats)
    deadline = time.monotonic() + config.engine_seconds
    while len(durations) < config.engine_max_repeats and time.monotonic() < deadline:
        durations += time_call(one_pair, str(engine.device), warmup=0, repeats=1)
    result = {'median_ms': median(durations) * 1000.0,
              'times_ms': [duration * 1000.0 for duration in durations],
              'device': str(engine.device), 'precision': engine.precision,
              'untrained': not config.weights}
    return result


class _Rig:
    """The benchmark's own rclpy node: player, monitor and a /diagnostics listener."""

    def __init__(self, left, right) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from stereo_derain_ros.bench.dds_rig import StampClock
        from stereo_derain_ros.bench.node_latency import StereoMonitor, StereoPlayer

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('stereo_derain_bench', context=self.context)
        self.player = StereoPlayer(self.node, INPUT_NAMESPACE, left, right)
        self.monitor = StereoMonitor(self.node, OUTPUT_NAMESPACE)
        self.stamps = StampClock()
        self.diagnostics: dict[str, str] = {}
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _on_diagnostics(self, message) -> None:
        for status in message.status:
            if NODE_UNDER_TEST in status.name:
                self.diagnostics = {item.key: item.value for item in status.values}

    def node_inference_ms(self) -> float | None:
        """Return the node's own mean inference time over its recent sets, if it said so."""
        value = self.diagnostics.get('inference_latency_mean_ms', 'n/a')
        return None if value == 'n/a' else float(value)

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=5)


class _ProcessUnderTest:
    """The node or relay in its own process, logging to a file, stopped with SIGINT."""

    def __init__(self, module: str, ros_args: list[str], log_path: Path,
                 threads: int | None = None) -> None:
        package_root = str(Path(__file__).resolve().parent.parent.parent)
        env = dict(os.environ)
        if threads:
            env['OMP_NUM_THREADS'] = str(threads)
        env['PYTHONPATH'] = os.pathsep.join(p for p in (package_root, env.get('PYTHONPATH'))
                                            if p)
        self.log_path = log_path
        self._log = log_path.open('w')
        self.process = subprocess.Popen([sys.executable, '-m', module, '--ros-args', *ros_args],
                                        stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def log_tail(self, lines: int = 5) -> str:
        text = self.log_path.read_text(errors='replace').strip().splitlines()
        return ' | '.join(text[-lines:]) or 'no output'

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _wait_until_flowing(rig: _Rig, under_test: _ProcessUnderTest, timeout_s: float) -> None:
    """Wait for discovery and the first complete output set (the node loads its engine first)."""
    from stereo_derain_ros.bench.node_latency import SECOND

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if under_test.process.poll() is not None:
            raise NodeBenchError(f'{under_test.log_path.stem} exited with status '
                                 f'{under_test.process.returncode}: {under_test.log_tail()}')
        if rig.player.subscribers_matched():
            stamp = rig.stamps.reserve(1, SECOND)
            rig.player.publish(stamp)
            answered_by = time.monotonic() + 2.0
            while time.monotonic() < answered_by and not rig.monitor.has(stamp):
                time.sleep(0.01)
            if rig.monitor.has(stamp):
                time.sleep(1.0)
                return
        else:
            time.sleep(0.2)
    raise NodeBenchError(f'{under_test.log_path.stem} gave no output within {timeout_s:.0f} s: '
                         f'{under_test.log_tail()}')


def _node_arguments(config: NodeBenchConfig) -> list[str]:
    parameters = {'model': config.model, 'device': config.device,
                  'precision': config.precision, 'output_namespace': OUTPUT_NAMESPACE}
    if config.weights:
        parameters['weights'] = config.weights
    else:
        parameters['allow_untrained_weights'] = 'true'
    remaps = [f'__node:={NODE_UNDER_TEST}'] + [f'{topic}:={INPUT_NAMESPACE}/{topic}'
                                               for topic in INPUT_TOPICS]
    return ([item for remap in remaps for item in ('-r', remap)]
            + [item for name, value in parameters.items() for item in ('-p', f'{name}:={value}')]
            + _reliable_inputs())


def _relay_arguments() -> list[str]:
    return ['-p', f'input_namespace:={INPUT_NAMESPACE}', '-p',
            f'output_namespace:={OUTPUT_NAMESPACE}', *_reliable_inputs()]


def _reliable_inputs() -> list[str]:
    """Override the node's (and the relay's) best-effort inputs to reliable.

    Fast DDS sends a large image as many UDP fragments; a best-effort subscriber in another
    process drops the whole image when one fragment is lost, which at 1280x720 rgb8 happened to
    nearly every left image here. Reliable delivery resends lost fragments, so the benchmark
    measures the node rather than loss in the default transport (the demo does the same).
    """
    return [item for topic in INPUT_TOPICS for item in (
        '-p', f'qos_overrides.{INPUT_NAMESPACE}/{topic}.subscription.reliability:=reliable')]


def _duration(config: NodeBenchConfig, rate_hz: float) -> float:
    return max(config.duration_s, config.min_sets_per_run / rate_hz)


def _scan(rig: _Rig, under_test: _ProcessUnderTest, config: NodeBenchConfig,
          rates: list[float], grace_s: float, stop_on_drops: bool,
          progress: Callable[[str], None]) -> list[dict]:
    from stereo_derain_ros.bench.dds_rig import run_at_rate

    rows = []
    for rate in rates:
        progress(f'{under_test.log_path.stem} at {format_number(rate)} Hz')
        run = run_at_rate(rig.player, rig.monitor, rig.stamps, rate, _duration(config, rate),
                          grace_s, under_test.process.pid)
        rows.append({**run.summary(), 'node_inference_mean_ms': rig.node_inference_ms()})
        if stop_on_drops and not kept_up(run.summary(), config.max_drop_rate):
            break
    return rows


def _soak(rig: _Rig, under_test: _ProcessUnderTest, config: NodeBenchConfig, rate_hz: float,
          grace_s: float) -> dict:
    from stereo_derain_ros.bench.dds_rig import run_at_rate

    run = run_at_rate(rig.player, rig.monitor, rig.stamps, rate_hz, config.soak_s, grace_s,
                      under_test.process.pid)
    settle_s = min(5.0, config.soak_s / 4)
    settled = [rss for t, rss in run.rss_mb if t >= settle_s]
    reference = settled[0] if settled else None
    return {**run.summary(), 'settle_s': settle_s, 'rss_samples_mb': run.rss_mb,
            'rss_reference_mb': reference,
            'rss_max_deviation_mb': (max(abs(rss - reference) for rss in settled)
                                     if settled else None)}


def run_node_bench(config: NodeBenchConfig, machine: dict,
                   progress: Callable[[str], None] = lambda text: None) -> dict:
    """Run the whole node benchmark and return the JSON-ready result."""
    from stereo_derain_ros.bench.sequence import rainy_stereo_sequence

    os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    progress('rendering a rainy stereo pair')
    (left, right), = rainy_stereo_sequence(config.width, config.height, 1)
    progress('timing the engine alone')
    engine = time_engine(config, left, right)
    rig = _Rig(left, right)
    try:
        with tempfile.TemporaryDirectory(prefix='stereo-derain-bench-') as logs:
            node = _ProcessUnderTest('stereo_derain_ros.node', _node_arguments(config),
                                     Path(logs) / 'node.log', config.threads)
            try:
                progress('starting the node')
                _wait_until_flowing(rig, node, config.startup_timeout_s)
                processing_hz, ping_ms = node_processing_rate(rig)
                grace_s = max(2.0, 5.0 / processing_hz)
                rates = scan_rates(processing_hz, config.rates_hz)
                node_rows = _scan(rig, node, config, rates, grace_s, True, progress)
                soak_rate = float(f'{config.soak_factor * processing_hz:.2g}')
                progress(f'memory soak at {format_number(soak_rate)} Hz for {config.soak_s:.0f} s')
                soak = _soak(rig, node, config, soak_rate, grace_s)
            finally:
                node.stop()
            passing = [row['rate_hz'] for row in node_rows
                       if kept_up(row, config.max_drop_rate)]
            relay_rates = passing or [node_rows[0]['rate_hz']]
            relay = _ProcessUnderTest('stereo_derain_ros.bench.relay', _relay_arguments(),
                                      Path(logs) / 'relay.log')
            try:
                progress('starting the relay (transport floor)')
                _wait_until_flowing(rig, relay, config.startup_timeout_s)
                relay_rows = _scan(rig, relay, config, relay_rates, 2.0, False, progress)
            finally:
                relay.stop()
    finally:
        rig.close()
    result = {
        'schema_version': 1, 'benchmark': 'node', 'machine': machine,
        'settings': asdict(config),
        'ros': {'domain_id': os.environ['ROS_DOMAIN_ID'],
                'rmw': os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp (default)')},
        'engine': engine, 'node_processing_hz': processing_hz, 'node_ping_ms': ping_ms,
        'node_runs': node_rows, 'relay_runs': relay_rows, 'soak': soak,
    }
    result['summary'] = summarise(result)
    result['targets'] = evaluate_targets(result)
    return result


def summarise(result: dict) -> dict:
    """Return the headline numbers: peak rate, and latency split up at the lowest rate.

    Overhead uses means throughout: the node's own inference mean (from its diagnostics, else
    the engine timed alone) and the relay's mean latency at the same rate.
    """
    settings = result['settings']
    node_rows, relay_rows = result['node_runs'], result['relay_runs']
    passing = [row for row in node_rows if kept_up(row, settings['max_drop_rate'])]
    lowest = node_rows[0]
    floor = next((row for row in relay_rows if row['rate_hz'] == lowest['rate_hz']), None)
    engine_ms = lowest.get('node_inference_mean_ms') or result['engine']['median_ms']
    overhead = None
    if floor and lowest['latency_mean_ms'] is not None and floor['latency_mean_ms'] is not None:
        overhead = lowest['latency_mean_ms'] - engine_ms - floor['latency_mean_ms']
    return {
        'model': settings['model'], 'size': f"{settings['width']}x{settings['height']}",
        'engine_alone_ms': result['engine']['median_ms'], 'engine_in_node_ms': engine_ms,
        'peak_rate_hz': max((row['rate_hz'] for row in passing), default=None),
        # No rate failed: the peak is at least this (the scan ends at 100 Hz or --rates).
        'peak_is_lower_bound': len(passing) == len(node_rows),
        'rate_hz': lowest['rate_hz'], 'latency_mean_ms': lowest['latency_mean_ms'],
        'latency_p50_ms': lowest['latency_p50_ms'], 'latency_p95_ms': lowest['latency_p95_ms'],
        'transport_floor_ms': floor['latency_mean_ms'] if floor else None,
        'overhead_ms': overhead,
        'soak_rss_max_deviation_mb': result['soak']['rss_max_deviation_mb'],
    }


def evaluate_targets(result: dict) -> list[dict]:
    """Check the node targets of the issue; say at which size they were measured."""
    summary, settings = result['summary'], result['settings']
    at_size = f" (measured at {summary['size']})" if summary['size'] != '1280x720' else ''
    overhead = summary['overhead_ms']
    deviation = summary['soak_rss_max_deviation_mb']
    return [
        {'target': 'node overhead ≤ 5 ms beyond the transport floor at 1280×720' + at_size,
         'measured': f'{overhead:.1f} ms' if overhead is not None else 'not measured',
         'met': None if overhead is None or at_size else overhead <= 5.0},
        {'target': f"memory flat (±50 MB) over a {settings['soak_s']:.0f} s run at "
                   f"{settings['soak_factor']:g}× the processing rate",
         'measured': f'max deviation {deviation:.1f} MB' if deviation is not None
         else 'not measured',
         'met': None if deviation is None else deviation <= 50.0},
    ]


def node_markdown(result: dict) -> str:
    """Render a `bench node` result as markdown."""
    from stereo_derain_ros.bench.model_bench import targets_table

    headers = ['process', 'rate Hz', 'sent', 'received', 'drops', 'throughput Hz',
               'latency mean ms', 'p50 ms', 'p95 ms', 'max ms', 'CPU % (of one core)',
               'RSS max MB']

    def cells(name: str, row: dict) -> list[str]:
        return [name, format_number(row['rate_hz']), str(row['sent']), str(row['received']),
                f"{row['drop_rate']:.1%}", format_number(row['throughput_hz']),
                format_number(row['latency_mean_ms']), format_number(row['latency_p50_ms']),
                format_number(row['latency_p95_ms']), format_number(row['latency_max_ms']),
                format_number(row['cpu_percent']), format_number(row['rss_max_mb'])]

    table = ([cells('derain node', row) for row in result['node_runs']]
             + [cells('relay (floor)', row) for row in result['relay_runs']]
             + [cells('derain node, memory soak', result['soak'])])
    summary, settings, engine = result['summary'], result['settings'], result['engine']
    weights = 'untrained' if engine['untrained'] else 'trained'
    lines = ['# Node benchmark (`stereo-derain bench node`)', '',
             machine_block(result['machine']), '',
             f"Model `{summary['model']}` ({weights} weights), "
             f"{summary['size']} rgb8 stereo sets (a pre-loaded rainy pair + camera_info, "
             'fresh stamps per set), published over DDS '
             f"({result['ros']['rmw']}, localhost) by a player; a monitor matches outputs "
             'to inputs by header stamp. Rates scan upwards until drops exceed '
             f"{settings['max_drop_rate']:.0%}. Engine alone on the same pair: "
             f"{format_number(engine['median_ms'])} ms per pair (median, {engine['device']}, "
             f"{engine['precision']}). Player, monitor, node and relay share the machine's "
             f"cores; torch threads in the node: {settings['threads'] or 'torch default'}.", '',
             markdown_table(headers, table), '',
             f"- Peak rate with ≤ {settings['max_drop_rate']:.0%} drops: "
             f"{'≥ ' if summary['peak_is_lower_bound'] else ''}"
             f"{format_number(summary['peak_rate_hz'])} Hz (scan from the node's own rate, "
             f"{format_number(result['node_processing_hz'])} Hz, one set at a time)",
             f"- At {format_number(summary['rate_hz'])} Hz: node latency mean "
             f"{format_number(summary['latency_mean_ms'])} ms = engine in the node "
             f"{format_number(summary['engine_in_node_ms'])} ms (its diagnostics) + transport "
             f"floor (relay mean) "
             f"{format_number(summary['transport_floor_ms'])} ms + node overhead "
             f"{format_number(summary['overhead_ms'])} ms",
             '', '## Targets', '', targets_table(result['targets']), '']
    return '\n'.join(lines)
