"""Generate the README's performance section from the committed benchmark JSON.

The README quotes numbers only through this generator, so the section can be checked against
`docs/benchmarks/*.json` (`stereo-derain bench report --check`) and never drifts from them.
The section lives between START_MARKER and END_MARKER; everything else in the README is kept.
"""

from pathlib import Path

from stereo_derain_ros.bench.results import format_number, load_results, markdown_table
from stereo_derain_ros.engine.config import DEFAULT_MODEL

START_MARKER = '<!-- perf:start -->'
END_MARKER = '<!-- perf:end -->'
REFERENCE_MODEL = 'apanet'


class ReadmeSectionError(ValueError):
    """The README's markers are missing or malformed."""


def replace_section(text: str, section: str) -> str:
    """Return `text` with the content between the perf markers replaced by `section`."""
    start, end = text.count(START_MARKER), text.count(END_MARKER)
    if start != 1 or end != 1:
        raise ReadmeSectionError(
            f'expected exactly one {START_MARKER} and one {END_MARKER} in the README, found '
            f'{start} and {end}')
    head, rest = text.split(START_MARKER)
    old, tail = rest.split(END_MARKER)
    if '\n' not in old and old.strip():
        raise ReadmeSectionError(f'{START_MARKER} and {END_MARKER} must be on their own lines')
    return f'{head}{START_MARKER}\n{section.strip()}\n{END_MARKER}{tail}'


def _machine_line(result: dict) -> str:
    machine = result['machine']
    device = machine.get('gpu') or f"{machine['cpu']} ({machine['logical_cores']} cores)"
    return (f"{device}, torch {machine['torch']}, commit `{(machine['git_commit'] or '?')[:12]}`"
            f", `{machine['command']}`")


def _row_label(row: dict) -> str:
    if row['attention'] == 'banded':
        return f"{row['model']} (banded d={row['max_disparity']})"
    if row['attention'] == 'unbanded':
        return f"{row['model']} (unbanded)"
    return row['model']


def _model_cell(row: dict) -> str:
    if row['status'] == 'ok':
        ratio = f" ({row['vs_apanet']:.2f}×)" if row.get('vs_apanet') else ''
        return f"{format_number(row['median_ms'])} ms{ratio}"
    return 'does not fit' if row['status'] == 'does_not_fit' else 'failed'


def models_summary(result: dict) -> list[str]:
    """Return README lines: time per pair for each model and size, and the headline ratios."""
    rows = [row for row in result['rows'] if not row['compile']]
    settings = [(row['device'], row['dtype']) for row in rows]
    device, dtype = settings[0] if settings else (result['settings']['device'], 'fp32')
    rows = [row for row in rows if (row['device'], row['dtype']) == (device, dtype)]
    sizes = list(dict.fromkeys(row['size'] for row in rows))
    labels = list(dict.fromkeys(_row_label(row) for row in rows))
    cells = {(_row_label(row), row['size']): _model_cell(row) for row in rows}
    table = markdown_table(['model', *[f'{size} ms/pair' for size in sizes]],
                           [[label, *[cells.get((label, size), '—') for size in sizes]]
                            for label in labels])
    gaps = ', '.join(sorted({f"{item['device']} {item['dtype']}" for item in
                             result.get('not_measured', [])}))
    lines = [f'**Models** ({device} {dtype}, median time per stereo pair, batch 1; in brackets: '
             f'time relative to {REFERENCE_MODEL} with the same attention). '
             f'{_machine_line(result)}, load average {result["machine"]["load_average_1m"]} at '
             'the start:', '', table, '']
    if gaps:
        lines += [f'GPU rows ({gaps}, with and without torch.compile): not measured (no GPU in '
                  'this run).', '']
    lines += headline_ratios(rows)
    return lines


def headline_ratios(rows: list[dict]) -> list[str]:
    """Return bullets comparing the default model with apanet as published (unbanded)."""
    lines = []
    measured = {(row['model'], row['attention'], row['size']): row for row in rows
                if row['status'] == 'ok'}
    for size in dict.fromkeys(row['size'] for row in rows):
        ours = measured.get((DEFAULT_MODEL, 'banded', size))
        published = measured.get((REFERENCE_MODEL, 'unbanded', size))
        banded = measured.get((REFERENCE_MODEL, 'banded', size))
        if ours and published:
            lines.append(f'- {size}: {DEFAULT_MODEL} (banded) is '
                         f'{_speed(ours, published)} {REFERENCE_MODEL} as published (unbanded).')
        elif ours and banded:
            lines.append(f'- {size}: {REFERENCE_MODEL} unbanded does not fit; '
                         f'{DEFAULT_MODEL} (banded) is {_speed(ours, banded)} '
                         f'{REFERENCE_MODEL} banded.')
    return lines + ([''] if lines else [])


def _speed(ours: dict, reference: dict) -> str:
    ratio = reference['median_ms'] / ours['median_ms']
    return f'{ratio:.1f}× faster than' if ratio >= 1 else f'{1 / ratio:.1f}× slower than'


def node_summary(result: dict) -> list[str]:
    """Return README lines for the node benchmark (see `node_report.readme_lines`)."""
    from stereo_derain_ros.bench.node_report import readme_lines

    return readme_lines(result, _machine_line(result))


def bag_summary(result: dict) -> list[str]:
    """Return README lines for the bag benchmark: offline throughput against the engine."""
    summary = result['summary']
    return [f"**Bag** ({summary['model']} at {summary['size']}, {summary['pairs']} pairs, "
            f"{_machine_line(result)}): {format_number(summary['bag_pairs_per_s'])} pairs/s "
            f"offline against {format_number(summary['engine_pairs_per_s'])} pairs/s for the "
            f"engine alone ({summary['ratio']:.2f}×, target ≥ 0.9×).", '']


def generate_section(results_dir: Path) -> str:
    """Build the performance section from `models.json`, `node.json` and `bag.json`."""
    results_dir = Path(results_dir)
    lines = ['## Performance', '',
             '_Generated by `stereo-derain bench report` from `docs/benchmarks/*.json`; full '
             'tables, targets and methods in `docs/benchmarks/*.md`._', '']
    for stem, summarise in (('models', models_summary), ('node', node_summary),
                            ('bag', bag_summary)):
        path = results_dir / f'{stem}.json'
        if path.is_file():
            lines += summarise(load_results(path))
        else:
            lines += [f'**{stem.capitalize()}**: not measured yet '
                      f'(run `stereo-derain bench {stem}`).', '']
    return '\n'.join(lines).strip()
