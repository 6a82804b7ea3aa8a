"""Global average pooling that sees the whole image while a model runs tile by tile.

NAFNet-style channel attention scales each feature map by its mean over the whole input. Run
on a tile, that mean is the tile's, and every pixel of the tile shifts a little (3/255 on a
741 px wide frame cut into 512 px tiles with the shipped bandnet), whatever the overlap. So a
tiled run makes two passes: the first records, for every global pooling call, each tile's
contribution weighted by the blending weights (which sum to one at every pixel), and so
estimates the whole image's means; the second runs the tiles again with those means in place
of the tiles' own. Models without global pooling run a single pass.

Models batch their views as torch.cat([left, right]) (see StereoDerainModel), so sample s of a
pooling input of K x B samples belongs to view s // B (K = 2) and tile position s % B.
"""

from collections.abc import Callable

import torch
from torch import nn
import torch.nn.functional as F


def global_pools(model: nn.Module) -> list[nn.Module]:
    """Return the model's pooling layers that reduce a feature map to one value per channel."""
    return [module for module in model.modules()
            if isinstance(module, nn.AdaptiveAvgPool2d) and module.output_size in (1, (1, 1))]


class SharedPooling:
    """Estimate the whole image's mean at every global pooling call, then use it.

    A recording pass sums each call's input weighted by the tiles' blending weights; after
    `finish_pass`, the calls return those estimates instead of the tile's own means.
    """

    def __init__(self, pools: list[nn.Module], images: int) -> None:
        self.pools = pools
        self.images = images
        self.recording = True
        self.estimates: dict[int, torch.Tensor] = {}
        self._sums: dict[int, torch.Tensor] = {}
        self._masses: dict[int, torch.Tensor] = {}
        self._weights = torch.empty(0)
        self._calls = 0

    def finish_pass(self) -> None:
        """Turn this pass's sums into the estimates the next pass uses."""
        self.estimates = {call: total / self._masses[call] for call, total in self._sums.items()}
        self._sums, self._masses = {}, {}

    def run(self, forward: Callable, weights: torch.Tensor, *inputs: torch.Tensor):
        """Call `forward(*inputs)` with this tile batch's weights in force.

        `weights` is (tiles x images) x H x W, the normalised blending weights of each sample of
        one view's batch, in the order the model's pooling layers see them; both views share
        them.
        """
        self._weights = weights
        self._calls = 0
        handles = [pool.register_forward_hook(self._hook) for pool in self.pools]
        try:
            return forward(*inputs)
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        call, self._calls = self._calls, self._calls + 1
        features = inputs[0].float()
        samples = self._weights.shape[0]
        views = features.shape[0] // samples
        shape = (views, samples // self.images, self.images, features.shape[1])
        if self.recording:
            weights = F.adaptive_avg_pool2d(self._weights[:, None],
                                            features.shape[-2:]).repeat(views, 1, 1, 1)
            total = (features * weights).sum((-2, -1)).reshape(shape).sum(1)
            mass = weights.sum((-2, -1)).reshape(*shape[:3], 1).sum(1)
            self._sums[call] = self._sums.get(call, 0) + total
            self._masses[call] = self._masses.get(call, 0) + mass
        if call not in self.estimates:
            return output
        estimate = self.estimates[call]  # views x images x C
        return estimate[:, None].expand(shape).reshape(output.shape).to(output.dtype)
