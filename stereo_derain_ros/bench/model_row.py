"""Measure one model configuration (one benchmark row); runs inside an isolated child process.

MACs are counted on the meta device first, so a row that then runs out of memory still reports
its parameters and MACs; only the timing and the peak memory are lost.
"""

import resource

from stereo_derain_ros.bench.isolated import is_out_of_memory, OUT_OF_MEMORY
from stereo_derain_ros.bench.timing import median, time_call
from stereo_derain_ros.engine.precision import autocast


def padded(size: int, multiple: int) -> int:
    """Round `size` up to a multiple of `multiple`, as the engine pads frames."""
    return -(-size // multiple) * multiple


def count_macs_without_memory(name: str, max_disparity: int | None, height: int,
                               width: int) -> int | None:
    from stereo_derain_ros.models import count_macs_on_meta

    try:
        return int(count_macs_on_meta(name, height, width, max_disparity=max_disparity))
    except Exception:  # noqa: BLE001 - a model the meta device cannot run is counted for real
        return None


def measure_model_row(spec: dict) -> dict:
    """Time one model on one pair size; return params, MACs, times and peak memory.

    spec: model, max_disparity (None = unbanded), width, height, device, dtype, compile,
    warmup, repeats, threads (None = torch default), backend (torch or onnxruntime).
    """
    if spec.get('backend') == 'onnxruntime':
        from stereo_derain_ros.bench.onnx_row import measure_onnx_row

        return measure_onnx_row(spec)
    import psutil
    import torch

    from stereo_derain_ros.models import build_model, count_macs, count_parameters

    if spec.get('threads'):
        torch.set_num_threads(int(spec['threads']))
    device = spec['device']
    model = build_model(spec['model']).eval()
    model.set_max_disparity(spec['max_disparity'])
    height = padded(spec['height'], model.pad_multiple)
    width = padded(spec['width'], model.pad_multiple)
    result = {'params': count_parameters(model), 'padded_width': width, 'padded_height': height}
    result['macs'] = count_macs_without_memory(spec['model'], spec['max_disparity'], height,
                                                width)
    try:
        if result['macs'] is None:
            result['macs'] = int(count_macs(model, height, width))
        model = model.to(device=device)
        left = torch.rand(1, 3, height, width, device=device)
        right = torch.rand_like(left)
        forward = torch.compile(model) if spec['compile'] else model
        precision = autocast(device, spec['dtype'])
        if device.startswith('cuda'):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            baseline_bytes = torch.cuda.memory_allocated()
        else:
            baseline_bytes = psutil.Process().memory_info().rss
        with torch.inference_mode(), precision:
            durations = time_call(lambda: forward(left, right), device, int(spec['warmup']),
                                  int(spec['repeats']))
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return {**result, 'status': OUT_OF_MEMORY, 'error': first_line[:300]}
    if device.startswith('cuda'):
        peak_bytes = torch.cuda.max_memory_allocated()
        memory_kind = 'CUDA max allocated'
    else:
        peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        memory_kind = 'process peak RSS'
    return {**result,
            'times_ms': [duration * 1000.0 for duration in durations],
            'median_ms': median(durations) * 1000.0,
            'pairs_per_s': 1.0 / median(durations),
            'peak_memory_mb': peak_bytes / 2**20,
            'baseline_memory_mb': baseline_bytes / 2**20,
            'memory_kind': memory_kind}
