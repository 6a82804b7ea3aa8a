"""Evaluation reports: a markdown table, the full JSON, and a side-by-side PNG figure."""

import json
import math
from pathlib import Path

import numpy as np

from stereo_derain_ros.atomic import atomic_path, write_text_atomic
from stereo_derain_ros.evaluation.runner import CLEAN, EvaluationResult, RAINY, VEIL_ONLY

COLUMNS = (
    ('psnr', 'PSNR RGB (dB)', '{:.2f}'),
    ('ssim', 'SSIM RGB', '{:.4f}'),
    ('psnr_y', 'PSNR Y (dB)', '{:.2f}'),
    ('ssim_y', 'SSIM Y', '{:.4f}'),
    ('shift', 'mean shift (/255)', '{:+.2f}'),
    ('epe', 'SGBM EPE (px)', '{:.3f}'),
    ('bad3', 'SGBM bad-3px (%)', '{:.2f}'),
    ('density', 'SGBM density (%)', '{:.1f}'),
)
PERCENT = ('bad3', 'density')
VEIL_NOTE = (f' The "{VEIL_ONLY}" row scores the clean views under the rain\'s veil alone, the '
             'most a derainer that removes streaks but does not dehaze can reach.')
# PSNR of identical images is clamped at 200 dB: an input this close is the target (a rain-free
# pair), and a gain over it says nothing.
INPUT_IS_TARGET_DB = 100.0


def markdown_table(summary: dict[str, dict[str, float]]) -> str:
    """Return one row per method (and the clean pair's SGBM row), one column per metric."""
    header = '| method | ' + ' | '.join(title for _, title, _ in COLUMNS) + ' |'
    rule = '|---|' + '---:|' * len(COLUMNS)
    lines = [header, rule]
    for method, means in summary.items():
        if not means:
            continue
        cells = []
        for key, _, pattern in COLUMNS:
            value = means.get(key)
            if value is None or not math.isfinite(value):
                cells.append('–')
            else:
                cells.append(pattern.format(value * 100 if key in PERCENT else value))
        lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def per_pair_table(result: EvaluationResult) -> str:
    """Return each method's worst pair, which a mean over pairs hides (PSNR RGB, both views).

    Gains are over the rainy input of the same pair; on rain-free pairs (input = target) only
    the worst PSNR is shown.
    """
    rows = ['| method | worst pair PSNR (dB) | pairs at or above the input | worst gain (dB) |',
            '|---|---:|---:|---:|']
    for method in result.methods:
        if method == RAINY:
            continue
        pairs = [sample for sample in result.samples if 'psnr' in sample.get(method, {})]
        if not pairs:
            continue
        worst = min(sample[method]['psnr'] for sample in pairs)
        gains = [sample[method]['psnr'] - sample[RAINY]['psnr'] for sample in pairs
                 if sample.get(RAINY, {}).get('psnr', INPUT_IS_TARGET_DB) < INPUT_IS_TARGET_DB]
        above = f'{sum(gain >= 0 for gain in gains)} of {len(gains)}' if gains else '–'
        lowest = f'{min(gains):+.2f}' if gains else '–'
        rows.append(f'| {method} | {worst:.2f} | {above} | {lowest} |')
    return '\n'.join(rows) + '\n'


def write_report(result: EvaluationResult, out: Path, *, title: str,
                 details: dict) -> dict[str, Path]:
    """Write report.md, report.json and (when figures were kept) figure.png into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    paths = {'markdown': out / 'report.md', 'json': out / 'report.json'}
    lines = [f'# {title}', '']
    lines += [f'- {key}: {value}' for key, value in details.items()]
    lines += ['', f'{len(result.samples)} samples; image metrics average both views; SGBM '
              f'scores the left view against ground-truth disparity. The "{CLEAN}" row is '
              'SGBM on the clean pair, the reference for the disparity columns.'
              + (VEIL_NOTE if summary.get(VEIL_ONLY) else ''), '',
              markdown_table(summary), '', 'Per pair, PSNR RGB (both views averaged):', '',
              per_pair_table(result)]
    write_text_atomic(paths['markdown'], '\n'.join(lines))
    write_text_atomic(paths['json'], json.dumps(
        {'title': title, 'details': details, 'summary': summary, 'samples': result.samples},
        indent=1, sort_keys=True, default=float) + '\n')
    if result.figures:
        paths['figure'] = out / 'figure.png'
        write_figure(result, paths['figure'])
    return paths


def write_figure(result: EvaluationResult, path: Path) -> None:
    """Draw, per sample, rainy | derained | clean and the three SGBM disparity maps below."""
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot

    figures = result.figures
    height, width = figures[0].rainy.shape[:2]
    scale = 3.4 / width
    figure, axes = pyplot.subplots(2 * len(figures), 3, squeeze=False,
                                   figsize=(3 * 3.4, 2 * len(figures) * (height * scale + 0.35)))
    for row, item in enumerate(figures):
        vmax = float(item.num_disparities)
        images = (('rainy', item.rainy), ('derained', item.derained), ('clean', item.clean))
        disparities = (('SGBM on rainy', item.disparity_rainy),
                       ('SGBM on derained', item.disparity_derained),
                       ('SGBM on clean', item.disparity_clean))
        for column, (name, image) in enumerate(images):
            axes_ = axes[2 * row, column]
            axes_.imshow(image)
            axes_.set_title(f'#{item.index} {name}', fontsize=8)
        for column, (name, disparity) in enumerate(disparities):
            axes_ = axes[2 * row + 1, column]
            axes_.imshow(np.nan_to_num(disparity, nan=0.0), cmap='magma', vmin=0, vmax=vmax)
            axes_.set_title(name, fontsize=8)
    for axes_ in axes.flat:
        axes_.axis('off')
    figure.tight_layout(pad=0.3)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80, format='png')
    pyplot.close(figure)
