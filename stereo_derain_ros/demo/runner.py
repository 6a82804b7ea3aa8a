"""`run_demo`: the steps of the demo in order, each announced with one line."""

from collections.abc import Callable
import json
from pathlib import Path
import time

from stereo_derain_ros.atomic import write_text_atomic
from stereo_derain_ros.demo import DemoError
from stereo_derain_ros.demo.config import DemoConfig

STEPS = 4


def _rain_bag_config(config: DemoConfig, path: Path):
    from stereo_derain_ros.bagio.synthetic import RainBagConfig

    return RainBagConfig(output=path, **config.clip())


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


def _live(config: DemoConfig, bag: Path, weight_args: dict[str, object],
          echo: Callable[[str], None]):
    """Start the node, pace the replay from it, replay the bag and record the output."""
    from tqdm import tqdm

    from stereo_derain_ros.demo.frames import read_pairs
    from stereo_derain_ros.demo.live import Pacing, record_live_run
    from stereo_derain_ros.demo.node_process import (
        INPUT_NAMESPACE,
        isolate_ros_environment,
        node_command,
    )

    env = isolate_ros_environment()
    command = node_command(config, weight_args)
    echo(f'[2/{STEPS}] live: starting stereo_derain_node (ROS_DOMAIN_ID '
         f'{env["ROS_DOMAIN_ID"]}, log {config.output / "node.log"}), replaying the bag through '
         'it and recording its output')
    pacing = None
    if config.replay_rate is None:
        first_stamp, pair = next(iter(read_pairs(bag, INPUT_NAMESPACE).items()))
        pacing = Pacing(pair, config.rate_hz, first_stamp, lambda seconds, rate: echo(
            f'  pace: the node takes {seconds:.2f} s per set; replaying at {rate:.3g}x '
            f'({rate * config.rate_hz:.2f} sets/s)'))
    else:
        echo(f'  pace: replaying at {config.replay_rate:g}x as asked; sets the node cannot keep '
             'up with are superseded (newest wins) and counted')
    frame_count = _rain_bag_config(config, bag).frame_count
    with tqdm(total=frame_count, unit='set', desc='replay -> node') as bar:
        def progress(sent: int, derained: int) -> None:
            bar.update(sent - bar.n)
            bar.set_postfix_str(f'derained {derained}')

        run = record_live_run(
            bag, config.output / 'recorded_output', command, config.output / 'node.log', env,
            config.replay_rate, drain_timeout_s=10.0, pacing=pacing,
            ready_timeout_s=config.node_start_timeout_s, progress=progress)
    if not run.received:
        raise DemoError(f'the node published nothing for {len(run.sent)} replayed sets; see '
                        f'{config.output / "node.log"}')
    return run, command


def _score(config: DemoConfig, bag: Path, run, echo: Callable[[str], None]):
    from stereo_derain_ros.bagio.synthetic import scene_for
    from stereo_derain_ros.demo.frames import read_demo_frames
    from stereo_derain_ros.demo.scoring import frames_to_score, score_frames, timing_summary

    frames = read_demo_frames(bag, config.output / 'recorded_output')
    scored = frames_to_score(frames, config.scored_frames)
    echo(f'[3/{STEPS}] scoring {len(scored)} of {len(run.received)} derained sets against the '
         'clean reference')
    scene = scene_for(_rain_bag_config(config, bag))
    return frames, score_frames(scored, scene.disparity_left, config.sample_frames), \
        timing_summary(run)


def run_demo(config: DemoConfig, echo: Callable[[str], None] = print) -> Path:
    """Run the whole demo and return the path of the report's index.md."""
    from stereo_derain_ros.demo.node_process import weights_arguments
    from stereo_derain_ros.demo.report import (
        summary_markdown,
        write_images,
        write_index,
        write_metrics,
    )

    started = time.monotonic()
    weight_args, weights_description = weights_arguments(config)
    if config.untrained:
        echo('WARNING: running UNTRAINED weights: the report shows the pipeline, not deraining')
    config.output.mkdir(parents=True, exist_ok=True)
    marks = {'start': started}
    bag = ensure_demo_bag(config, echo)
    marks['bag'] = time.monotonic()
    run, command = _live(config, bag, weight_args, echo)
    marks['live'] = time.monotonic()
    frames, result, timing = _score(config, bag, run, echo)
    marks['scoring'] = time.monotonic()

    echo(f'[4/{STEPS}] writing the report to {config.output}')
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
    marks['report'] = time.monotonic()
    names = list(marks)
    step_seconds = {name: marks[name] - marks[previous]
                    for previous, name in zip(names, names[1:])}
    step_seconds['total'] = marks['report'] - started
    details['run time'] = f'{step_seconds["total"]:.0f} s'
    index = write_index(config.output, details, images, metrics, summary_markdown(result),
                        timing, config.untrained)
    stored = json.loads(metrics['json'].read_text())
    stored['step_seconds'] = step_seconds
    write_text_atomic(metrics['json'], json.dumps(stored, indent=1, sort_keys=True) + '\n')
    echo(f'done in {step_seconds["total"]:.0f} s; report: {index}')
    return index
