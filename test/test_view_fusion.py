"""Second-view fusion: a view moves towards the other view's pixel only where it should.

Where the network took rain away and left some, the other view (which sees that surface without
the streak) pulls the pixel back towards the surface, by a share the packaged gate decides; where
the network changed nothing, or SGBM found no match, the pixel stays as the network left it. The
gate is trained by `stereo-derain train-fusion-gate` and loaded like any checkpoint: vetted, never
unpickled.
"""

import numpy as np
import pytest
import torch

from stereo_derain_ros.engine import CheckpointError, DerainEngine, EngineConfig, save_checkpoint
from stereo_derain_ros.engine.checkpoint import build_fusion_gate_from_checkpoint
from stereo_derain_ros.engine.pixel_layers import _fused_convolution_works, CPU_FUSED_CONVOLUTION
from stereo_derain_ros.engine.precision import cpu_has_native_bf16
from stereo_derain_ros.engine.view_fusion import (
    blend_view,
    brightness_fit,
    fuse_views,
    gate_features,
    gate_shares,
    load_fusion_gate,
    match_disparity,
)
from stereo_derain_ros.engine.weights import packaged_weights
from stereo_derain_ros.models.fusion_gate import FusionGate
from stereo_derain_ros.sgbm import sgbm_disparity, warp_disparity_to_right, warp_from_other_view

from conftest import REPO_ROOT

DISPARITY = 6
HEIGHT, WIDTH = 48, 160
RANGE = 16
STREAK = slice(70, 72)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """Return a clean textured pair (H×W×3 in 0-255) with right[x - d] = left[x]."""
    rng = np.random.default_rng(0)
    texture = np.repeat(rng.uniform(60, 190, (HEIGHT, WIDTH + DISPARITY, 1)), 3, axis=2)
    return texture[:, :WIDTH], texture[:, DISPARITY:DISPARITY + WIDTH]


def _tensors(*views: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.clip(view, 0, 255) / 255.0).permute(2, 0, 1)[None].float()
            for view in views]


@pytest.fixture(scope='module')
def gate():
    return load_fusion_gate()


def _fused(gate, rainy_left, rainy_right, left, right) -> tuple[np.ndarray, np.ndarray]:
    outputs = fuse_views(gate, *_tensors(rainy_left, rainy_right, left, right), RANGE, 'fp32')
    return tuple(view[0].permute(1, 2, 0).numpy() * 255.0 for view in outputs)


def test_a_streak_left_in_one_view_is_thinned_from_the_other_view(gate):
    clean_left, clean_right = _scene()
    rainy_left, derained_left = clean_left.copy(), clean_left.copy()
    rainy_left[:, STREAK] += 60
    derained_left[:, STREAK] += 20  # the network darkened the streak by 40 and left 20
    fused_left, fused_right = _fused(gate, rainy_left, clean_right, derained_left, clean_right)
    residue = (fused_left - clean_left)[8:-8, STREAK].mean()
    assert 0 <= residue < 15
    untouched = np.ones(WIDTH, bool)
    untouched[STREAK] = False
    assert np.abs(fused_left - clean_left)[:, untouched].max() < 1e-3
    assert np.abs(fused_right - clean_right).max() < 1e-3


def test_a_streak_is_thinned_from_a_brighter_camera_without_taking_its_brightness(gate):
    """The right camera exposes 15 % brighter: the left view takes its match, not its exposure."""
    clean_left, clean_right = _scene()
    brighter_right = clean_right * 1.15
    rainy_left, derained_left = clean_left.copy(), clean_left.copy()
    rainy_left[:, STREAK] += 60
    derained_left[:, STREAK] += 20
    fused_left, fused_right = _fused(gate, rainy_left, brighter_right, derained_left,
                                     brighter_right)
    assert 0 <= (fused_left - clean_left)[8:-8, STREAK].mean() < 15
    assert np.abs(fused_right - brighter_right).max() < 1e-3


def test_the_brightness_fit_finds_the_other_cameras_gain_past_streaks_and_mismatches():
    rng = np.random.default_rng(1)
    own = rng.uniform(25.0, 200.0, (HEIGHT, WIDTH)).astype(np.float32)
    warped = (own - 5.0) / 1.15  # grey levels of the other camera: 15 % darker, 5 levels lower
    warped[:, STREAK] += 60.0  # a streak the other view shows and this one does not
    warped[:8] = rng.uniform(0.0, 255.0, (8, WIDTH))  # rows SGBM matched wrongly
    gain, offset = brightness_fit(own, warped, np.ones((HEIGHT, WIDTH), bool))
    assert gain == pytest.approx(1.15, abs=2e-3) and offset == pytest.approx(5.0, abs=0.2)


def test_the_brightness_fit_takes_the_views_as_they_are_without_matches_or_texture():
    rng = np.random.default_rng(2)
    own = rng.uniform(25.0, 200.0, (HEIGHT, WIDTH)).astype(np.float32)
    assert brightness_fit(own, own * 0.9, np.zeros((HEIGHT, WIDTH), bool)) == (1.0, 0.0)
    flat = np.full((HEIGHT, WIDTH), 128.0, np.float32)
    assert brightness_fit(flat, flat * 0.9, np.ones((HEIGHT, WIDTH), bool)) == (1.0, 0.0)
    assert brightness_fit(own, own * 0.2, np.ones((HEIGHT, WIDTH), bool)) == (1.0, 0.0)


def test_a_scene_edge_the_network_darkened_in_both_views_is_given_back(gate):
    """Both rainy views show the edge at its disparity, so it is scene, not a streak."""
    clean_left, clean_right = _scene()
    clean_left[:, STREAK] += 60  # a lit edge, at the scene's disparity in both views
    clean_right[:, STREAK.start - DISPARITY:STREAK.stop - DISPARITY] += 60
    derained_left, derained_right = clean_left.copy(), clean_right.copy()
    derained_left[:, STREAK] -= 40  # taken for rain in both views
    derained_right[:, STREAK.start - DISPARITY:STREAK.stop - DISPARITY] -= 40
    fused_left, _ = _fused(gate, clean_left, clean_right, derained_left, derained_right)
    darkening = (clean_left - fused_left)[8:-8, STREAK].mean()
    assert 0 <= darkening < 20  # at least half of the 40 grey levels given back


def test_pixels_the_network_left_alone_stay_as_they_are(gate):
    clean_left, clean_right = _scene()
    clean_left[:, STREAK] += 20  # a lit edge, say: the network saw no rain there
    fused_left, fused_right = _fused(gate, clean_left, clean_right, clean_left, clean_right)
    assert np.abs(fused_left - clean_left).max() < 1e-3
    assert np.abs(fused_right - clean_right).max() < 1e-3


def _streaked_views() -> list[np.ndarray]:
    """Return rainy left, derained left (a streak darkened by 40, 20 left), clean right twice."""
    clean_left, clean_right = _scene()
    rainy_left, derained_left = clean_left.copy(), clean_left.copy()
    rainy_left[:, STREAK] += 60
    derained_left[:, STREAK] += 20
    return [np.float32(view / 255.0) for view in
            (rainy_left, derained_left, clean_right, clean_right)]


def test_the_gate_reads_darkening_disagreement_and_the_match(gate):
    """Features at the true disparity: the streak is darkened and disagrees, the rest is not."""
    views = _streaked_views()
    disparity = np.full((HEIGHT, WIDTH), DISPARITY, np.float32)
    disparity[:, :DISPARITY] = np.nan
    features, gap, back = gate_features(*views, disparity, 'left')
    assert np.allclose(features[0][:, STREAK], 4.0, atol=1e-3)  # darkened 40 grey levels / 10
    assert np.allclose(features[2][:, STREAK], -20 / 30, atol=1e-3)  # the match 20 levels darker
    assert np.allclose(features[4][:, STREAK], -60 / 30, atol=1e-3)  # the rainy inputs 60 apart
    assert np.allclose(gap[:, STREAK] * 255.0, -20.0, atol=1e-3)
    assert np.allclose(back[:, STREAK] * 255.0, 40.0, atol=1e-3)
    assert (features[3][:, :DISPARITY] == 0).all() and (features[3][:, DISPARITY:] == 1).all()
    blended = blend_view(gate, *views, disparity, 'left')
    moved = (blended - views[1]) * 255.0
    # Every streak pixel moves towards its match and none past it; the streak by most of the gap
    # (the gate reads 7×7 neighbourhoods, so the share varies with the texture around a pixel).
    assert (moved[:, STREAK] < 0).all() and (moved[:, STREAK] >= -20 - 1e-3).all()
    assert moved[:, STREAK].mean() < -15
    assert np.abs(np.delete(moved, np.r_[STREAK], axis=1)).max() < 1e-4


def test_both_views_of_a_pair_go_through_the_gate_as_each_would_alone(gate):
    rainy_left, derained_left, rainy_right, derained_right = _streaked_views()
    disparity = match_disparity(derained_left, derained_right, RANGE)
    fused = fuse_views(gate, *(torch.from_numpy(view).permute(2, 0, 1)[None] for view in
                               (rainy_left, rainy_right, derained_left, derained_right)),
                       RANGE, 'fp32')
    alone = (blend_view(gate, rainy_left, derained_left, rainy_right, derained_right, disparity,
                        'left'),
             blend_view(gate, rainy_right, derained_right, rainy_left, derained_left,
                        warp_disparity_to_right(disparity), 'right'))
    for batched, single in zip(fused, alone):
        assert np.abs(batched[0].permute(1, 2, 0).numpy() - single).max() < 1e-6


def test_the_gate_over_bands_of_rows_gives_what_it_gives_over_the_whole_frame(gate, monkeypatch):
    # 7 rows: 7 bands and a part
    monkeypatch.setattr('stereo_derain_ros.engine.pixel_layers.CPU_BAND_PIXELS', 7 * WIDTH)
    features = torch.rand(2, 6, HEIGHT + 4, WIDTH, generator=torch.Generator().manual_seed(1))
    features[:, 0] -= 0.2  # some pixels not darkened
    features[:, 3] = (features[:, 3] > 0.1).float()
    with torch.inference_mode():
        whole = gate(features.contiguous(memory_format=torch.channels_last)).numpy()
    banded = gate_shares(gate, features.numpy())
    assert gate.receptive_radius == 3 and banded.shape == whole.shape
    assert np.abs(banded - whole).max() < 1e-6


@pytest.mark.skipif(not CPU_FUSED_CONVOLUTION, reason='this torch lacks oneDNN fused convolutions')
@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_the_gate_with_fused_convolutions_gives_what_its_layers_give(gate, monkeypatch,
                                                                     precision):
    if precision == 'bf16' and not cpu_has_native_bf16():
        pytest.skip('this CPU runs no bf16 in hardware, so the engine never runs the gate in it')
    features = torch.rand(2, 6, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(2)) - 0.2
    features[:, 3] = (features[:, 3] > 0.1).float()
    fused = gate_shares(gate, features.numpy(), precision)
    monkeypatch.setattr('stereo_derain_ros.engine.pixel_layers.CPU_FUSED_CONVOLUTION', False)
    layer_by_layer = gate_shares(gate, features.numpy(), precision)
    assert 0 < (fused > 0).mean() < 1
    # The same to the bit on the Intel Xeon measured; oneDNN may order sums otherwise elsewhere.
    assert np.abs(fused - layer_by_layer).max() < (1e-6 if precision == 'fp32' else 1e-2)


def _called_otherwise(*args):
    raise RuntimeError('_convolution_pointwise() expected at most 9 arguments')


def _without_relu(features, weight, bias, padding, stride, dilation, groups, *attributes):
    return torch.nn.functional.conv2d(features, weight, bias, stride, padding, dilation, groups)


def test_the_pinned_torch_runs_the_gate_with_fused_convolutions():
    pinned = next(line.split('==')[1].split()[0] for line in
                  (REPO_ROOT / 'Makefile').read_text().splitlines()
                  if line.startswith('TORCH_SPEC ?= torch=='))
    if torch.__version__.split('+')[0] != pinned or not torch.backends.mkldnn.is_available():
        pytest.skip(f'torch {torch.__version__} is not the pinned {pinned} with oneDNN')
    assert CPU_FUSED_CONVOLUTION


@pytest.mark.parametrize('op', [_called_otherwise, _without_relu])
def test_a_torch_whose_fused_convolution_differs_runs_the_gate_layer_by_layer(monkeypatch, op):
    # The op is internal to PyTorch: another torch than the pinned one may change it.
    monkeypatch.setattr(torch.ops.mkldnn, '_convolution_pointwise', op)
    assert not _fused_convolution_works()


def test_a_bf16_gate_stays_closed_where_it_must_and_near_the_fp32_shares(gate):
    """The engine runs the gate in the network's precision; bf16 must not open closed pixels."""
    views = _streaked_views()
    disparity = np.full((HEIGHT, WIDTH), DISPARITY, np.float32)
    disparity[:, :DISPARITY] = np.nan
    features = gate_features(*views, disparity, 'left')[0][None]
    exact, half = (gate_shares(gate, features, precision) for precision in ('fp32', 'bf16'))
    closed = (features[:, 0] <= 0) | (features[:, 3] == 0)
    assert closed.any() and (half[:, :, closed[0]] == 0).all()
    assert np.abs(half - exact).max() < 0.1
    assert half[0, 0][:, STREAK].mean() == pytest.approx(exact[0, 0][:, STREAK].mean(), abs=0.02)


def test_the_packaged_gate_loads_vetted_and_others_are_refused(tmp_path):
    assert packaged_weights('fusion_gate') is not None
    with pytest.raises(CheckpointError, match="holds model 'bandnet', not a 'fusion_gate'"):
        build_fusion_gate_from_checkpoint(packaged_weights('bandnet'))
    wide = save_checkpoint(tmp_path / 'wide.safetensors', FusionGate(hidden=300))
    with pytest.raises(CheckpointError, match='has fusion gate config'):
        build_fusion_gate_from_checkpoint(wide)
    first_version = FusionGate(hidden=32)  # the per-pixel MLP gate of earlier versions
    first_version.layers = torch.nn.Sequential(
        torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32), torch.nn.ReLU(),
        torch.nn.Linear(32, 1))
    older = save_checkpoint(tmp_path / 'older.safetensors', first_version)
    with pytest.raises(CheckpointError, match='does not fit a fusion gate of width 32: .*'
                                              'retrain older ones'):
        build_fusion_gate_from_checkpoint(older)
    other_shares = FusionGate(hidden=16)  # same names, one layer of another shape: named
    other_shares.layers[-1] = torch.nn.Conv2d(16, 3, 1)
    other = save_checkpoint(tmp_path / 'other_shares.safetensors', other_shares)
    with pytest.raises(CheckpointError, match='width 16: tensors layers.6.bias, layers.6.weight;'):
        build_fusion_gate_from_checkpoint(other)
    broken = FusionGate(hidden=4)
    with torch.no_grad():
        broken.layers[0].weight[0, 0, 1, 1] = float('nan')
    path = save_checkpoint(tmp_path / 'nan.safetensors', broken)
    with pytest.raises(CheckpointError, match='NaN or infinite'):
        build_fusion_gate_from_checkpoint(path)


def test_the_fusion_matches_at_half_resolution_what_sgbm_finds_at_full():
    left, right = (view.astype(np.uint8) for view in _scene())
    full = sgbm_disparity(left, right, RANGE)
    half = match_disparity(left, right, RANGE)
    assert half.shape == full.shape and half.dtype == np.float32
    both = np.isfinite(full) & np.isfinite(half)
    assert both.mean() > 0.7 and not np.isfinite(half[:, :DISPARITY - 1]).any()
    assert np.abs(half[both] - DISPARITY).max() <= 0.5
    with pytest.raises(ValueError, match='^disparity_range must be a positive multiple of 16'):
        match_disparity(left, right, 24)


@pytest.mark.parametrize('width', [40, 63, 64])
def test_a_view_no_wider_than_the_search_range_has_no_match(width):
    # OpenCV's matcher raised on 40 and 64 columns and killed the process on 63.
    left = np.random.default_rng(3).integers(0, 256, (30, width, 3), np.uint8)
    disparity = sgbm_disparity(left, np.roll(left, -3, axis=1), 64)
    assert disparity.shape == (30, width) and np.isnan(disparity).all()


def test_the_right_disparity_is_the_left_one_seen_from_the_right():
    left = np.full((2, 12), np.nan, np.float32)
    left[0, 4:] = 3.0
    left[1, 2:6] = 1.0
    left[1, 6:] = 4.0  # nearer: where both land (columns 2-5), the right view sees it
    right = warp_disparity_to_right(left)
    assert np.array_equal(np.isinf(right[0]), (np.arange(12) == 0) | (np.arange(12) >= 9))
    assert (right[0, 1:9] == 3.0).all()
    assert (right[1, 2:8] == 4.0).all() and right[1, 1] == 1.0 and np.isinf(right[1, 0])


def test_a_warp_names_its_view():
    image = np.zeros((4, 8, 3), np.float32)
    with pytest.raises(ValueError, match="^view must be 'left' or 'right', got 'centre'"):
        warp_from_other_view(image, np.zeros((4, 8), np.float32), 'centre')


@pytest.mark.parametrize('value', [0, 8, 100, 64.0, True])
def test_a_search_range_that_is_no_multiple_of_16_is_refused(value):
    with pytest.raises(ValueError, match='^view_fusion_disparity_range must be a positive '
                                         'multiple of 16'):
        EngineConfig(view_fusion_disparity_range=value)


def test_the_engine_fuses_after_the_network_and_keeps_rain_free_pairs():
    """The packaged weights on a rain-free pair and on one with bright streaks in one view."""
    clean_left, clean_right = (view.astype(np.uint8) for view in _scene())
    plain = DerainEngine(EngineConfig(device='cpu', threads=1, warmup_shape=None))
    fusing = DerainEngine(EngineConfig(device='cpu', threads=1, warmup_shape=None,
                                       view_fusion=True, view_fusion_disparity_range=RANGE))
    for fused, network, clean in zip(fusing.derain(clean_left, clean_right),
                                     plain.derain(clean_left, clean_right),
                                     (clean_left, clean_right)):
        # What the network took for rain on a rain-free pair, both views show: given back.
        fused_error, network_error = (np.abs(view.astype(int) - clean).mean()
                                      for view in (fused, network))
        assert fused_error < 0.5 and fused_error <= network_error
    rainy_left = clean_left.copy()
    rainy_left[:, 30:130:12] = 250  # thin bright vertical streaks in the left view only
    rainy = (rainy_left, clean_right)
    errors = [np.abs(view.astype(float) - clean_left)[:, RANGE:].mean()
              for view in (plain.derain(*rainy)[0], fusing.derain(*rainy)[0])]
    assert errors[1] < errors[0]


def test_a_pair_narrower_than_the_search_range_comes_back_as_the_network_left_it():
    left, right = (view[:, :40].astype(np.uint8) for view in _scene())
    plain, fusing = (DerainEngine(EngineConfig(device='cpu', threads=1, warmup_shape=None,
                                               view_fusion=fused))
                     for fused in (False, True))
    for fused, network in zip(fusing.derain(left, right), plain.derain(left, right)):
        assert np.array_equal(fused, network)


def test_a_batch_is_fused_pair_by_pair():
    clean_left, clean_right = (view.astype(np.uint8) for view in _scene())
    streaked = clean_left.copy()
    streaked[:, 40:120:10] = 240
    engine = DerainEngine(EngineConfig(device='cpu', threads=1, warmup_shape=None,
                                       view_fusion=True, view_fusion_disparity_range=RANGE))
    lefts, rights = engine.derain_batch([streaked, clean_left], [clean_right, clean_right])
    for index, left in enumerate((streaked, clean_left)):
        single = engine.derain(left, clean_right)
        assert np.abs(lefts[index].astype(int) - single[0]).max() <= 1
        assert np.abs(rights[index].astype(int) - single[1]).max() <= 1


def test_train_fusion_gate_writes_a_gate_the_engine_vets(tmp_path, monkeypatch, capsys):
    """A short fit on the built-in photographs: a loadable gate with its recipe."""
    from stereo_derain_ros.cli import main
    from stereo_derain_ros.engine import load_checkpoint

    monkeypatch.setenv('STEREO_DERAIN_PHOTOS', str(tmp_path / 'no_cache'))
    out = tmp_path / 'gate.safetensors'
    argv = ['train-fusion-gate', '--out', str(out), '--pairs', '5', '--steps', '20',
            '--threads', '1', '--device', 'cpu', '--no-progress', '--lr', '3e-3']
    assert main(argv) == 0
    gate = build_fusion_gate_from_checkpoint(out)
    recipe = load_checkpoint(out)[1]['recipe']
    assert recipe['command'] == 'stereo-derain train-fusion-gate'
    assert (recipe['pairs'], recipe['steps'], recipe['seed'], recipe['learning_rate']) == (
        5, 20, 11, 3e-3)
    assert recipe['derainer'].endswith('bandnet.safetensors') and recipe['views'] == 10
    assert recipe['refiner'] == (  # the gate follows the refiners
        'packaged:refiner.safetensors (colour pairs: refiner_colour.safetensors)')
    features = torch.zeros(1, 6, 3, 4)
    features[0, 0, :, 1:] = 2.0  # darkened from column 1 on
    features[0, 3, :, 2:] = 1.0  # matched from column 2 on
    with torch.inference_mode():
        shares = gate(features)[0]
    assert (shares[:, :, :2] == 0).all()  # unchanged, or no match: closed
    assert ((shares[:, :, 2:] > 0) & (shares[:, :, 2:] <= 1)).all()
    printed = capsys.readouterr().out
    # Without bars the 20-step fit reports every tenth of its steps.
    assert 'wrote' in printed and printed.count('fit: step ') == 10
    assert 'fit: step 20 of 20, loss ' in printed
    clean_left, clean_right = (view.astype(np.uint8) for view in _scene())
    engine = DerainEngine(EngineConfig.from_options(device='cpu', threads=1, view_fusion=True,
                                                    view_fusion_gate=out, warmup_shape=None))
    assert engine.derain(clean_left, clean_right)[0].shape == clean_left.shape
    with pytest.raises(CheckpointError, match='missing.safetensors'):
        DerainEngine(EngineConfig(device='cpu', view_fusion=True, warmup_shape=None,
                                  view_fusion_gate=str(tmp_path / 'missing.safetensors')))
    assert main([*argv[:2], str(tmp_path / 'gate.pt'), *argv[3:]]) == 2
    assert main([*argv[:4], '0', *argv[5:]]) == 2


def test_a_fit_without_views_to_learn_from_or_views_too_small_says_so():
    from stereo_derain_ros.training.fusion_gate import fit_gate, GateViews
    from stereo_derain_ros.training.fusion_gate_config import GateTrainingConfig

    with pytest.raises(ValueError, match='^no derained view to learn from'):
        fit_gate(GateViews([], [], [], []), GateTrainingConfig(steps=1))
    small = GateViews([torch.zeros(6, 32, 80)], *([torch.zeros(3, 32, 80)] for _ in range(3)))
    with pytest.raises(ValueError, match='^training views are 32 px on their short side; '
                                         'expected at least the 64-px patch'):
        fit_gate(small, GateTrainingConfig(steps=1))
