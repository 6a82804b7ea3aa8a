"""DistributedDataParallel set-up from the environment `torchrun` provides.

One process per GPU (or per CPU worker with gloo): every rank draws its own batches, gradients are
averaged by DDP, and only rank 0 writes checkpoints, logs and curves. `--batch` is per process, so
the global batch is batch × world size.
"""

from dataclasses import dataclass
import os

import torch
import torch.distributed as dist

from stereo_derain_ros.engine.devices import resolve_device


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistributedContext:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise no-op."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ['RANK'])
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    if not dist.is_initialized():
        dist.init_process_group(backend='nccl' if device_kind == 'cuda' else 'gloo')
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size)


def close_distributed(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def pick_device(requested: str, context: DistributedContext) -> torch.device:
    """Resolve `auto`, `cpu`, `cuda` or `cuda:N`; under DDP each rank takes its local GPU."""
    device = resolve_device(requested, local_rank=context.local_rank if context.enabled else None)
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    return device
