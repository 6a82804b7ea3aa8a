"""The one precision path: fp32 weights, with fp16/bf16 autocast on CUDA.

Autocast keeps weights, normalisations and softmax in fp32 and runs matmuls and convolutions in
half precision, which is what the engine does per frame; benchmarks use the same context so
their half-precision rows measure what the engine runs, not a model cast wholesale.
"""

import contextlib

import torch

AUTOCAST_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """Return the autocast context for `precision` on `device`; fp32 or a CPU need none."""
    device = torch.device(device)
    if device.type != 'cuda' or precision not in AUTOCAST_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast('cuda', dtype=AUTOCAST_DTYPES[precision])
