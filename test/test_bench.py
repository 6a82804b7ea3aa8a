"""`stereo-derain bench`: each benchmark runs for real at a tiny size and writes what it claims."""

import json
import os
from pathlib import Path
import subprocess
import sys

import pytest

from stereo_derain_ros.bench.isolated import OK, OUT_OF_MEMORY, run_isolated
from stereo_derain_ros.bench.readme_section import (
    END_MARKER,
    generate_section,
    ReadmeSectionError,
    replace_section,
    START_MARKER,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def stereo_derain(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI from this checkout as a user would."""
    return subprocess.run([sys.executable, '-m', 'stereo_derain_ros', *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, 'PYTHONPATH': str(REPO_ROOT)})


def git_status() -> str:
    return subprocess.run(['git', 'status', '--porcelain', '--untracked-files=all'],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope='module')
def models_run() -> tuple[Path, str, str]:
    """Run `bench models` from the repository root without --out-dir, as a user would."""
    before = git_status()
    result = stereo_derain('bench', 'models', '--quick', '--sizes', '64x32,128x32',
                           '--models', 'bandnet,bandnet_mono', '--attention', 'banded',
                           '--warmup', '0', '--repeats', '1', '--threads', '1')
    assert result.returncode == 0, result.stderr
    return REPO_ROOT / 'bench_results', before, git_status()


@pytest.fixture(scope='module')
def models_results(models_run) -> Path:
    return models_run[0]


@pytest.mark.slow
def test_bench_with_defaults_leaves_the_checkout_unchanged(models_run):
    out_dir, before, after = models_run
    assert (out_dir / 'models.json').is_file()
    assert after == before


@pytest.mark.slow
def test_bench_models_writes_json_and_markdown(models_results):
    result = json.loads((models_results / 'models.json').read_text())
    assert result['benchmark'] == 'models'
    for key in ('cpu', 'logical_cores', 'torch', 'git_commit', 'command', 'date_utc'):
        assert key in result['machine']
    assert result['machine']['command'].startswith('stereo-derain bench models --quick')
    rows = result['rows']
    assert {(row['model'], row['size'], row['attention']) for row in rows} == {
        ('bandnet', '64x32', 'banded'), ('bandnet', '128x32', 'banded'),
        ('bandnet_mono', '64x32', 'none'), ('bandnet_mono', '128x32', 'none')}
    for row in rows:
        assert row['status'] == OK, row
        assert row['params'] > 0 and row['macs'] > 0
        assert row['median_ms'] > 0 and row['peak_memory_mb'] > 0
        assert 0 < row['floor_ms']
        assert row['vs_apanet'] is None  # apanet was not part of this run
    assert result['matmul_throughput']['fp32']['macs_per_s'] > 0
    assert any('doubling width 64→128' in target['target'] for target in result['targets'])
    if not result['machine']['gpu']:
        assert {item['dtype'] for item in result['not_measured']} == {'fp32', 'fp16', 'bf16'}
    markdown = (models_results / 'models.md').read_text()
    assert result['machine']['command'] in markdown
    assert 'not measured (no GPU in this run)' in markdown or result['machine']['gpu']


def test_oversized_row_is_reported_as_not_fitting():
    spec = {'device': 'cpu', 'dtype': 'fp32', 'size': 40_000, 'warmup': 0, 'repeats': 1}
    outcome = run_isolated('stereo_derain_ros.bench.timing:matmul_throughput', spec,
                           memory_limit_bytes=3 * 2**30, timeout_s=120)
    assert outcome['status'] == OUT_OF_MEMORY
    assert 'allocate' in outcome['error']


@pytest.mark.slow
def test_report_round_trips_through_the_readme(models_results, tmp_path):
    section = generate_section(models_results)
    assert 'bandnet (banded d=24)' in section
    assert 'Node**: not measured yet' in section
    readme = tmp_path / 'README.md'
    readme.write_text(f'# Title\n\nintro\n\n{START_MARKER}\nold numbers\n{END_MARKER}\n\nrest\n')
    written = stereo_derain('bench', 'report', '--results-dir', str(models_results),
                            '--readme', str(readme))
    assert written.returncode == 0, written.stderr
    text = readme.read_text()
    assert f'{START_MARKER}\n{section.strip()}\n{END_MARKER}' in text
    assert text.startswith('# Title\n\nintro\n\n') and text.endswith('\n\nrest\n')
    assert replace_section(text, section) == text
    check = stereo_derain('bench', 'report', '--results-dir', str(models_results), '--readme',
                          str(readme), '--check')
    assert check.returncode == 0, check.stdout
    readme.write_text(text.replace('bandnet (banded', 'bandnet (edited'))
    stale = stereo_derain('bench', 'report', '--results-dir', str(models_results), '--readme',
                          str(readme), '--check')
    assert stale.returncode == 1
    assert 'out of date' in stale.stdout


def test_readme_without_markers_is_refused():
    with pytest.raises(ReadmeSectionError, match='perf:start'):
        replace_section('# README without a performance section\n', 'numbers')


def test_bad_arguments_are_one_line_errors():
    unknown = stereo_derain('bench', 'models', '--models', 'nosuchnet', '--out-dir', '/tmp/x')
    assert unknown.returncode == 2
    assert "unknown model 'nosuchnet'; available: apanet" in unknown.stderr
    assert 'Traceback' not in unknown.stderr
    bad_size = stereo_derain('bench', 'models', '--sizes', '640by360')
    assert bad_size.returncode == 2
    assert 'WIDTHxHEIGHT' in bad_size.stderr
    half = stereo_derain('bench', 'models', '--device', 'cpu', '--dtypes', 'fp32,fp16')
    assert half.returncode == 2
    assert 'on this CPU runs fp32' in half.stderr and 'fp16 runs on CUDA' in half.stderr


@pytest.mark.slow
def test_bench_node_measures_node_and_relay_over_dds(tmp_path):
    result = stereo_derain('bench', 'node', '--quick', '--size', '64x32', '--pings', '2',
                           '--duration', '2', '--soak', '4', '--out-dir', str(tmp_path))
    assert result.returncode == 0, result.stderr + result.stdout
    node = json.loads((tmp_path / 'node.json').read_text())
    assert node['benchmark'] == 'node'
    assert [row['size'] for row in node['node_runs']] == ['64x32']
    (node_run,), (relay_run,) = node['node_runs'], node['relay_runs']
    assert len(node_run['ping_latencies_ms']) == len(relay_run['ping_latencies_ms']) == 2
    for row in (node_run['transport'], node_run['soak'], relay_run['transport']):
        assert row['sent'] >= 20 and row['received'] >= 1, row
        assert 0 < row['latency_p50_ms'] <= row['latency_max_ms']
        assert row['rss_max_mb'] > 0
    assert sum(node_run['transport']['node_received'].values()) > 0
    summary = node['summary']
    assert summary['lost_in_transport'] == 0
    for key in ('relay_floor_p50_ms', 'overhead_p50_ms', 'soak_rss_growth_mb'):
        assert summary[key] is not None, key
    assert [target['met'] is not None for target in node['targets']] == [True] * 5
    phases = summary['sizes'][0]['phases_p50_ms']
    assert all(phases[name] is not None and phases[name] >= 0 for name in phases), phases
    assert phases['inference'] == summary['sizes'][0]['inference_p50_ms']
    markdown = (tmp_path / 'node.md').read_text()
    assert 'relay floor p50 ms' in markdown and 'publish p50 ms' in markdown


@pytest.mark.slow
def test_bench_bag_compares_bag_tool_with_engine(tmp_path):
    result = stereo_derain('bench', 'bag', '--quick', '--size', '64x32', '--pairs', '4',
                           '--repeats', '1', '--out-dir', str(tmp_path))
    assert result.returncode == 0, result.stderr
    bag = json.loads((tmp_path / 'bag.json').read_text())
    assert bag['benchmark'] == 'bag'
    assert bag['summary']['pairs'] == 4
    assert [run['bag_pairs'] for run in bag['runs']] == [4]
    assert bag['summary']['engine_pairs_per_s'] > 0 and bag['summary']['bag_pairs_per_s'] > 0
    assert bag['summary']['ratio'] == pytest.approx(
        bag['summary']['bag_pairs_per_s'] / bag['summary']['engine_pairs_per_s'])
    section = generate_section(tmp_path)
    assert 'pairs/s offline against' in section
    assert 'Models**: not measured yet' in section


def test_committed_results_and_readme_agree():
    result = stereo_derain('bench', 'report', '--check')
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_bench_models_compares_onnxruntime_with_torch(tmp_path):
    result = stereo_derain('bench', 'models', '--quick', '--sizes', '64x32', '--models',
                           'bandnet', '--attention', 'banded', '--backends', 'torch,onnxruntime',
                           '--warmup', '0', '--repeats', '1', '--out-dir', str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / 'models.json').read_text())['rows']
    assert [(row['backend'], row['status']) for row in rows] == [('torch', OK),
                                                                  ('onnxruntime', OK)]
    assert rows[1]['providers'] == ['CPUExecutionProvider']
    assert rows[1]['speedup_vs_torch'] == pytest.approx(
        rows[0]['median_ms'] / rows[1]['median_ms'])
    assert '× torch speed' in (tmp_path / 'models.md').read_text()


def test_bench_data_times_every_source_renderer_and_the_training_wait(tmp_path):
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'loss.csv').write_text('step,loss,lr,crop,pairs_per_s,data_s\n' + ''.join(
        f'{10 * step},0.1,1e-3,32x64,4.0,0.02\n' for step in range(1, 9)))
    result = stereo_derain('bench', 'data', '--quick', '--repeats', '1', '--out-dir',
                           str(tmp_path / 'out'), '--training-run', str(run))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / 'out' / 'data.json').read_text())
    assert set(data['scene_s_per_pair']) == {'photo-layers', 'dead-leaves', 'procedural',
                                             'motorcycle'}
    assert set(data['rain_s_per_pair']) == {'layered', 'particles'}
    assert all(value > 0 for value in data['scene_s_per_pair'].values())
    assert data['compose_s_per_batch'] > 0
    assert data['training_wait']['data_s_per_step'] == pytest.approx(0.02)
    assert '% of a 2 s step' in (tmp_path / 'out' / 'data.md').read_text()
