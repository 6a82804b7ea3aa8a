"""How fast the data layer feeds training: scenes and rain per pair, composition per batch.

Scenes and rain are rendered once into pools, so their cost is paid up front (and divided by the
render jobs); composition runs at every step, so it is what a training step can wait on. The
trainer logs that wait itself (`data_s` in loss.csv); given a run folder, the benchmark reports
it beside the step time measured in the same run.
"""

from dataclasses import dataclass
from pathlib import Path
import statistics
import time

import torch

from stereo_derain_ros.bench.results import format_number, markdown_table, report_head
from stereo_derain_ros.data.photos.library import PhotoLibrary
from stereo_derain_ros.data.pools import ComposedRainSource, PoolRecipe, render_pool
from stereo_derain_ros.data.rain_layers import RAIN_RENDERERS
from stereo_derain_ros.data.scene_sources import SCENE_SOURCES
from stereo_derain_ros.data.seeds import generator
from stereo_derain_ros.training.curves import read_csv


@dataclass(frozen=True)
class DataBenchConfig:
    """What `bench data` measures; `run` is a training run whose data wait is reported too.

    Scenes and rain are rendered at `size` (width, height); composition makes batches of `crop`
    (height, width) crops.
    """

    size: tuple[int, int] = (512, 256)
    repeats: int = 6
    batch: int = 8
    crop: tuple[int, int] = (128, 256)
    photos: Path | None = None
    run: Path | None = None


def _median_seconds(action, repeats: int) -> float:
    times = []
    for index in range(repeats):
        started = time.perf_counter()
        action(index)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def training_wait(run: Path) -> dict | None:
    """Return the median data wait and step time per step of a run's steady state."""
    rows = [row for row in read_csv(Path(run) / 'loss.csv') if row.get('data_s')]
    rows = rows[len(rows) // 4:]
    if not rows:
        return None
    waits = [float(row['data_s']) for row in rows]
    batch_seconds = [1.0 / float(row['pairs_per_s']) for row in rows]
    return {'run': str(run), 'rows': len(rows), 'first_step': int(rows[0]['step']),
            'data_s_per_step': statistics.median(waits),
            'seconds_per_pair': statistics.median(batch_seconds)}


def run_data_bench(config: DataBenchConfig, machine: dict) -> dict:
    """Measure every scene source, every rain renderer and the per-batch composition."""
    library = PhotoLibrary.open_or_builtin(config.photos, 'train')
    size = config.size
    scenes = {name: _median_seconds(
        lambda index, source=source: source(generator('synth', 0, index), *size, library),
        config.repeats) for name, source in SCENE_SOURCES.items()}
    rain = {name: _median_seconds(
        lambda index, render=render: render(generator('synth', 0, index), *size),
        config.repeats) for name, render in RAIN_RENDERERS.items()}
    pools = [render_pool(PoolRecipe(kind, 'train', 4, *size, 0, library.origin), library,
                         progress=False) for kind in ('scene', 'rain')]
    source = ComposedRainSource(*pools, seed=0)
    compose = _median_seconds(lambda index: source.batch(
        config.batch, config.crop, torch.Generator().manual_seed(index)), config.repeats)
    return {'schema_version': 1, 'benchmark': 'data', 'machine': machine,
            'config': {'size': list(size), 'batch': config.batch, 'crop': list(config.crop),
                       'repeats': config.repeats, 'photos': library.origin},
            'scene_s_per_pair': scenes, 'rain_s_per_pair': rain,
            'compose_s_per_batch': compose,
            'training_wait': training_wait(config.run) if config.run else None}


def data_markdown(result: dict) -> str:
    config = result['config']
    width, height = config['size']
    rows = [[f'scene: {name}', f'{format_number(seconds * 1000)} ms per pair']
            for name, seconds in result['scene_s_per_pair'].items()]
    rows += [[f'rain: {name}', f'{format_number(seconds * 1000)} ms per pair']
             for name, seconds in result['rain_s_per_pair'].items()]
    crop_h, crop_w = config['crop']
    rows.append([f'composition: batch {config["batch"]} of {crop_w}x{crop_h}',
                 f'{format_number(result["compose_s_per_batch"] * 1000)} ms per batch'])
    lines = [*report_head('Data layer', result['machine']),
             f'Scenes and rain at {width}x{height} on one thread, median of '
             f'{config["repeats"]}; photos: {config["photos"]}.', '',
             markdown_table(['stage', 'time'], rows)]
    wait = result.get('training_wait')
    if wait:
        step = wait['seconds_per_pair'] * config['batch']
        lines += ['', f'Training run `{wait["run"]}` ({wait["rows"]} log rows from step '
                      f'{wait["first_step"]}): the step waited '
                      f'{format_number(wait["data_s_per_step"] * 1000)} ms for its batch, '
                      f'{format_number(100 * wait["data_s_per_step"] / step)} % of a '
                      f'{format_number(step)} s step.']
    return '\n'.join(lines) + '\n'

