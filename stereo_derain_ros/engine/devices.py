"""The one device resolver: inference, training and benchmarks all pick torch devices here."""

import torch

from stereo_derain_ros.engine.config import check_device
from stereo_derain_ros.engine.errors import EngineError


def resolve_device(spec: str, *, local_rank: int | None = None) -> torch.device:
    """Turn auto|cpu|cuda|cuda:N into a device that exists here, or explain why it does not.

    `local_rank` is the process's GPU under DistributedDataParallel: each rank takes its own GPU
    whatever index was asked, since torchrun starts every rank with the same command line.
    """
    check_device(spec)
    if spec == 'auto':
        spec = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(spec)
    if device.type != 'cuda':
        return device
    if not torch.cuda.is_available():
        raise EngineError(
            f'device {spec!r} was asked but CUDA is not available to this PyTorch '
            f'(torch {torch.__version__}); use device cpu or auto')
    index = local_rank if local_rank is not None else (device.index or 0)
    if index >= torch.cuda.device_count():
        raise EngineError(
            f'device {spec!r} was asked but only {torch.cuda.device_count()} CUDA device(s) exist')
    return torch.device('cuda', index)
