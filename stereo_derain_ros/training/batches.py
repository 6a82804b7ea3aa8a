"""The training batches, step by step, composed in the training process or ahead of it.

On a GPU one bandnet step of 32 pairs takes milliseconds, while composing its batch takes about
0.4 s of one CPU core (96 ms for 8 pairs of 192×384 on an AMD EPYC core, measured in a
training run's loss.csv), so a training process that composed its own batches would leave the
GPU idle most of the time. A batch depends only on (seed, rank, step) and the step's crop, so
worker processes can compose the next ones ahead of the step and the run stays the same, batch
for batch, whatever the number of workers.
The workers are forked: they share the pools with the training process instead of copying them.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.utils.data import DataLoader, Dataset

from stereo_derain_ros.training.schedule import CropSchedule


def batch_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """Return the generator that draws step `step`'s batch on `rank`, whoever draws it."""
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + rank * 7_919 + step) % (2 ** 63))
    return generator


class StepBatches(Dataset):
    """Step → that step's batch: `batch_size` pairs of the step's crop from `pool`."""

    def __init__(self, pool, batch_size: int, schedule: CropSchedule, seed: int,
                 rank: int) -> None:
        height, width = pool.min_size()
        for (crop_h, crop_w), _ in schedule.phases:
            # Checked here, before any step: a worker's error would arrive wrapped in its trace.
            if crop_h > height or crop_w > width:
                raise ValueError(f'crop {crop_h}x{crop_w} does not fit the smallest training '
                                 f'pair ({height}x{width}); use a smaller --crop')
        self.pool, self.batch_size, self.schedule = pool, batch_size, schedule
        self.seed, self.rank = seed, rank

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        return self.pool.batch(self.batch_size, self.schedule.crop_at(step),
                               batch_generator(self.seed, self.rank, step))


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)


@contextmanager
def step_batches(batches: StepBatches, steps: range, workers: int,
                 pin_memory: bool = False) -> Iterator[Iterator[dict[str, torch.Tensor]]]:
    """Yield an iterator over the batches of `steps`; `workers` > 0 composes them ahead.

    Each worker runs one torch thread and keeps up to two batches ready. Leaving the context
    (also when the run stops early) ends the workers.
    """
    if workers == 0:
        yield (batches[step] for step in steps)
        return
    loader = DataLoader(batches, batch_size=None, sampler=steps, num_workers=workers,
                        pin_memory=pin_memory, worker_init_fn=_one_thread,
                        multiprocessing_context='fork')
    iterator = iter(loader)
    try:
        yield iterator
    finally:
        iterator._shutdown_workers()
