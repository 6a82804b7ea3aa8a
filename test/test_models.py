"""Model registry, shapes, parameter/MAC counts, training signal and stereo behaviour."""

import json
import os
import subprocess
import sys

import pytest
import torch

from stereo_derain_ros.models import (
    available_models,
    build_model,
    count_macs,
    count_parameters,
    model_config,
    model_description,
    model_name,
    register_model,
)
from stereo_derain_ros.models.base import ParallaxModule
from stereo_derain_ros.models.blocks import LocalMean

from conftest import REPO_ROOT

# Small configurations keep the forward/backward tests fast on two shared CPU cores.
SMALL = {
    'bandnet': {'width': 8, 'encoder_blocks': (1, 1), 'middle_blocks': 1,
                'decoder_blocks': (1, 1)},
    'bandnet_mono': {'width': 8, 'encoder_blocks': (1, 1), 'middle_blocks': 1,
                     'decoder_blocks': (1, 1)},
    'apanet': {'width': 8, 'blocks': (1, 1, 1, 1), 'slots': 8},
    'stereoirr': {'widths': (8, 16, 32), 'encoder_blocks': (1, 1), 'middle_blocks': 1,
                  'decoder_blocks': (1, 1)},
}
ALL_MODELS = ['apanet', 'bandnet', 'bandnet_mono', 'stereoirr']


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def small_model(name: str) -> torch.nn.Module:
    return build_model(name, **SMALL.get(name, {}))


def wake_zero_initialised(model: torch.nn.Module) -> None:
    """Randomise the all-zero parameters (residual scales), as training would make them."""
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                torch.nn.init.normal_(parameter, std=0.3)


def small_pair(model: torch.nn.Module, height: int = 32, width: int = 64):
    height = -(-height // model.pad_multiple) * model.pad_multiple
    width = -(-width // model.pad_multiple) * model.pad_multiple
    return torch.rand(2, 3, height, width), torch.rand(2, 3, height, width)


def test_registry_lists_the_models():
    assert set(ALL_MODELS) <= set(available_models())
    assert available_models() == sorted(available_models())


def test_unknown_name_lists_available_models():
    with pytest.raises(ValueError, match='available models: .*bandnet'):
        build_model('no_such_net')


def test_unknown_config_field_is_named():
    with pytest.raises(ValueError, match="'widht'"):
        build_model('bandnet', widht=8)


def test_registering_a_class_without_dataclass_config_fails():
    with pytest.raises(TypeError, match='Config'):
        register_model('broken')(type('Broken', (torch.nn.Module,), {}))


@pytest.mark.parametrize('name', ALL_MODELS)
def test_config_round_trips_through_json(name):
    model = small_model(name)
    config = json.loads(json.dumps(model_config(model)))
    rebuilt = build_model(model_name(model), **config)
    assert model_config(rebuilt) == model_config(model)
    assert rebuilt.load_state_dict(model.state_dict()) is not None


@pytest.mark.parametrize('name', ALL_MODELS)
def test_forward_keeps_shapes(name):
    model = small_model(name)
    left, right = small_pair(model)
    left_out, right_out = model(left, right)
    assert left_out.shape == left.shape and right_out.shape == right.shape
    assert torch.isfinite(left_out).all() and torch.isfinite(right_out).all()


def test_fresh_model_is_close_to_identity_through_global_residual():
    # Zero-initialised block scales leave only entry/exit convs: output = input + small residual.
    model = small_model('bandnet')
    left, right = small_pair(model)
    left_out, _ = model(left, right)
    assert (left_out - left).abs().mean() < 0.5


def test_input_that_is_not_padded_is_rejected():
    model = small_model('bandnet')
    with pytest.raises(ValueError, match='multiples of 16'):
        model(torch.rand(1, 3, 30, 64), torch.rand(1, 3, 30, 64))
    with pytest.raises(ValueError, match='same shape'):
        model(torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 48))


def assert_every_parameter_learns(model: torch.nn.Module, left, right) -> None:
    """Two Adam steps on an output loss give every parameter a gradient (and move most of them).

    Zero-initialised residual scales (NAF blocks, cross-view attention, EAM) block the gradient
    of the weights behind them on the first step by design (skip-init); the scales themselves get
    a gradient at once, so by the second step every parameter must have received a non-zero
    gradient. (A parameter may still not move visibly: APANet's EAM layer norms sit behind
    memories initialised at std 1e-3, so their first gradients are too small to change a 1.0
    weight in fp32; the non-zero gradient is what shows they are wired in.)
    """
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    got_gradient = set()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    target_left, target_right = torch.rand_like(left), torch.rand_like(right)
    for step in range(2):
        optimiser.zero_grad()
        left_out, right_out = model(left, right)
        loss = (left_out - target_left).abs().mean() + (right_out - target_right).abs().mean()
        loss.backward()
        for name, parameter in model.named_parameters():
            if parameter.grad is not None and parameter.grad.abs().sum() > 0:
                got_gradient.add(name)
        if step == 0:
            scales = [name for name, p in model.named_parameters()
                      if name.endswith(('beta', 'gamma'))]
            assert scales and set(scales) <= got_gradient
        optimiser.step()
    idle = [name for name, p in model.named_parameters() if name not in got_gradient]
    assert not idle, f'parameters without gradient: {idle}'
    moved = [name for name, p in model.named_parameters() if not torch.equal(p, initial[name])]
    assert len(moved) >= 0.9 * len(initial)


@pytest.mark.parametrize('name', ALL_MODELS)
def test_one_training_step_moves_every_parameter(name):
    model = small_model(name)
    assert_every_parameter_learns(model, *small_pair(model))


def test_set_max_disparity_reaches_every_level_in_its_scale():
    model = small_model('bandnet')
    modules = [m for m in model.modules() if isinstance(m, ParallaxModule)]
    assert len(modules) == 3 and {m.scale for m in modules} == {8, 16}
    model.set_max_disparity(20)
    assert {(m.scale, m.max_disparity) for m in modules} == {(8, 3), (16, 2)}
    model.set_max_disparity(None)
    assert all(m.max_disparity is None for m in modules)
    with pytest.raises(ValueError, match='non-negative'):
        model.set_max_disparity(-1)


def test_cross_view_module_respects_the_band_in_its_own_scale():
    # At scale 8 a 16 px band is 2 feature columns: left column i reads right columns i-2..i.
    # (Whole models mix every column through channel attention's global pooling, so the band is
    # checked on the module.)
    from stereo_derain_ros.models.bandnet import SiameseParallaxAttention

    module = SiameseParallaxAttention(4, scale=8)
    torch.nn.init.normal_(module.beta)
    module.set_input_max_disparity(16)
    left, right = torch.rand(1, 4, 3, 12), torch.rand(1, 4, 3, 12)
    changed = right.clone()
    changed[..., 7:] += 1.0
    with torch.no_grad():
        before = module(left, right)
        after = module(left, changed)
    assert torch.allclose(before[0][..., :7], after[0][..., :7])
    assert not torch.allclose(before[0][..., 7:9], after[0][..., 7:9])
    # The right view reads left columns j..j+2, so its last columns ignore the left view's start.
    changed_left = left.clone()
    changed_left[..., :4] += 1.0
    with torch.no_grad():
        assert torch.allclose(module(changed_left, right)[1][..., 4:], before[1][..., 4:])


def test_bandnet_stereo_uses_the_other_view_and_mono_ignores_it():
    for name, depends in (('bandnet', True), ('bandnet_mono', False)):
        model = small_model(name)
        wake_zero_initialised(model)
        left, right = small_pair(model)
        with torch.no_grad():
            before, _ = model(left, right)
            after, _ = model(left, torch.rand_like(right))
        assert torch.allclose(before, after) != depends, name
        model.set_max_disparity(8)  # a no-op for the mono model, a band for the stereo one


def test_bandnet_and_its_mono_ablation_share_initial_weights_at_one_seed():
    torch.manual_seed(8)
    mono = small_model('bandnet_mono').state_dict()
    torch.manual_seed(8)
    stereo = small_model('bandnet').state_dict()
    assert set(mono) < set(stereo)
    assert all(torch.equal(stereo[key], mono[key]) for key in mono)


def test_bandnet_exchange_opens_from_cross_view_init():
    closed = small_model('bandnet')
    opened = build_model('bandnet', **SMALL['bandnet'], cross_view_init=0.1)
    left, right = small_pair(opened)
    for model, depends in ((closed, False), (opened, True)):
        with torch.no_grad():
            before, _ = model(left, right)
            after, _ = model(left, torch.rand_like(right))
        assert torch.allclose(before, after) != depends


def test_bandnet_default_size():
    model = build_model('bandnet')
    assert 500_000 <= count_parameters(model) <= 2_000_000
    assert count_parameters(build_model('bandnet_mono')) < count_parameters(model)
    assert 0.1e9 < count_macs(model, 128, 128) < 1e9


@pytest.mark.parametrize('name,scales', [('apanet', {1, 2, 4, 8}),
                                         ('stereoirr', {1, 2, 4})])
def test_set_max_disparity_bands_the_attention(name, scales):
    model = small_model(name)
    wake_zero_initialised(model)
    modules = [m for m in model.modules() if isinstance(m, ParallaxModule)]
    assert {m.scale for m in modules} == scales
    left, right = small_pair(model)
    with torch.no_grad():
        unbanded, _ = model(left, right)
        model.set_max_disparity(64)  # covers the 64-px row at every level: same result
        assert torch.allclose(model(left, right)[0], unbanded, atol=1e-5)
        model.set_max_disparity(4)
        assert {m.max_disparity for m in modules} == {-(-4 // s) for s in scales}
        assert not torch.allclose(model(left, right)[0], unbanded, atol=1e-5)


@pytest.mark.slow
def test_apanet_matches_published_size():
    model = build_model('apanet')
    assert model.pad_multiple == 8
    assert count_parameters(model) == pytest.approx(8.01e6, rel=0.01)
    assert count_macs(model, 128, 128) == pytest.approx(17.98e9, rel=0.03)


@pytest.mark.slow
def test_stereoirr_lands_near_published_size():
    model = build_model('stereoirr')
    assert count_parameters(model) == pytest.approx(39.69e6, rel=0.10)
    assert count_macs(model, 128, 128) == pytest.approx(9.26e9, rel=0.10)
    model.eval()
    with torch.no_grad():
        left_out, right_out = model(torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96))
    assert left_out.shape == right_out.shape == (1, 3, 64, 96)


@pytest.mark.slow
def test_apanet_default_forward_on_a_small_pair():
    model = build_model('apanet', max_disparity=16)
    with torch.no_grad():
        left_out, right_out = model(torch.rand(1, 3, 32, 64), torch.rand(1, 3, 32, 64))
    assert left_out.shape == right_out.shape == (1, 3, 32, 64)
    assert torch.isfinite(left_out).all()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'stereo_derain_ros', 'models', *args],
                          capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, 'PYTHONPATH': str(REPO_ROOT)})


@pytest.mark.slow
def test_models_command_lists_every_model():
    result = run_cli('--size', '64x48')
    assert result.returncode == 0, result.stderr
    assert 'GMACs@64x48' in result.stdout
    for name in available_models():
        line = next(line for line in result.stdout.splitlines() if line.startswith(name + ' '))
        assert model_description(name) in line
    assert '8.01M' in result.stdout


def test_models_command_rejects_a_bad_size():
    result = run_cli('--size', '640by360')
    assert result.returncode == 2
    assert "size must be WIDTHxHEIGHT with positive sides, e.g. 640x360, got '640by360'" in (
        result.stderr)


def windowed_means(maps: torch.Tensor, window: int) -> torch.Tensor:
    """Each pixel's mean over its window clipped at the borders, one window at a time (fp64)."""
    before, after = window // 2, (window - 1) // 2
    maps = maps.double()
    means = torch.empty_like(maps)
    for row in range(maps.shape[2]):
        for column in range(maps.shape[3]):
            rows = slice(max(0, row - before), row + after + 1)
            columns = slice(max(0, column - before), column + after + 1)
            means[:, :, row, column] = maps[:, :, rows, columns].mean((2, 3))
    return means


@pytest.mark.parametrize('window', [1, 2, 5, 8, 13, 40])
def test_local_mean_is_the_mean_over_each_clipped_window(window):
    maps = torch.randn(2, 3, 23, 37) + 5.0
    means = LocalMean(window)(maps)
    assert means.dtype == torch.float32
    assert torch.allclose(means.double(), windowed_means(maps, window), atol=1e-5)


def test_local_mean_of_bf16_maps_is_summed_in_fp32():
    # Under bf16 autocast the maps arrive in bf16; differences of running totals kept in bf16
    # were off by as much as the means themselves.
    maps = (torch.randn(1, 4, 46, 80) + 1.0).to(torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        means = LocalMean(32)(maps)
    assert means.dtype == torch.float32
    assert torch.allclose(means.double(), windowed_means(maps, 32), atol=1e-5)
