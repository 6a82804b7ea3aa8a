"""`bench models`: every registry model side by side, banded vs unbanded attention, one run.

Each row runs in its own memory-capped child (see `isolated`), so rows that do not fit are
reported as such and peak memory is per row. The floor column is the time the row's MACs would
take at the device's measured large-matmul throughput: how far a model is from its compute bound.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
import tempfile

from stereo_derain_ros.bench.isolated import OK, OUT_OF_MEMORY, run_isolated
from stereo_derain_ros.bench.onnx_row import export_graphs, graph_path
from stereo_derain_ros.bench.results import (
    format_number,
    markdown_table,
    report_head,
    targets_section,
)
from stereo_derain_ros.engine.config import DEFAULT_MODEL

REFERENCE_MODEL = 'apanet'
FULL_SIZES = ((640, 360), (1280, 360), (1242, 375), (1280, 720))
QUICK_SIZES = ((128, 64), (256, 64))
GPU_DTYPES = ('fp32', 'fp16', 'bf16')
NO_GPU = 'not measured (no GPU in this run)'
MATMUL_SIDE = {'cpu': 2048, 'cuda': 8192}


@dataclass
class ModelBenchConfig:
    """What `bench models` measures; the CLI fills it from its flags."""

    models: list[str]
    sizes: list[tuple[int, int]] = field(default_factory=lambda: list(FULL_SIZES))
    attention: list[str] = field(default_factory=lambda: ['banded', 'unbanded'])
    max_disparity: int = 192
    device: str = 'cpu'
    dtypes: list[str] = field(default_factory=lambda: ['fp32'])
    compile_modes: list[bool] = field(default_factory=lambda: [False])
    warmup: int = 2
    repeats: int = 5
    threads: int | None = None
    memory_limit_gb: float | None = None
    row_timeout_s: float = 600.0
    gpu_available: bool = False
    backends: list[str] = field(default_factory=lambda: ['torch'])


def has_cross_view_attention(name: str) -> bool:
    """Tell whether a model has parallax attention, i.e. whether banding changes it."""
    from stereo_derain_ros.models import build_model, ParallaxModule

    return any(isinstance(module, ParallaxModule) for module in build_model(name).modules())


def plan_rows(config: ModelBenchConfig) -> list[dict]:
    """Return one spec per row: size × model × attention mode × dtype × compile × backend.

    onnxruntime rows run the fp32 graph uncompiled only (its own optimiser replaces both).
    """
    cross_view = {name: has_cross_view_attention(name) for name in config.models}
    rows = []
    for width, height in config.sizes:
        for name in config.models:
            modes = config.attention if cross_view[name] else ['none']
            for mode in modes:
                for dtype in config.dtypes:
                    for compiled in config.compile_modes:
                        rows += [{
                            'model': name, 'attention': mode,
                            'max_disparity': config.max_disparity if mode == 'banded' else None,
                            'width': width, 'height': height, 'device': config.device,
                            'dtype': dtype, 'compile': compiled, 'warmup': config.warmup,
                            'repeats': config.repeats, 'threads': config.threads,
                            'backend': backend,
                        } for backend in config.backends
                            if backend == 'torch' or (dtype == 'fp32' and not compiled)]
    return rows


def measure_throughput(config: ModelBenchConfig) -> dict[str, dict]:
    """Measure the large-matmul MAC/s of the device for each dtype benchmarked."""
    throughput = {}
    for dtype in config.dtypes:
        spec = {'device': config.device, 'dtype': dtype, 'size': MATMUL_SIDE[config.device],
                'warmup': 1, 'repeats': 5, 'threads': config.threads}
        outcome = run_isolated('stereo_derain_ros.bench.timing:matmul_throughput', spec,
                               _memory_limit(config), config.row_timeout_s)
        if outcome['status'] != OK:
            raise RuntimeError(f'matmul throughput measurement failed: {outcome.get("error")}')
        throughput[dtype] = outcome
    return throughput


def _memory_limit(config: ModelBenchConfig) -> int | None:
    # RLIMIT_AS breaks CUDA, which maps far more address space than it uses; the CUDA allocator
    # raises its own OutOfMemoryError instead.
    if config.device != 'cpu' or config.memory_limit_gb is None:
        return None
    return int(config.memory_limit_gb * 2**30)


def _same_setting(row: dict, other: dict) -> bool:
    keys = ('width', 'height', 'device', 'dtype', 'compile', 'attention')
    return all(row[key] == other[key] for key in keys) and _backend(row) == _backend(other)


def _backend(row: dict) -> str:
    return row.get('backend', 'torch')


def add_derived_columns(rows: list[dict], throughput: dict[str, dict]) -> None:
    """Add the floor (MACs at matmul speed) and the ratio against apanet in the same setting."""
    for row in rows:
        macs_per_s = throughput[row['dtype']]['macs_per_s']
        row['floor_ms'] = row['macs'] / macs_per_s * 1000.0 if row.get('macs') else None
        measured = row['status'] == OK
        row['floor_fraction'] = (row['floor_ms'] / row['median_ms']
                                 if measured and row['floor_ms'] else None)
        reference = next((other for other in rows if other['model'] == REFERENCE_MODEL
                          and other['status'] == OK and _same_setting(row, other)), None)
        row['vs_apanet'] = (row['median_ms'] / reference['median_ms']
                            if measured and reference else None)
        torch_row = next((other for other in rows if other['status'] == OK
                          and _backend(other) == 'torch' and other['model'] == row['model']
                          and _same_setting({**row, 'backend': 'torch'}, other)), None)
        row['speedup_vs_torch'] = (torch_row['median_ms'] / row['median_ms']
                                   if measured and torch_row and _backend(row) != 'torch'
                                   else None)


def evaluate_targets(rows: list[dict], machine: dict) -> list[dict]:
    """Check the issue's model targets against this run; unmeasurable ones say why."""
    targets = []
    gpu = machine.get('gpu') or ''
    fp16 = [row for row in rows if row['model'] == DEFAULT_MODEL and row['device'] == 'cuda'
            and row['dtype'] == 'fp16' and (row['width'], row['height']) == (1280, 720)
            and row['attention'] in ('banded', 'none') and row['status'] == OK]
    if fp16 and 'H100' in gpu:
        best = max(row['pairs_per_s'] for row in fp16)
        targets.append(_target(f'{DEFAULT_MODEL} fp16 1280×720 on H100 ≥ 100 pairs/s',
                               f'{best:.1f} pairs/s', best >= 100))
    else:
        targets.append(_target(f'{DEFAULT_MODEL} fp16 1280×720 on H100 ≥ 100 pairs/s',
                               'not measured (needs an H100; this run: '
                               f'{gpu or "CPU only"})', None))
    targets += onnxruntime_targets(rows)
    kitti = [row for row in rows if row['model'] == REFERENCE_MODEL and row['attention'] ==
             'banded' and (row['width'], row['height']) == (1242, 375)]
    if kitti:
        row = kitti[0]
        if row['status'] == OK:
            value = (f"{row['peak_memory_mb'] / 1024:.2f} GB "
                     f"({row['memory_kind']}, {row['device']})")
            targets.append(_target('apanet banded, 375×1242 KITTI frame ≤ 8 GB peak', value,
                                   row['peak_memory_mb'] <= 8 * 1024))
        else:
            targets.append(_target('apanet banded, 375×1242 KITTI frame ≤ 8 GB peak',
                                   row['status'], False))
    else:
        targets.append(_target('apanet banded, 375×1242 KITTI frame ≤ 8 GB peak',
                               'not measured (size 1242x375 not in this run)', None))
    for row in rows:
        # Doubling the width only costs ~2x once the band is narrower than the row.
        if row['attention'] != 'banded' or row['status'] != OK or \
                row['width'] < 2 * row['max_disparity']:
            continue
        doubled = next((other for other in rows if other['model'] == row['model']
                        and other['status'] == OK and other['width'] == 2 * row['width']
                        and _same_setting({**row, 'width': other['width']}, other)), None)
        if doubled:
            ratio = doubled['median_ms'] / row['median_ms']
            targets.append(_target(
                f"{row['model']} banded: doubling width {row['width']}→{doubled['width']} "
                f"(H {row['height']}, {row['dtype']}) costs ≤ 2.2× time", f'{ratio:.2f}×',
                ratio <= 2.2))
    return targets


def onnxruntime_targets(rows: list[dict]) -> list[dict]:
    """Check that onnxruntime on the CPU runs the default model >= 1.3x faster than torch."""
    name = f'{DEFAULT_MODEL} onnxruntime CPU ≥ 1.3× faster than torch eager at 640×360'
    measured = [row for row in rows if row['model'] == DEFAULT_MODEL and row['device'] == 'cpu'
                and _backend(row) == 'onnxruntime' and (row['width'], row['height']) == (640, 360)
                and row.get('speedup_vs_torch')]
    if not measured:
        return [_target(name, 'not measured (needs --backends torch,onnxruntime at 640x360 on '
                              'the CPU)', None)]
    best = max(row['speedup_vs_torch'] for row in measured)
    return [_target(name, f'{best:.2f}×', best >= 1.3)]


def _target(name: str, measured: str, met: bool | None) -> dict:
    return {'target': name, 'measured': measured, 'met': met}


def not_measured_gpu_configs(config: ModelBenchConfig) -> list[dict]:
    """List the GPU configurations the issue asks for that this run could not measure."""
    if config.gpu_available:
        return []
    return [{'device': 'cuda', 'dtype': dtype, 'compile': compiled, 'reason': NO_GPU}
            for dtype in GPU_DTYPES for compiled in (False, True)]


def run_model_bench(config: ModelBenchConfig, machine: dict,
                    on_row: Callable[[dict], None] | None = None) -> dict:
    """Measure every planned row and return the full JSON-ready result."""
    specs = plan_rows(config)
    throughput = measure_throughput(config)
    rows = []
    graph_dir = tempfile.TemporaryDirectory(prefix='bench-onnx-')
    specs = [{**spec, 'graph_dir': graph_dir.name} for spec in specs]
    export_failures = export_graphs(specs, config.row_timeout_s)
    for spec in specs:
        outcome = run_isolated('stereo_derain_ros.bench.model_row:measure_model_row', spec,
                               _memory_limit(config), config.row_timeout_s)
        row = {key: value for key, value in spec.items()
               if key not in ('warmup', 'repeats', 'threads', 'graph_dir')}
        row['size'] = f"{spec['width']}x{spec['height']}"
        row.update(outcome)
        if spec['backend'] == 'onnxruntime' and str(graph_path(spec)) in export_failures:
            row['error'] = f'export failed: {export_failures[str(graph_path(spec))]}'
        rows.append(row)
        if on_row:
            on_row(row)
    graph_dir.cleanup()
    add_derived_columns(rows, throughput)
    return {
        'schema_version': 1,
        'benchmark': 'models',
        'machine': machine,
        'settings': asdict(config),
        'matmul_throughput': throughput,
        'rows': rows,
        'not_measured': not_measured_gpu_configs(config),
        'targets': evaluate_targets(rows, machine),
    }


def _status_text(row: dict) -> str:
    if row['status'] == OK:
        return format_number(row['median_ms'])
    if row['status'] == OUT_OF_MEMORY:
        return 'does not fit'
    return 'failed'


def _attention_text(row: dict) -> str:
    if row['attention'] == 'banded':
        return f"banded d={row['max_disparity']}"
    return {'unbanded': 'unbanded', 'none': '— (no cross-view)'}[row['attention']]


def models_markdown(result: dict) -> str:
    """Render a `bench models` result as markdown: context, main table, targets, gaps."""
    headers = ['model', 'attention', 'size (W×H)', 'backend', 'device', 'dtype', 'compile',
               'params', 'GMAC/pair', 'median ms/pair', 'pairs/s', 'peak memory MB', 'floor ms',
               'floor / time', '× apanet time', '× torch speed']
    table = []
    for row in result['rows']:
        measured = row['status'] == OK
        table.append([
            row['model'], _attention_text(row), row['size'], _backend(row), row['device'],
            row['dtype'],
            'yes' if row['compile'] else 'no',
            f"{row['params'] / 1e6:.3f} M" if row.get('params') else '—',
            format_number(row['macs'] / 1e9) if row.get('macs') else '—',
            _status_text(row),
            format_number(row['pairs_per_s']) if measured else '—',
            format_number(row['peak_memory_mb']) if row.get('peak_memory_mb') else '—',
            format_number(row['floor_ms']),
            f"{row['floor_fraction']:.0%}" if row.get('floor_fraction') else '—',
            f"{row['vs_apanet']:.2f}×" if row.get('vs_apanet') else '—',
            f"{row['speedup_vs_torch']:.2f}×" if row.get('speedup_vs_torch') else '—',
        ])
    settings = result['settings']
    threads = settings['threads'] or f"torch default ({result['machine']['torch_threads']})"
    lines = [*report_head('Model benchmark (`stereo-derain bench models`)', result['machine']),
             f"Timing: {settings['warmup']} warm-up runs, median of {settings['repeats']} "
             f"(CUDA events on GPU, wall clock on CPU), torch threads: {threads}; batch 1 stereo "
             f"pair; sizes padded to each "
             f"model's multiple; untrained weights (speed does not depend on them). Peak memory: "
             f"process peak RSS on CPU (includes the ~0.3 GB Python + torch baseline), "
             f"`torch.cuda.max_memory_allocated` on GPU. Floor: MACs ÷ measured matmul "
             f'throughput of the device (below). "× apanet time": this time ÷ apanet\'s in the '
             f'same setting (size, attention, dtype, compile).', '',
             markdown_table(headers, table), '']
    failures = [row for row in result['rows'] if row['status'] not in (OK, )]
    if failures:
        lines += ['Rows that did not run:', '']
        lines += [f"- {row['model']} {_attention_text(row)} {row['size']}: {row['status']} "
                  f"({row.get('error', '')})" for row in failures]
        lines.append('')
    lines += ["Matrix-multiply throughput (the floor's denominator):", '']
    for dtype, measured in result['matmul_throughput'].items():
        lines.append(f"- {settings['device']} {dtype}: {measured['macs_per_s'] / 1e9:.1f} GMAC/s "
                     f"({measured['size']}² matmul)")
    lines += ['', *targets_section(result['targets'])]
    if result['not_measured']:
        lines += ['## GPU rows', '']
        lines += [f"- cuda {item['dtype']}, torch.compile {'on' if item['compile'] else 'off'}: "
                  f"{item['reason']}" for item in result['not_measured']]
        lines.append('')
    return '\n'.join(lines)
