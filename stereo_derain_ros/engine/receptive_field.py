"""How far an output pixel looks: the margin a tile needs before its output can be trusted.

Measured, not derived from the layer list: a deep U-Net's theoretical receptive field (about
124 px each way for bandnet) is far wider than where its weights actually look, and tiles sized
for it would be mostly margin. A gradient probe asks the loaded model directly: the gradient of
one output pixel with respect to both input views, summed over channels and columns, gives a
profile over rows, and the radius holding MASS of it is the margin. Rows, because convolutions
look as far vertically as horizontally while the cross-view band (handled separately as tile
context) only widens the horizontal reach. Global pooling is detached for the probe: it looks
at the whole image by design and is shared between tiles instead (see `shared_pooling`).
"""

import torch
from torch import nn

from stereo_derain_ros.engine.shared_pooling import global_pools

MASS = 0.999
PROBE_SIZE = 192


def receptive_radius(model: nn.Module, pad_multiple: int, size: int = PROBE_SIZE,
                     device: torch.device | str = 'cpu') -> int:
    """Return the radius in input pixels holding MASS of one output pixel's input gradient.

    The probe is a `size` square (rounded up to `pad_multiple`) of seeded noise; a radius that
    reaches the probe's border is capped there (a model attending the whole image).
    """
    size = -(-size // pad_multiple) * pad_multiple
    generator = torch.Generator().manual_seed(0)
    views = [torch.rand(1, 3, size, size, generator=generator).to(device).requires_grad_(True)
             for _ in range(2)]
    hooks = [pool.register_forward_hook(lambda module, inputs, output: output.detach())
             for pool in global_pools(model)]
    requires_grad = [parameter.requires_grad for parameter in model.parameters()]
    try:
        model.requires_grad_(False)
        with torch.enable_grad():
            outputs = model(*views)
            centre = size // 2
            sum(output[0, :, centre, centre].sum() for output in outputs).backward()
    finally:
        for hook in hooks:
            hook.remove()
        for parameter, flag in zip(model.parameters(), requires_grad):
            parameter.requires_grad_(flag)
    profile = sum(view.grad.abs().sum(dim=(0, 1, 3)) for view in views).cpu()
    total = float(profile.sum())
    for radius in range(centre):
        if total == 0 or float(profile[centre - radius:centre + radius + 1].sum()) >= MASS * total:
            return radius
    return centre
