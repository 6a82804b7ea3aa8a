"""`run_demo`: the steps of the demo in order, each announced with one line."""

from collections.abc import Callable
import json
from pathlib import Path
import time

import numpy as np

from stereo_derain_ros.demo import DemoError
from stereo_derain_ros.demo.config import DemoConfig

STEPS = 5
# Publish a set only every HEADROOM x the engine's time per pair: the node also decodes, copies
# and publishes, and the replayer and recorder share the same cores, so on a quiet 2-core machine
# the node's inference measured about 4x the in-process probe (1.6x dropped 21 of 30 sets).
HEADROOM = 5.0
PROBE_RUNS = 3


def _rain_bag_config(config: DemoConfig, path: Path):
    from stereo_derain_ros.bagio.synthetic import RainBagConfig

    return RainBagConfig(output=path, duration_s=config.duration_s, rate_hz=config.rate_hz,
                         width=config.width, height=config.height, preset=config.preset,
                         seed=config.seed)


def ensure_demo_bag(config: DemoConfig, echo: Callable[[str], None]) -> Path:
    """Return the rainy demo bag, rendering it unless this configuration's bag is cached."""
    from tqdm import tqdm

    from stereo_derain_ros.bagio import BagError
    from stereo_derain_ros.bagio.synthetic import make_rain_bag

    path = config.output / config.bag_name
    if (path / 'metadata.yaml').is_file():
        echo(f'[1/{STEPS}] rainy demo bag: reusing {path}')
        return path
    echo(f'[1/{STEPS}] rainy demo bag: rendering {path}')
    try:
        bag_config = _rain_bag_config(config, path)
        with tqdm(total=bag_config.frame_count, unit='frame', desc='render') as bar:
            make_rain_bag(bag_config, lambda done, total: bar.update(done - bar.n))
    except BagError as error:
        raise DemoError(str(error)) from None
    return path


def engine_seconds_per_pair(config: DemoConfig, left: np.ndarray, right: np.ndarray) -> float:
    """Time the node's engine settings on one pair in this process (median of a few runs)."""
    from stereo_derain_ros.engine import DerainEngine, EngineConfig

    engine = DerainEngine(EngineConfig.from_options(
        model=config.model, weights=config.weights, untrained=config.untrained,
        device=config.device, warmup_shape=None))
    engine.derain(left, right)
    times = []
    for _ in range(PROBE_RUNS):
        started = time.perf_counter()
        engine.derain(left, right)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def run_demo(config: DemoConfig, echo: Callable[[str], None] = print) -> Path:
    """Run the whole demo and return the path of the report's index.md."""
    from tqdm import tqdm

    from stereo_derain_ros.bagio.synthetic import scene_for
    from stereo_derain_ros.demo.frames import read_demo_frames, read_pairs
    from stereo_derain_ros.demo.live import record_live_run
    from stereo_derain_ros.demo.node_process import (
        isolate_ros_environment,
        node_command,
        weights_arguments,
    )
    from stereo_derain_ros.demo.report import (
        summary_markdown,
        write_images,
        write_index,
        write_metrics,
    )
    from stereo_derain_ros.demo.scoring import frames_to_score, score_frames, timing_summary

    started = time.monotonic()
    weight_args, weights_description = weights_arguments(config)
    if config.untrained:
        echo('WARNING: running UNTRAINED weights: the report shows the pipeline, not deraining')
    config.output.mkdir(parents=True, exist_ok=True)
    step_seconds = {}
    bag = ensure_demo_bag(config, echo)
    step_seconds['bag'] = time.monotonic() - started

    mark = time.monotonic()
    replay_rate = config.replay_rate
    if replay_rate is None:
        left, right = next(iter(read_pairs(bag, '/stereo').values()))
        seconds = engine_seconds_per_pair(config, left, right)
        replay_rate = min(1.0, 1.0 / (HEADROOM * seconds * config.rate_hz))
        echo(f'[2/{STEPS}] pace: the engine takes {seconds:.2f} s per pair here; replaying at '
             f'{replay_rate:.3g}x ({replay_rate * config.rate_hz:.2f} sets/s)')
    else:
        seconds = 1.0 / config.rate_hz
        echo(f'[2/{STEPS}] pace: replaying at {replay_rate:g}x as asked; sets the node cannot '
             'keep up with are dropped (newest wins) and counted')
    step_seconds['pace'] = time.monotonic() - mark

    mark = time.monotonic()
    env = isolate_ros_environment()
    command = node_command(config, weight_args)
    echo(f'[3/{STEPS}] live: starting stereo_derain_node (ROS_DOMAIN_ID '
         f'{env["ROS_DOMAIN_ID"]}, log {config.output / "node.log"}), replaying the bag through '
         'it and recording its output')
    frame_count = _rain_bag_config(config, bag).frame_count
    with tqdm(total=frame_count, unit='set', desc='replay -> node') as bar:
        def progress(sent: int, derained: int) -> None:
            bar.update(sent - bar.n)
            bar.set_postfix_str(f'derained {derained}')

        run = record_live_run(
            bag, config.output / 'recorded_output', command, config.output / 'node.log', env,
            replay_rate, drain_timeout_s=max(5.0, 4.0 * seconds),
            ready_timeout_s=config.node_start_timeout_s, progress=progress)
    step_seconds['live'] = time.monotonic() - mark
    if not run.received:
        raise DemoError(f'the node published nothing for {len(run.sent)} replayed sets; see '
                        f'{config.output / "node.log"}')

    mark = time.monotonic()
    frames = read_demo_frames(bag, config.output / 'recorded_output')
    scored = frames_to_score(frames, config.scored_frames)
    echo(f'[4/{STEPS}] scoring {len(scored)} of {len(run.received)} derained sets against the '
         'clean reference')
    scene = scene_for(_rain_bag_config(config, bag))
    result = score_frames(scored, scene.disparity_left, config.sample_frames)
    timing = timing_summary(run)
    step_seconds['scoring'] = time.monotonic() - mark

    mark = time.monotonic()
    echo(f'[5/{STEPS}] writing the report to {config.output}')
    details = {
        'input bag': f'{bag.name}: {len(frames)} sets {config.width}x{config.height} at '
                     f'{config.rate_hz:g} Hz, preset {config.preset}, seed {config.seed}',
        'model': config.model, 'weights': weights_description, 'device': config.device,
        'node command': 'python ' + ' '.join(command[1:]),
        'recorded output bag': 'recorded_output/ (derained images, camera_info, /diagnostics)',
    }
    images = write_images(frames, config.output, config.sample_frames, config.rate_hz)
    metrics = write_metrics(result, timing, details, config.output,
                            'Ground-truth disparity: the Middlebury scene scaled and cropped as '
                            'the bag was rendered.')
    step_seconds['report'] = time.monotonic() - mark
    step_seconds['total'] = time.monotonic() - started
    details['run time'] = f'{step_seconds["total"]:.0f} s'
    index = write_index(config.output, details, images, metrics, summary_markdown(result),
                        timing, config.untrained)
    stored = json.loads(metrics['json'].read_text())
    stored['step_seconds'] = step_seconds
    metrics['json'].write_text(json.dumps(stored, indent=1, sort_keys=True) + '\n')
    echo(f'done in {step_seconds["total"]:.0f} s; report: {index}')
    return index
