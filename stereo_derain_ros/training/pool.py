"""An in-memory pool of full-size training pairs and the random batches cropped from it.

Rendering rain is far slower than a training step on small crops, so every pair is rendered (or
read) once, kept as uint8, and each step draws random crops from the pool. The draw depends only
on (seed, rank, step), so a resumed run sees exactly the batches the uninterrupted run would have.
Augmentation keeps stereo geometry valid: a horizontal flip swaps the views (NAFSSR's trick), and a
colour-channel permutation is applied identically to all four images.
"""

from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file, save_file
import torch
from tqdm import tqdm

from stereo_derain_ros.atomic import atomic_path
from stereo_derain_ros.pixels import to_uint8, to_unit_float

VIEWS = ('rainy_left', 'rainy_right', 'clean_left', 'clean_right')


@dataclass
class PairPool:
    """Stacks of pairs: `images[view]` is a list of 3×H×W uint8 tensors (sizes may differ)."""

    images: dict[str, list[torch.Tensor]]

    @classmethod
    def from_dataset(cls, dataset, count: int | None = None, *, progress: bool = True,
                     description: str = 'rendering training pairs') -> 'PairPool':
        """Take the first `count` samples (all when None) of a dataset yielding view dicts."""
        total = len(dataset) if count is None else min(count, len(dataset))
        if total == 0:
            raise ValueError('the training data holds no samples')
        images: dict[str, list[torch.Tensor]] = {view: [] for view in VIEWS}
        for index in tqdm(range(total), desc=description, disable=not progress, leave=False):
            sample = dataset[index]
            missing = [view for view in VIEWS if view not in sample]
            if missing:
                raise ValueError(f'data sample {index} lacks {missing}; expected the keys '
                                 f'{list(VIEWS)}')
            for view in VIEWS:
                images[view].append(to_uint8(sample[view]))
        return cls(images)

    def save(self, path: Path) -> None:
        """Write the pool as safetensors (uint8), so several runs can share one rendering."""
        tensors = {f'{view}.{index}': image.contiguous()
                   for view, images in self.images.items() for index, image in enumerate(images)}
        with atomic_path(path) as temporary:
            save_file(tensors, str(temporary))

    @classmethod
    def load(cls, path: Path) -> 'PairPool':
        tensors = load_file(str(path))
        count = sum(1 for name in tensors if name.startswith('rainy_left.'))
        return cls({view: [tensors[f'{view}.{index}'] for index in range(count)]
                    for view in VIEWS})

    def __len__(self) -> int:
        return len(self.images['rainy_left'])

    def min_size(self) -> tuple[int, int]:
        heights = [image.shape[1] for image in self.images['rainy_left']]
        widths = [image.shape[2] for image in self.images['rainy_left']]
        return min(heights), min(widths)

    def batch(self, batch_size: int, crop: tuple[int, int], generator: torch.Generator,
              augment: bool = True) -> dict[str, torch.Tensor]:
        """Return float N×3×H×W tensors in [0, 1] for each view, one window per pair."""
        crop_h, crop_w = crop
        height, width = self.min_size()
        if crop_h > height or crop_w > width:
            raise ValueError(f'crop {crop_h}×{crop_w} does not fit the smallest training pair '
                             f'({height}×{width}); use a smaller --crop')
        indices = torch.randint(len(self), (batch_size,), generator=generator).tolist()
        out: dict[str, list[torch.Tensor]] = {view: [] for view in VIEWS}
        for index in indices:
            image_h, image_w = self.images['rainy_left'][index].shape[1:]
            top = int(torch.randint(image_h - crop_h + 1, (1,), generator=generator))
            left = int(torch.randint(image_w - crop_w + 1, (1,), generator=generator))
            flip = augment and bool(torch.randint(2, (1,), generator=generator))
            channels = torch.randperm(3, generator=generator) if augment else torch.arange(3)
            crops = {view: self.images[view][index][channels, top:top + crop_h, left:left + crop_w]
                     for view in VIEWS}
            if flip:
                crops = {
                    'rainy_left': crops['rainy_right'].flip(-1),
                    'rainy_right': crops['rainy_left'].flip(-1),
                    'clean_left': crops['clean_right'].flip(-1),
                    'clean_right': crops['clean_left'].flip(-1),
                }
            for view in VIEWS:
                out[view].append(crops[view])
        return {view: to_unit_float(torch.stack(out[view])) for view in VIEWS}
