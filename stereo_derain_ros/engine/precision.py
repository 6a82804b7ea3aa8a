"""The one precision path: fp32 weights, with half-precision autocast where it runs natively.

Autocast keeps weights, normalisations and softmax in fp32 and runs matmuls and convolutions in
half precision, which is what the engine does per frame; benchmarks and training use the same
context so their half-precision rows measure what the engine runs, not a model cast wholesale.
On a CPU only bf16 is offered, and only where oneDNN runs it in hardware (AVX512-BF16 or AMX):
there the engine runs bandnet 1.45-1.6x faster than fp32, elsewhere bf16 is emulated and slower.
"""

import contextlib
import logging

import torch

AUTOCAST_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16}

LOGGER = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """Tell whether this CPU runs bf16 convolutions and matmuls in hardware."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(spec: str, device: torch.device) -> str:
    """Return the precision that runs on `device` for `spec`, warning when one is refused.

    `auto` is the fastest precision that keeps the output: fp16 on CUDA (every CUDA GPU runs it
    fast), bf16 on a CPU that runs it in hardware (the packaged weights score within 0.01 dB of
    fp32 on rain there, docs/model_card.md), fp32 on other CPUs. Figures that must be exact and
    alike on every machine ask for fp32 (`stereo-derain eval` and the training commands do).
    """
    if device.type == 'cuda':
        return 'fp16' if spec == 'auto' else spec
    native = cpu_has_native_bf16()
    if spec in ('auto', 'bf16') and native:
        return 'bf16'
    if spec == 'bf16':
        LOGGER.warning('precision bf16 needs a CPU with AVX512-BF16 or AMX (this one would '
                       'emulate it, slower than fp32); running fp32 on %s', device)
    elif spec == 'fp16':
        LOGGER.warning('precision fp16 applies to CUDA only (bf16 runs on CPUs with AVX512-BF16 '
                       'or AMX); running fp32 on %s', device)
    return 'fp32'


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """Return the autocast context for `precision` on `device`; fp32 needs none.

    `precision` is one that `resolve_precision` returned; fp16 on a CPU runs fp32.
    """
    device = torch.device(device)
    if precision not in AUTOCAST_DTYPES or (device.type == 'cpu' and precision != 'bf16'):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])
