"""Tiny real models for engine, checkpoint and CLI tests (fast on two CPU cores)."""

import torch

from stereo_derain_ros.models import build_model

SMALL_BANDNET = {'width': 8, 'encoder_blocks': (1,), 'decoder_blocks': (1,), 'middle_blocks': 1}


def small_bandnet(seed: int = 0, max_disparity: int | None = 16,
                  pool_window: int | None = None) -> torch.nn.Module:
    """Build a small bandnet whose zero-initialised branches are randomised.

    A fresh model's residual branches and cross-view scales start at zero, which would hide
    layout, tiling and checkpoint bugs behind a near-identity; randomising them makes every
    block, and the other view, change the output. The same seed gives the same model.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model('bandnet', max_disparity=max_disparity, pool_window=pool_window,
                            **SMALL_BANDNET)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model.eval()
