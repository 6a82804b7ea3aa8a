"""Measure one `bench models` row on the onnxruntime backend; runs in an isolated child.

The row runs the same untrained model as the torch rows, exported beforehand once per (model,
band) into the run's graph folder, each export in its own child so that it counts neither in a
row's time nor in its peak memory. The row runs the graph through the engine's onnxruntime
backend with the CPU or CUDA provider; ONNX Runtime's intra-op threads follow the row's `threads`.
"""

from pathlib import Path
import resource

from stereo_derain_ros.bench.isolated import OK, run_isolated
from stereo_derain_ros.bench.model_row import count_macs_without_memory, padded
from stereo_derain_ros.bench.timing import median, time_call


def graph_path(spec: dict) -> Path:
    """Return where the run keeps the exported graph of a row's model and band."""
    return Path(spec['graph_dir']) / f"{spec['model']}-d{spec['max_disparity']}.onnx"


def export_graphs(specs: list[dict], timeout_s: float) -> dict[str, str]:
    """Export each (model, band) the onnxruntime rows need; return {graph path: error} failures."""
    failures = {}
    for spec in specs:
        path = graph_path(spec)
        if spec.get('backend') != 'onnxruntime' or path.is_file() or str(path) in failures:
            continue
        outcome = run_isolated('stereo_derain_ros.bench.onnx_row:export_graph', spec, None,
                               timeout_s)
        if outcome['status'] != OK:
            failures[str(path)] = outcome.get('error', outcome['status'])
    return failures


def export_graph(spec: dict) -> dict:
    """Export the untrained model of a row (with its band) to `graph_path(spec)`."""
    from stereo_derain_ros.engine.onnx_export import export_onnx
    from stereo_derain_ros.models import build_model

    model = build_model(spec['model']).eval()
    model.set_max_disparity(spec['max_disparity'])
    return {'graph': str(export_onnx(model, graph_path(spec),
                                     max_disparity=spec['max_disparity']))}


def measure_onnx_row(spec: dict) -> dict:
    """Time one exported model on one pair size; same spec and result keys as the torch rows.

    spec also holds `graph_dir`, the folder where this run's exported graphs are kept.
    """
    import torch

    from stereo_derain_ros.engine.config import EngineConfig
    from stereo_derain_ros.engine.onnx_backend import OnnxRuntimeBackend
    from stereo_derain_ros.models import build_model, count_parameters

    if spec.get('threads'):
        torch.set_num_threads(int(spec['threads']))
    model = build_model(spec['model']).eval()
    model.set_max_disparity(spec['max_disparity'])
    height = padded(spec['height'], model.pad_multiple)
    width = padded(spec['width'], model.pad_multiple)
    graph = graph_path(spec)
    if not graph.is_file():
        raise FileNotFoundError(f'no exported graph {graph.name}: its export failed')
    config = EngineConfig.from_options(backend='onnxruntime', weights=str(graph),
                                       device=spec['device'], precision='fp32')
    backend = OnnxRuntimeBackend(config, None)
    left = torch.rand(1, 3, height, width)
    right = torch.rand_like(left)
    durations = time_call(lambda: backend.forward(left, right), 'cpu', int(spec['warmup']),
                          int(spec['repeats']))
    on_cpu = backend.providers[0] == 'CPUExecutionProvider'
    return {'params': count_parameters(model), 'padded_width': width, 'padded_height': height,
            'macs': count_macs_without_memory(spec['model'], spec['max_disparity'], height,
                                              width),
            'providers': backend.providers,
            'times_ms': [duration * 1000.0 for duration in durations],
            'median_ms': median(durations) * 1000.0,
            'pairs_per_s': 1.0 / median(durations),
            'peak_memory_mb': (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                               if on_cpu else None),
            'memory_kind': 'process peak RSS' if on_cpu else 'not measured on the GPU provider'}
