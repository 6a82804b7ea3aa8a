"""The demo's report folder: side-by-side frames, an animated GIF, metrics and `index.md`."""

import json
import math
from pathlib import Path

from PIL import Image, ImageDraw

from stereo_derain_ros.atomic import write_text_atomic
from stereo_derain_ros.demo.frames import DemoFrame, sample_indices
from stereo_derain_ros.demo.scoring import NODE
from stereo_derain_ros.evaluation.report import markdown_table, write_figure
from stereo_derain_ros.evaluation.runner import CLEAN, EvaluationResult, RAINY

LABELS = ('rainy', 'derained', 'clean')
LABEL_HEIGHT = 14
GAP = 4
GIF_MAX_WIDTH = 960


def side_by_side(frame: DemoFrame) -> Image.Image:
    """Return the left views rainy | derained | clean on one labelled canvas."""
    views = (frame.rainy[0], frame.derained[0], frame.clean[0])
    height, width = views[0].shape[:2]
    canvas = Image.new('RGB', (3 * width + 2 * GAP, height + LABEL_HEIGHT), 'white')
    draw = ImageDraw.Draw(canvas)
    for index, (label, view) in enumerate(zip(LABELS, views)):
        x = index * (width + GAP)
        canvas.paste(Image.fromarray(view), (x, LABEL_HEIGHT))
        draw.text((x + 2, 1), label, fill='black')
    return canvas


def write_images(frames: list[DemoFrame], out: Path, sample_count: int,
                 rate_hz: float) -> dict[str, list[Path] | Path]:
    """Write `frame_NN.png` for a few derained frames and `sequence.gif` of all of them."""
    numbered = [(number, frame) for number, frame in enumerate(frames)
                if frame.derained is not None]
    canvases = [side_by_side(frame) for _, frame in numbered]
    pngs = []
    for index in sample_indices(len(canvases), sample_count):
        path = out / f'frame_{numbered[index][0]:02d}.png'
        canvases[index].save(path)
        pngs.append(path)
    gif = out / 'sequence.gif'
    scale = min(1.0, GIF_MAX_WIDTH / canvases[0].width)
    size = (round(canvases[0].width * scale), round(canvases[0].height * scale))
    movie = [canvas.resize(size, Image.Resampling.LANCZOS) for canvas in canvases]
    movie[0].save(gif, save_all=True, append_images=movie[1:], loop=0,
                  duration=max(20, round(1000.0 / rate_hz)))
    return {'pngs': pngs, 'gif': gif}


def _fmt(value, pattern: str = '{:.1f}') -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return '–'
    return pattern.format(value)


def _pace_source(timing: dict) -> str:
    seconds = timing.get('node_seconds_per_set')
    if seconds is None:
        return ' (as asked)'
    return f' (paced from the node: {seconds:.2f} s per set, sent one at a time)'


def timing_markdown(timing: dict) -> str:
    """Return the node's latency and throughput as markdown bullet points."""
    latency = timing['latency_ms']
    diagnostics = timing['node_diagnostics']
    lines = [
        f'- sets replayed: {timing["sets_sent"]}, derained and recorded: '
        f'{timing["sets_derained"]}, dropped (newest wins): {timing["sets_dropped"]}',
        f'- replay pace: {timing["replay_rate"]:.3g}x the bag rate{_pace_source(timing)}, '
        f'{_fmt(timing["input_rate_hz"], "{:.2f}")} sets/s in; node throughput '
        f'{_fmt(timing["output_rate_hz"], "{:.2f}")} sets/s out',
        f'- latency, input on the wire -> both derained images received: mean '
        f'{_fmt(latency.get("mean"))} ms, p50 {_fmt(latency.get("p50"))} ms, p95 '
        f'{_fmt(latency.get("p95"))} ms, max {_fmt(latency.get("max"))} ms',
    ]
    if diagnostics:
        lines.append(
            f'- node /diagnostics (last): inference {diagnostics.get("inference_latency_mean_ms")}'
            f' ms mean ({diagnostics.get("inference_latency_p95_ms")} p95), in-node end to end '
            f'{diagnostics.get("end_to_end_latency_mean_ms")} ms mean, output rate '
            f'{diagnostics.get("output_rate_hz")} Hz, superseded '
            f'{diagnostics.get("superseded_sets")}, device {diagnostics.get("device")}, '
            f'precision {diagnostics.get("precision")}')
    lines.append('- node start-up (process start -> topics matched): '
                 f'{timing["node_ready_s"]:.1f} s')
    return '\n'.join(lines) + '\n'


def write_metrics(result: EvaluationResult, timing: dict, details: dict, out: Path,
                  ground_truth_note: str) -> dict[str, Path]:
    """Write metrics.md and metrics.json (means, per-frame scores, timing, run details)."""
    markdown = [
        '# Demo metrics', '',
        f'{len(result.samples)} of {timing["sets_derained"]} derained frames (spread over the '
        'sequence), scored against the clean reference. Image '
        'metrics average both views; SGBM (fixed settings, see docs/training.md) scores the left'
        f' view. {ground_truth_note} The "{CLEAN}" row is SGBM on the clean pair: the floor the '
        'disparity columns can reach.', '',
        summary_markdown(result), '',
        '## Node latency and throughput', '',
        timing_markdown(timing),
    ]
    paths = {'markdown': out / 'metrics.md', 'json': out / 'metrics.json'}
    write_text_atomic(paths['markdown'], '\n'.join(markdown))
    write_text_atomic(paths['json'], json.dumps(
        {'details': details, 'summary': result.summary(), 'frames': result.samples,
         'timing': timing},
        indent=1, sort_keys=True, default=str) + '\n')
    if result.figures:
        paths['disparity'] = out / 'sgbm_disparity.png'
        write_figure(result, paths['disparity'])
    return paths


def write_index(out: Path, details: dict, images: dict, metrics: dict[str, Path],
                summary_table: str, timing: dict, untrained: bool) -> Path:
    """Write index.md: what ran, what came out, and where each file is."""
    def link(path: Path) -> str:
        relative = path.relative_to(out)
        return f'[{relative}]({relative})'

    lines = ['# stereo-derain demo', '']
    if untrained:
        lines += ['> **UNTRAINED WEIGHTS**: the node ran a randomly initialised model, so the',
                  '> "derained" frames show the pipeline working, not rain removal.', '']
    lines += [f'- {key}: {value}' for key, value in details.items()]
    lines += ['', '## Frames (left view: rainy | derained | clean)', '']
    lines += [f'![{path.stem}]({path.name})' for path in images['pngs']]
    lines += ['', f'The whole sequence: {link(images["gif"])}', '',
              f'![sequence]({images["gif"].name})', '', '## Metrics', '', summary_table, '',
              f'Per-frame values: {link(metrics["json"])}; table and notes: '
              f'{link(metrics["markdown"])}.']
    if 'disparity' in metrics:
        lines += [f'SGBM disparity on rainy, derained and clean: {link(metrics["disparity"])}.']
    lines += ['', '## Node latency and throughput', '', timing_markdown(timing)]
    return write_text_atomic(out / 'index.md', '\n'.join(lines) + '\n')


def summary_markdown(result: EvaluationResult) -> str:
    """Return the metric means of the rainy input, the node and the clean pair's SGBM."""
    summary = result.summary()
    return markdown_table({name: summary[name] for name in (RAINY, NODE, CLEAN)
                           if name in summary})

