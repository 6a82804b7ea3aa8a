"""Random patches of per-view training maps, for the small nets fitted behind a derainer.

The fusion gate and the refiner both learn from a few hundred whole views kept in memory; each
step draws patches from them, the same window from every map of one view.
"""

from collections.abc import Sequence

import torch


def check_patch_views(views: Sequence[torch.Tensor], patch: int) -> None:
    """Raise ValueError unless there are C×H×W views at least `patch` px on their short side."""
    if not views:
        raise ValueError('no derained view to learn from; expected training pairs (--pairs)')
    smallest = min(min(view.shape[1:]) for view in views)
    if smallest < patch:
        raise ValueError(f'training views are {smallest} px on their short side; expected at '
                         f'least the {patch}-px patch')


def random_patch(parts: Sequence[Sequence[torch.Tensor]], draws: torch.Generator,
                 size: int) -> tuple[torch.Tensor, ...]:
    """Return one random size×size window of one random view, from each part's map of it.

    `parts` are equally long lists of C×H×W maps, item i of each belonging to view i.
    """
    index = int(torch.randint(len(parts[0]), (1,), generator=draws))
    height, width = parts[0][index].shape[1:]
    top = int(torch.randint(height - size + 1, (1,), generator=draws))
    left = int(torch.randint(width - size + 1, (1,), generator=draws))
    return tuple(part[index][:, top:top + size, left:left + size] for part in parts)
