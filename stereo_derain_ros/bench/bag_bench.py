"""`bench bag`: offline bag deraining against the engine alone, on the same frames.

The bag tool overlaps reading, deraining and writing in three threads; if it does that well,
its pairs/s approach the engine's own (target ≥ 0.9×). Both are timed in one process with one
engine, alternating, and the median of the repeats is kept, so a busy neighbour on shared cores
slows both sides alike.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
import statistics
import tempfile
import time

from stereo_derain_ros.bench.engine_settings import BenchEngineSettings
from stereo_derain_ros.bench.results import (
    format_number,
    markdown_table,
    report_head,
    targets_section,
)

LEFT_TOPIC = '/stereo/left/image_rect'
RIGHT_TOPIC = '/stereo/right/image_rect'
TARGET_RATIO = 0.9


@dataclass
class BagBenchConfig(BenchEngineSettings):
    """What `bench bag` measures, with the engine it runs; the CLI fills it from its flags."""

    width: int = 1280
    height: int = 720
    pairs: int = 20
    batch_size: int = 4
    repeats: int = 3
    preset: str = 'heavy'


def read_pairs(bag: Path) -> list[tuple]:
    """Decode every rainy left/right image pair of a make-bag bag, in stamp order."""
    from stereo_derain_ros.bagio.reading import open_bag, typestore
    from stereo_derain_ros.image_codec import decode_image

    store = typestore()
    views: dict[str, dict[int, object]] = {LEFT_TOPIC: {}, RIGHT_TOPIC: {}}
    with open_bag(bag) as reader:
        connections = [c for c in reader.connections if c.topic in views]
        for connection, timestamp, raw in reader.messages(connections=connections):
            message = store.deserialize_cdr(raw, connection.msgtype)
            array, _ = decode_image(message.height, message.width, message.encoding,
                                    message.step, message.is_bigendian, message.data)
            views[connection.topic][timestamp] = array.copy()
    stamps = sorted(set(views[LEFT_TOPIC]) & set(views[RIGHT_TOPIC]))
    return [(views[LEFT_TOPIC][stamp], views[RIGHT_TOPIC][stamp]) for stamp in stamps]


def _engine_pass(engine, pairs: list[tuple], batch_size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start:start + batch_size]
        engine.derain_batch([left for left, _ in batch], [right for _, right in batch], 'rgb')
    return time.perf_counter() - started


def _bag_pass(engine, config: BagBenchConfig, bag: Path, output: Path) -> tuple[float, int]:
    from stereo_derain_ros.bagio.derain import BagDerainConfig, derain_bag

    started = time.perf_counter()
    bag_config = BagDerainConfig(input=bag, output=output, topics=(LEFT_TOPIC, RIGHT_TOPIC),
                                 batch_size=config.batch_size, overwrite=True)
    summary = derain_bag(bag_config, engine.derain_batch)
    return time.perf_counter() - started, summary.pairs


def run_bag_bench(config: BagBenchConfig, machine: dict,
                  progress: Callable[[str], None] = lambda text: None) -> dict:
    """Make a rainy bag, then time the engine alone and the bag tool on it, alternating."""
    from stereo_derain_ros.bagio.synthetic import make_rain_bag, RainBagConfig
    from stereo_derain_ros.engine import DerainEngine

    runs = []
    with tempfile.TemporaryDirectory(prefix='stereo-derain-bench-bag-') as folder:
        bag = Path(folder) / 'rain'
        progress(f'making a {config.pairs}-pair {config.width}x{config.height} rainy bag')
        rate_hz = 10.0
        make_rain_bag(RainBagConfig(output=bag, duration_s=config.pairs / rate_hz,
                                    rate_hz=rate_hz, width=config.width, height=config.height,
                                    preset=config.preset))
        pairs = read_pairs(bag)
        engine = DerainEngine(config.engine_config())
        progress('warming up')
        _engine_pass(engine, pairs[:config.batch_size], config.batch_size)
        for repeat in range(config.repeats):
            progress(f'repeat {repeat + 1}/{config.repeats}: engine alone')
            engine_s = _engine_pass(engine, pairs, config.batch_size)
            progress(f'repeat {repeat + 1}/{config.repeats}: bag tool')
            bag_s, bag_pairs = _bag_pass(engine, config, bag, Path(folder) / 'derained')
            runs.append({'engine_s': engine_s, 'engine_pairs_per_s': len(pairs) / engine_s,
                         'bag_s': bag_s, 'bag_pairs': bag_pairs,
                         'bag_pairs_per_s': bag_pairs / bag_s})
    engine_rate = statistics.median(run['engine_pairs_per_s'] for run in runs)
    bag_rate = statistics.median(run['bag_pairs_per_s'] for run in runs)
    summary = {'model': engine.model_name, 'size': f'{config.width}x{config.height}',
               'pairs': len(pairs), 'batch_size': config.batch_size,
               'device': str(engine.device), 'precision': engine.precision,
               'engine_pairs_per_s': engine_rate, 'bag_pairs_per_s': bag_rate,
               'ratio': bag_rate / engine_rate}
    return {
        'schema_version': 1, 'benchmark': 'bag', 'machine': machine,
        'settings': asdict(config), 'runs': runs, 'summary': summary,
        'targets': [{'target': f'bag throughput ≥ {TARGET_RATIO}× engine throughput',
                     'measured': f"{summary['ratio']:.2f}×",
                     'met': summary['ratio'] >= TARGET_RATIO}],
    }


def bag_markdown(result: dict) -> str:
    """Render a `bench bag` result as markdown."""
    summary, settings = result['summary'], result['settings']
    table = [[str(index + 1), format_number(run['engine_pairs_per_s']),
              format_number(run['bag_pairs_per_s']),
              f"{run['bag_pairs_per_s'] / run['engine_pairs_per_s']:.2f}×"]
             for index, run in enumerate(result['runs'])]
    table.append(['median', format_number(summary['engine_pairs_per_s']),
                  format_number(summary['bag_pairs_per_s']), f"{summary['ratio']:.2f}×"])
    lines = [*report_head('Bag benchmark (`stereo-derain bench bag`)', result['machine']),
             f"A {summary['pairs']}-pair {summary['size']} rainy bag from `stereo-derain "
             f"make-bag` (preset {settings['preset']}, MCAP, clean reference topics included) is "
             f"derained by the bag tool (`derain_bag`, batches of {summary['batch_size']}, "
             f"model `{summary['model']}` on {summary['device']} {summary['precision']}), and the "
             'same decoded pairs go through `engine.derain_batch` alone with the same batches; '
             'the two alternate, one engine serves both; torch threads: '
             f"{settings['threads'] or 'torch default'}.", '',
             markdown_table(['repeat', 'engine pairs/s', 'bag pairs/s', 'bag ÷ engine'], table),
             '', *targets_section(result['targets'])]
    return '\n'.join(lines)
