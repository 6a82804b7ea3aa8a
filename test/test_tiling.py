"""Tiling: tiles on the model's grid, margins from the measured receptive field, shared pooling."""

import numpy as np
import pytest
from small_models import small_bandnet
import torch

from stereo_derain_ros.engine import DerainEngine, EngineConfig
from stereo_derain_ros.engine.tiling import plan_axis

torch.set_num_threads(2)


def test_tiles_start_on_the_model_grid_and_leave_the_margin_untrusted():
    plan = plan_axis(1008, 512, overlap=32, context=0, margin=82, multiple=16)
    assert all(start % 16 == 0 for start in plan.starts)
    assert plan.starts[-1] + plan.size == 1008
    middle = plan.weights[1]
    assert not middle[:82].any() and not middle[-82:].any()
    assert (middle[82 + 32:-82 - 32] == 1).all()


def test_tiny_tiles_are_refused_and_wasteful_ones_warned_about(caplog):
    model = small_bandnet()
    with pytest.raises(ValueError, match='too small.*receptive radius'):
        DerainEngine(EngineConfig(device='cpu', tile=48, tile_overlap=8, warmup_shape=None),
                     model=model)
    DerainEngine(EngineConfig(device='cpu', tile=(64, 112), tile_overlap=8, warmup_shape=None),
                 model=model)
    assert 'most of the work is done twice' in caplog.text


@pytest.mark.slow
def test_tiled_matches_untiled_with_the_packaged_weights():
    """Default overlap, 512 x 768 px tiles, a real rainy frame tiled both ways.

    Bandnet exchanges the views at several layers, so each output pixel depends on both views
    max_disparity columns to either side, and tiles keep that much context on both sides. When
    they kept it only on the side a view's own band leaves the tile, the stage-7 weights on 512
    px tiles differed by up to 8 levels on 0.09 % of the values and later weights passed 0.1 %,
    wherever a tile's trusted part ended less than a band from its right edge. With context on
    both sides, stages 7 and 10 agree with the whole-image output within one level everywhere.
    """
    from stereo_derain_ros.rain.params import rain_params
    from stereo_derain_ros.rain.render import render_rain
    from stereo_derain_ros.rain.scene import motorcycle_scene

    sample = render_rain(motorcycle_scene(1.0), rain_params('heavy'), seed=0)
    # Mirrored below itself and repeated beside itself: 1000 x 1482, cut both ways by the tiles.
    left = np.tile(np.concatenate([sample.rainy_left, sample.rainy_left[::-1]]), (1, 2, 1))
    right = np.tile(np.concatenate([sample.rainy_right, sample.rainy_right[::-1]]), (1, 2, 1))
    whole = DerainEngine(EngineConfig(device='cpu', precision='fp32', warmup_shape=None))
    tiled = DerainEngine(EngineConfig(device='cpu', precision='fp32', tile=(512, 768),
                                      warmup_shape=None))
    assert whole.weights_source.startswith('packaged:')
    assert len(plan_axis(1482, 768, 32, tiled.max_disparity, tiled.tile_margin, 16).starts) > 2
    for tiled_view, whole_view in zip(tiled.derain(left, right), whole.derain(left, right)):
        difference = np.abs(tiled_view.astype(int) - whole_view)
        assert difference.max() <= 1
