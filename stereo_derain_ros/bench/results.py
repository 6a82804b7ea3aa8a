"""Write benchmark results as JSON (the record) and markdown (for people), side by side.

Every results file starts with the machine and command that produced it, so a number copied
out of context can still be traced back to how it was measured.
"""

import json
from pathlib import Path

from stereo_derain_ros.atomic import write_text_atomic

SCHEMA_VERSION = 1
# Where `bench` commands write unless told otherwise: a git-ignored folder, so that a run never
# edits the committed results, which the README's performance section is checked against.
RESULTS_DIR = Path('bench_results')
# The committed results, rewritten only on request (`--update-docs`).
DOCS_RESULTS_DIR = Path('docs/benchmarks')


def results_dir(out_dir: Path | None, update_docs: bool) -> Path:
    """Return where results go: `out_dir` if given, the docs if asked, else RESULTS_DIR."""
    if out_dir is not None:
        return out_dir
    return DOCS_RESULTS_DIR if update_docs else RESULTS_DIR


def format_number(value: float | int | None, digits: int = 3) -> str:
    """Format a measurement compactly with `digits` significant digits; None reads as a dash."""
    if value is None:
        return '—'
    if isinstance(value, int):
        return f'{value:,}'
    if value == 0:
        return '0'
    magnitude = abs(value)
    if magnitude >= 10 ** digits:
        return f'{value:,.0f}'
    return f'{value:.{digits}g}' if magnitude >= 1e-3 else f'{value:.2e}'


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """Return a GitHub markdown table; cells are already formatted strings."""
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '|'.join('---' for _ in headers) + '|']
    lines += ['| ' + ' | '.join(cell.replace('|', '\\|') for cell in row) + ' |' for row in rows]
    return '\n'.join(lines)


def machine_block(machine: dict) -> str:
    """Return the markdown lines that say where, with what and how a result was produced."""
    gpu = machine.get('gpu') or 'none'
    lines = [
        f"- Machine: {machine['cpu']}, {machine['logical_cores']} logical cores "
        f"({machine['physical_cores']} physical), {machine['memory_gb']} GB RAM, GPU: {gpu}; "
        f"load average {machine['load_average_1m']} at the start",
        f"- Software: Python {machine['python']}, torch {machine['torch']} "
        f"({machine['torch_threads']} threads), stereo_derain_ros {machine['package_version']}, "
        f"commit `{machine['git_commit']}`",
        f"- Command: `{machine['command']}`",
        f"- Date: {machine['date_utc']}",
    ]
    return '\n'.join(lines)


def report_head(title: str, machine: dict) -> list[str]:
    """Return the opening lines of a markdown report: its title, then where it was measured."""
    return [f'# {title}', '', machine_block(machine), '']


def targets_section(targets: list[dict]) -> list[str]:
    """Return a report's targets with their measured values and a met / missed verdict."""
    verdict = {True: 'met', False: 'missed', None: 'not measured'}
    table = markdown_table(['target', 'measured', 'verdict'],
                           [[t['target'], t['measured'], verdict[t['met']]] for t in targets])
    return ['## Targets', '', table, '']


def write_results(result: dict, markdown: str, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.md` into `out_dir` (see `results_dir`); return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f'{stem}.json'
    markdown_path = out_dir / f'{stem}.md'
    write_text_atomic(json_path, json.dumps(result, indent=2, sort_keys=False) + '\n')
    write_text_atomic(markdown_path, markdown.rstrip('\n') + '\n')
    return json_path, markdown_path


def load_results(path: Path) -> dict:
    """Read a results JSON written by `write_results`, refusing other files with a clear error."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f'cannot read benchmark results {path}: {error}') from None
    if not isinstance(result, dict) or result.get('schema_version') != SCHEMA_VERSION:
        raise ValueError(f'{path} is not a stereo-derain benchmark result '
                         f'(expected schema_version {SCHEMA_VERSION})')
    return result
