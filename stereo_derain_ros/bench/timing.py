"""Time a callable the way GPU and CPU benchmarks are usually reported: warm-up, then a median.

On CUDA the time between two recorded events is the GPU's own, free of Python launch overhead
and of host-side clock jitter; on the CPU the wall clock is the honest measure.
"""

from collections.abc import Callable
import statistics
import time


def synchronize(device: str) -> None:
    """Wait for queued work on `device` so that a timer reads finished work only."""
    if device.startswith('cuda'):
        import torch

        torch.cuda.synchronize()


def time_call(function: Callable[[], object], device: str, warmup: int,
              repeats: int) -> list[float]:
    """Return `repeats` durations in seconds of `function()`, after `warmup` untimed calls."""
    if repeats < 1:
        raise ValueError(f'repeats must be at least 1, got {repeats}')
    for _ in range(warmup):
        function()
    synchronize(device)
    durations = []
    if device.startswith('cuda'):
        import torch

        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            function()
            end.record()
            end.synchronize()
            durations.append(start.elapsed_time(end) / 1000.0)
    else:
        for _ in range(repeats):
            start_s = time.perf_counter()
            function()
            durations.append(time.perf_counter() - start_s)
    return durations


def median(values: list[float]) -> float:
    """Return the median: robust to the odd slow run caused by a neighbour on shared cores."""
    return statistics.median(values)


TORCH_DTYPES = ('fp32', 'fp16', 'bf16')


def torch_dtype(name: str):
    """Map a short dtype name (fp32, fp16, bf16) to the torch dtype."""
    import torch

    mapping = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
    if name not in mapping:
        raise ValueError(f'unknown dtype {name!r}; expected one of {", ".join(TORCH_DTYPES)}')
    return mapping[name]


def matmul_throughput(spec: dict) -> dict:
    """Measure a large square matrix multiply: the device's practical MAC/s ceiling.

    spec: device, dtype, size (matrix side), warmup, repeats, threads (optional).
    """
    import torch

    if spec.get('threads'):
        torch.set_num_threads(int(spec['threads']))
    device, size = spec['device'], int(spec['size'])
    dtype = torch_dtype(spec['dtype'])
    a = torch.rand(size, size, device=device, dtype=dtype)
    b = torch.rand(size, size, device=device, dtype=dtype)
    durations = time_call(lambda: torch.mm(a, b), device, int(spec['warmup']),
                          int(spec['repeats']))
    seconds = median(durations)
    return {'size': size, 'seconds': seconds, 'macs_per_s': size ** 3 / seconds}
