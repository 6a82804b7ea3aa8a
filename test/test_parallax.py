"""Banded parallax attention agrees with the explicit masked W x W form and trains."""

import pytest
import torch

from stereo_derain_ros.models.parallax import (
    band_mask,
    banded_parallax_attention,
    full_parallax_attention,
    image_from_rows,
    parallax_attention,
    parallax_attention_pair,
    rows_from_image,
)

TOLERANCE = 1e-5


def random_rows(width: int, channels: int = 8, batch: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, width, channels, generator=generator) for _ in range(3)]


@pytest.mark.parametrize('view', ['left', 'right'])
@pytest.mark.parametrize('width', [1, 7, 33, 61])
def test_band_covering_the_row_equals_full_attention(view, width):
    query, key, value = random_rows(width)
    reference = full_parallax_attention(query, key, value, view)
    for disparity in (width - 1, width + 5):
        banded = banded_parallax_attention(query, key, value, view, disparity)
        assert (banded - reference).abs().max() < TOLERANCE


@pytest.mark.parametrize('view', ['left', 'right'])
@pytest.mark.parametrize('width,disparity,chunk', [
    (37, 0, None), (37, 3, None), (61, 10, 4), (61, 10, 16), (45, 20, 7), (101, 48, None)])
def test_narrow_band_equals_full_attention_with_band_mask(view, width, disparity, chunk):
    query, key, value = random_rows(width, seed=width + disparity)
    reference = full_parallax_attention(query, key, value, view, disparity)
    banded = banded_parallax_attention(query, key, value, view, disparity, chunk=chunk)
    assert banded.shape == reference.shape
    assert (banded - reference).abs().max() < TOLERANCE


def test_band_excludes_negative_disparities_and_far_columns():
    # Left query 5 with D = 2 may see right columns 3..5 only; changing others changes nothing.
    query, key, value = random_rows(12, batch=1)
    before = banded_parallax_attention(query, key, value, 'left', 2)
    key2, value2 = key.clone(), value.clone()
    for column in (0, 1, 2, 6, 7):
        key2[:, column] += 5.0
        value2[:, column] -= 3.0
    after = banded_parallax_attention(query, key2, value2, 'left', 2)
    assert torch.allclose(before[:, 5], after[:, 5])
    assert not torch.allclose(before[:, 6], after[:, 6])


def test_band_mask_directions():
    left = band_mask(5, 1, 'left')
    assert left[3].tolist() == [False, False, True, True, False]
    assert band_mask(5, 1, 'right')[3].tolist() == [False, False, False, True, True]
    assert torch.equal(band_mask(6, None, 'left'), torch.ones(6, 6, dtype=torch.bool).tril())


@pytest.mark.parametrize('disparity', [None, 4, 40])
def test_pair_matches_single_direction_attention(disparity):
    query_left, query_right, value_left = random_rows(23)
    value_right = torch.randn_like(value_left)
    to_left, to_right = parallax_attention_pair(query_left, query_right, value_left, value_right,
                                                disparity)
    band = disparity if disparity is not None and disparity < 22 else None
    assert (to_left - full_parallax_attention(query_left, query_right, value_right, 'left',
                                              band)).abs().max() < TOLERANCE
    assert (to_right - full_parallax_attention(query_right, query_left, value_left, 'right',
                                               band)).abs().max() < TOLERANCE


def test_gradients_flow_through_banded_attention():
    query, key, value = (t.requires_grad_() for t in random_rows(29))
    parallax_attention(query, key, value, 'right', 5).square().sum().backward()
    for tensor in (query, key, value):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0


def test_rows_round_trip():
    image = torch.randn(2, 5, 3, 7)
    rows = rows_from_image(image)
    assert rows.shape == (6, 7, 5)
    assert torch.equal(image_from_rows(rows, 2), image)


def test_bad_view_is_rejected():
    with pytest.raises(ValueError, match='view'):
        parallax_attention(*random_rows(5), 'up')


@pytest.mark.parametrize('max_disparity', [None, 4])
def test_fp16_logits_do_not_overflow(max_disparity):
    """Unscaled, 64 products of 40 x 40 sum to 102400 > fp16's 65504; scaled first they fit."""
    rows = torch.full((1, 16, 64), 40.0, dtype=torch.float16)
    values = torch.rand(1, 16, 8, dtype=torch.float16)
    to_left, to_right = parallax_attention_pair(rows, rows, values, values, max_disparity)
    assert torch.isfinite(to_left).all() and torch.isfinite(to_right).all()
