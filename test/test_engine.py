"""DerainEngine on real small models: layouts, padding, tiling, batching, fall-back, errors."""

import numpy as np
import pytest
from small_models import SMALL_BANDNET, small_bandnet
import torch
import torch.nn.functional as F

from stereo_derain_ros.engine import (
    DerainEngine,
    EngineConfig,
    EngineError,
    MissingWeightsError,
    packaged_weights,
)
from stereo_derain_ros.engine.layout import pad_to_multiple
from stereo_derain_ros.engine.precision import cpu_has_native_bf16
from stereo_derain_ros.engine.tiling import tiled_forward
from stereo_derain_ros.models import available_models

torch.set_num_threads(1)
HEIGHT, WIDTH = 37, 53


@pytest.fixture(scope='module')
def model():
    return small_bandnet()


@pytest.fixture(scope='module')
def engine(model):
    return DerainEngine(EngineConfig(device='cpu', precision='fp32', warmup_shape=(16, 16)),
                        model=model)


def random_pair(shape, dtype, seed=0):
    """Return a left view and a right view that is the left shifted by 3 px, plus noise."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    left = rng.integers(0, top, shape, dtype=dtype, endpoint=True)
    right = np.roll(left, -3, axis=1)
    right[:2] = rng.integers(0, top, right[:2].shape, dtype=dtype, endpoint=True)
    return left, right


@pytest.mark.parametrize(('shape', 'dtype', 'order'), [
    ((HEIGHT, WIDTH), np.uint8, None),
    ((HEIGHT, WIDTH), np.uint16, 'mono'),
    ((HEIGHT, WIDTH, 1), np.uint8, 'mono'),
    ((HEIGHT, WIDTH, 3), np.uint8, 'rgb'),
    ((HEIGHT, WIDTH, 3), np.uint16, 'rgb'),
    ((HEIGHT, WIDTH, 3), np.uint8, 'bgr'),
    ((HEIGHT, WIDTH, 3), np.uint16, 'bgr'),
    ((1, 1, 3), np.uint8, 'rgb'),
    ((3, 70), np.uint8, 'mono'),
])
def test_output_keeps_shape_dtype_and_changes_pixels(engine, shape, dtype, order):
    left, right = random_pair(shape, dtype)
    left_out, right_out = engine.derain(left, right, order)
    for image_in, image_out in ((left, left_out), (right, right_out)):
        assert image_out.shape == image_in.shape
        assert image_out.dtype == image_in.dtype
    assert not np.array_equal(left_out, left)


def model_on_reflect_padded(model, left, right):
    """Return the model's left output on uint16 RGB views padded as the engine pads them."""

    def as_tensor(image):
        return torch.from_numpy(image.astype(np.float32) / 65535).permute(2, 0, 1)[None]

    padded = [F.pad(as_tensor(view), (0, -WIDTH % 8, 0, -HEIGHT % 8), mode='reflect')
              for view in (left, right)]
    with torch.no_grad():
        expected, _ = model(*padded)
    return expected[0, :, :HEIGHT, :WIDTH].clamp(0, 1).permute(1, 2, 0).numpy() * 65535


def test_output_is_the_model_on_reflect_padded_input(engine, model):
    left, right = random_pair((HEIGHT, WIDTH, 3), np.uint16)
    left_out, right_out = engine.derain(left, right, 'rgb')
    expected = model_on_reflect_padded(model, left, right)
    assert np.abs(left_out.astype(np.float64) - expected).max() <= 1.0
    assert right_out.dtype == np.uint16


@pytest.mark.parametrize('channels_last', [True, False])
def test_memory_layout_changes_speed_not_pixels(channels_last):
    layout = torch.channels_last if channels_last else torch.contiguous_format
    engine = DerainEngine(EngineConfig(device='cpu', precision='fp32', channels_last=channels_last,
                                       warmup_shape=None), model=small_bandnet(pool_window=8))
    assert all(parameter.is_contiguous(memory_format=layout)
               for parameter in engine.model.parameters() if parameter.dim() == 4)
    left, right = random_pair((HEIGHT, WIDTH, 3), np.uint16, seed=1)
    left_out, _ = engine.derain(left, right, 'rgb')
    expected = model_on_reflect_padded(small_bandnet(pool_window=8), left, right)
    assert np.abs(left_out.astype(np.float64) - expected).max() <= 1.0


@pytest.mark.parametrize('precision', ['bf16', 'fp16', 'auto'])
def test_half_precision_on_the_cpu_is_bf16_where_the_cpu_runs_it(precision, caplog):
    """bf16 runs on CPUs with AVX512-BF16 or AMX, within 2 levels of fp32.

    auto takes it there and exact fp32 elsewhere, silently; fp16, and bf16 on other CPUs, fall
    back to fp32 with a warning.
    """
    caplog.set_level('INFO', logger='stereo_derain_ros.engine.precision')
    engine = DerainEngine(EngineConfig(device='cpu', precision=precision, warmup_shape=None),
                          model=small_bandnet(pool_window=8))
    native = precision in ('bf16', 'auto') and cpu_has_native_bf16()
    assert engine.precision == ('bf16' if native else 'fp32')
    refused = precision != 'auto' and not native
    assert refused == any('running fp32' in record.getMessage() for record in caplog.records)
    left, right = random_pair((HEIGHT, WIDTH, 3), np.uint16, seed=2)
    out = engine.derain(left, right, 'rgb')[0].astype(np.float64)
    error = np.abs(out - model_on_reflect_padded(small_bandnet(pool_window=8), left, right))
    assert error.max() <= (2 * 257 if native else 1)
    assert (error.mean() > 2) == native


def test_bgr_input_gives_the_rgb_result_with_channels_swapped(engine):
    left, right = random_pair((HEIGHT, WIDTH, 3), np.uint8)
    rgb_left, rgb_right = engine.derain(left, right, 'rgb')
    bgr_left, bgr_right = engine.derain(left[..., ::-1], right[..., ::-1], 'bgr')
    np.testing.assert_array_equal(bgr_left, rgb_left[..., ::-1])
    np.testing.assert_array_equal(bgr_right, rgb_right[..., ::-1])


def test_mono_is_the_channel_mean_of_the_replicated_colour_result(engine):
    left, right = random_pair((HEIGHT, WIDTH), np.uint8)
    mono_left, _ = engine.derain(left, right, 'mono')
    colour_left, _ = engine.derain(np.dstack([left] * 3), np.dstack([right] * 3), 'rgb')
    unclipped = ((colour_left > 0) & (colour_left < 255)).all(axis=2)
    assert unclipped.mean() > 0.25
    difference = np.abs(mono_left.astype(int) - colour_left.astype(float).mean(axis=2))
    assert difference[unclipped].max() <= 1


def test_the_right_view_changes_the_left_output(engine):
    left, right = random_pair((32, 48, 3), np.uint8)
    other_right = random_pair((32, 48, 3), np.uint8, seed=1)[1]
    assert not np.array_equal(engine.derain(left, right)[0], engine.derain(left, other_right)[0])


def test_batch_matches_single_pairs(engine):
    pairs = [random_pair((HEIGHT, WIDTH, 3), np.uint8, seed) for seed in range(3)]
    lefts, rights = engine.derain_batch([p[0] for p in pairs], [p[1] for p in pairs], 'bgr')
    assert len(lefts) == len(rights) == 3
    for (left, right), left_out, right_out in zip(pairs, lefts, rights):
        single_left, single_right = engine.derain(left, right, 'bgr')
        assert np.abs(left_out.astype(int) - single_left).max() <= 1
        assert np.abs(right_out.astype(int) - single_right).max() <= 1


@pytest.fixture(scope='module')
def four_pass_engine(model):
    return DerainEngine(EngineConfig(device='cpu', precision='fp32', self_ensemble=4,
                                     warmup_shape=None), model=model)


def test_four_passes_make_the_output_follow_both_flips_of_the_pair(engine, four_pass_engine):
    """Upside down, and mirrored with the views swapped: the pair stays rectified under both."""
    left, right = random_pair((HEIGHT, WIDTH, 3), np.uint8)
    out_left, out_right = four_pass_engine.derain(left, right)
    upside_left, upside_right = four_pass_engine.derain(left[::-1], right[::-1])
    mirror_left, mirror_right = four_pass_engine.derain(right[:, ::-1], left[:, ::-1])
    for expected, got in ((out_left, upside_left[::-1]), (out_right, upside_right[::-1]),
                          (out_left, mirror_right[:, ::-1]), (out_right, mirror_left[:, ::-1])):
        assert np.abs(expected.astype(int) - got).max() <= 1
    single_left = engine.derain(left, right)[0]
    assert not np.array_equal(out_left, single_left)
    assert not np.array_equal(single_left, engine.derain(left[::-1], right[::-1])[0][::-1])


def test_two_passes_average_the_pair_and_its_upside_down_copy(engine, model):
    left, right = random_pair((HEIGHT, WIDTH, 3), np.uint16)
    two = DerainEngine(EngineConfig(device='cpu', precision='fp32', self_ensemble=2,
                                    warmup_shape=None), model=model)
    upright, flipped = engine.derain(left, right), engine.derain(left[::-1], right[::-1])
    averaged = two.derain(left, right)
    for view in (0, 1):
        passes = np.stack([upright[view], flipped[view][::-1]]).astype(float)
        # The engine clips the mean, not each pass: compare where no pass was clipped.
        unclipped = ((passes > 0) & (passes < 65535)).all(axis=0)
        assert unclipped.mean() > 0.5
        mean = passes.mean(axis=0)
        assert np.abs(averaged[view] - mean)[unclipped].max() <= 1


@pytest.mark.parametrize('passes', [0, 3, 8, 2.0, True])
def test_unsupported_self_ensemble_names_the_supported_passes(passes):
    with pytest.raises(ValueError, match=r'^self_ensemble must be one of 1, 2, 4 '):
        EngineConfig(self_ensemble=passes)


def test_tiled_output_is_close_to_untiled(engine, model):
    left, right = random_pair((100, 200, 3), np.uint8)
    tiled = DerainEngine(EngineConfig(device='cpu', precision='fp32', tile=(64, 112),
                                      tile_overlap=8, warmup_shape=None), model=model)
    assert tiled.max_disparity == 16
    assert 0 < tiled.tile_margin < 32
    whole = engine.derain(left, right)
    for tiled_view, whole_view in zip(tiled.derain(left, right), whole):
        difference = np.abs(tiled_view.astype(int) - whole_view)
        assert difference.mean() < 0.5
        assert difference.max() <= 2


def band_mean(left, right, band=8):
    """Stereo operator: each view becomes the mean of the other view over its disparity band."""
    width = left.shape[-1]
    columns = torch.arange(width)
    offset = columns[None, :] - columns[:, None]
    to_left = ((offset <= 0) & (offset >= -band)).float()
    to_right = to_left.T
    return (right @ to_left.T / to_left.sum(1),
            left @ to_right.T / to_right.sum(1))


def band_mean_twice(left, right):
    """Two stacked exchanges: each view then depends on both views 8 columns to either side."""
    return band_mean(*band_mean(left, right))


@pytest.mark.parametrize('forward', [band_mean, band_mean_twice])
@pytest.mark.parametrize('context', [8, 0])
def test_tiles_carry_the_disparity_band(forward, context):
    generator = torch.Generator().manual_seed(0)
    left = torch.rand(1, 3, 8, 100, generator=generator)
    right = torch.rand(1, 3, 8, 100, generator=generator)
    expected = forward(left, right)
    tiled = tiled_forward(forward, left, right, tile=(8, 40), overlap=4, context=context,
                          tile_batch=3)
    matches = [torch.allclose(out, ref, atol=1e-5) for out, ref in zip(tiled, expected)]
    assert matches == ([True, True] if context == 8 else [False, False])


def test_padding_works_for_tiny_images():
    image = torch.arange(6.0).reshape(1, 1, 2, 3)
    padded = pad_to_multiple(image, 8)
    assert padded.shape == (1, 1, 8, 8)
    torch.testing.assert_close(padded[..., :2, :3], image)
    torch.testing.assert_close(padded[0, 0, 0, 3], image[0, 0, 0, 1])


def test_fall_back_switches_to_tiles_then_gives_up_on_cpu(model):
    engine = DerainEngine(EngineConfig(device='cpu', fallback_tile=(64, 112), tile_overlap=8,
                                       warmup_shape=None), model=model)
    left, right = random_pair((100, 200, 3), np.uint8)
    whole = engine.derain(left, right)
    assert engine.tile is None
    assert 'tiles of 64x112' in engine.fall_back()
    assert engine.tile == (64, 112)
    tiled = engine.derain(left, right)
    assert np.abs(tiled[0].astype(int) - whole[0]).mean() < 1.0
    with pytest.raises(EngineError, match='nothing left to fall back to'):
        engine.fall_back()


def test_out_of_memory_switches_to_tiling_automatically(caplog):
    model = small_bandnet()
    budget = 64 * 112

    def limit_memory(module, inputs):
        if inputs[0].shape[-2] * inputs[0].shape[-1] > budget:
            raise torch.OutOfMemoryError('simulated: tried to allocate more than the budget')

    model.register_forward_pre_hook(limit_memory)
    engine = DerainEngine(EngineConfig(device='cpu', fallback_tile=(64, 112), tile_overlap=8,
                                       warmup_shape=None), model=model)
    left, right = random_pair((100, 200, 3), np.uint8)
    left_out, right_out = engine.derain(left, right)
    assert engine.tile == (64, 112)
    assert left_out.shape == left.shape
    assert 'out of memory' in caplog.text


@pytest.mark.parametrize(('left_shape', 'right_shape', 'message'), [
    ((32, 48, 3), (32, 40, 3), 'left and right images differ'),
    ((32, 48, 4), (32, 48, 4), '4 channels'),
    ((32, 48, 2), (32, 48, 2), 'expected 1 \\(mono\\) or 3'),
    ((32, 48, 3, 1), (32, 48, 3, 1), 'expected H×W'),
])
def test_bad_shapes_are_rejected_clearly(engine, left_shape, right_shape, message):
    with pytest.raises(ValueError, match=message):
        engine.derain(np.zeros(left_shape, np.uint8), np.zeros(right_shape, np.uint8))


def test_bad_dtype_and_channel_order_are_rejected_clearly(engine):
    with pytest.raises(ValueError, match='dtype float32; expected uint8 or uint16'):
        engine.derain(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match='differ'):
        engine.derain(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint16))
    with pytest.raises(ValueError, match="channel order 'mono'"):
        engine.derain(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), 'mono')
    with pytest.raises(ValueError, match="unknown channel order 'rgba'"):
        engine.derain(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), 'rgba')


@pytest.mark.parametrize(('field', 'value', 'allowed'), [
    ('device', 'gpu', 'auto, cpu, cuda, cuda:N'),
    ('precision', 'int8', 'auto, fp32, fp16, bf16'),
])
def test_unknown_device_or_precision_lists_the_allowed_values(field, value, allowed):
    with pytest.raises(ValueError, match=allowed):
        EngineConfig(**{field: value})


def test_tile_narrower_than_the_band_is_rejected(model):
    with pytest.raises(ValueError, match='2 x \\(max_disparity \\+ margin\\) \\+ overlap'):
        DerainEngine(EngineConfig(device='cpu', tile=32, tile_overlap=16, max_disparity=16),
                     model=model)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message on a CPU-only host')
def test_cuda_without_cuda_is_a_clear_error(model):
    with pytest.raises(EngineError, match='CUDA is not available'):
        DerainEngine(EngineConfig(device='cuda:0'), model=model)


def test_missing_packaged_weights_explain_how_to_go_on():
    unshipped = [name for name in available_models() if packaged_weights(name) is None]
    if not unshipped:
        pytest.skip('every model ships trained weights')
    with pytest.raises(MissingWeightsError, match='no trained weights are packaged') as error:
        DerainEngine(EngineConfig(model=unshipped[0], device='cpu'))
    assert '--untrained' in str(error.value)
    assert '--weights' in str(error.value)


def test_untrained_runs_when_explicitly_allowed():
    engine = DerainEngine(EngineConfig(allow_untrained=True, model_overrides=SMALL_BANDNET,
                                       device='cpu', max_disparity=8, warmup_shape=None))
    left, right = random_pair((16, 24), np.uint8)
    assert engine.derain(left, right)[0].shape == (16, 24)
    assert engine.max_disparity == 8


def test_batch_needs_equal_size_pairs(engine):
    small, large = random_pair((16, 24), np.uint8), random_pair((16, 32), np.uint8)
    with pytest.raises(ValueError, match='a batch needs equal-size pairs'):
        engine.derain_batch([small[0], large[0]], [small[1], large[1]])
    with pytest.raises(ValueError, match='2 left images but 1 right'):
        engine.derain_batch([small[0], small[0]], [small[1]])
    assert engine.derain_batch([], []) == ([], [])
