"""The real pairs reserved for independent evaluation, read from a cache laid out as collected."""

from dataclasses import asdict
import json

import numpy as np
from PIL import Image
import pytest
import torch

from stereo_derain_ros.data.heldout import heldout_set, HeldoutError, REAL_SETS
from stereo_derain_ros.data.reserved_pairs import (
    ALOE_SCALE,
    MANIFEST,
    OAKD_NUM_DISPARITIES,
    RESERVED_FOLDER,
    reserved_scene,
    ReservedPair,
)

SHIFT_PX = 12  # the whole-pixel disparity of the test pairs at full size


def _textured_pair(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    base = rng.integers(0, 256, (height // 4, (width + SHIFT_PX) // 4 + 1, 3), dtype=np.uint8)
    wide = np.asarray(Image.fromarray(base).resize((base.shape[1] * 4, height),
                                                   Image.Resampling.BICUBIC))
    left = wide[:, :width].copy()
    right = wide[:, SHIFT_PX:SHIFT_PX + width].copy()  # left pixel x is right pixel x - SHIFT_PX
    return left, right


def _reserved_cache(photos):
    folder = photos / RESERVED_FOLDER
    left, right = _textured_pair(128, 192)
    grey_left, grey_right = (np.asarray(Image.fromarray(view).convert('L'))
                             for view in _textured_pair(96, 320))
    files = {'gt/left.png': left, 'gt/right.png': right,
             'gt/disparity.png': np.full(left.shape[:2], SHIFT_PX, np.uint8),
             'mono/left.png': grey_left, 'mono/right.png': grey_right}
    for file, array in files.items():
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(folder / file)
    common = {'package': 'test', 'version': '0', 'licence': 'test', 'original': 'test',
              'sha256': '0' * 64}
    pairs = [ReservedPair(name='gt', mono=False, left='gt/left.png', right='gt/right.png',
                          disparity='gt/disparity.png', **common),
             ReservedPair(name='mono', mono=True, left='mono/left.png', right='mono/right.png',
                          disparity=None, **common)]
    (folder / MANIFEST).write_text(json.dumps({'pairs': [asdict(pair) for pair in pairs]}))
    return pairs


def test_real_sets_render_every_reserved_pair_colour_and_mono(tmp_path):
    _reserved_cache(tmp_path)
    medium = heldout_set('real-medium', tmp_path)
    assert len(medium) == 2 and [medium.scene_name(i) for i in range(2)] == ['gt', 'mono']
    colour, mono = medium[0], medium[1]
    assert colour['rainy_left'].shape == (3, 128 * ALOE_SCALE, 192 * ALOE_SCALE)
    assert not torch.equal(colour['clean_left'][0], colour['clean_left'][1])
    assert torch.equal(mono['rainy_left'][0], mono['rainy_left'][2])
    for sample in (colour, mono):
        assert not torch.equal(sample['rainy_left'], sample['clean_left'])
    assert torch.equal(heldout_set('real-medium', tmp_path)[1]['rainy_right'],
                       mono['rainy_right'])
    clean = heldout_set('real-clean', tmp_path)[1]
    assert torch.equal(clean['rainy_left'], clean['clean_left'])


def test_ground_truth_disparity_is_scaled_with_the_pair_and_sgbm_fills_in_without_it(tmp_path):
    gt_pair, mono_pair = _reserved_cache(tmp_path)
    scene = reserved_scene(tmp_path, gt_pair)
    assert np.allclose(scene.disparity_left, SHIFT_PX * ALOE_SCALE)
    assert scene.focal_px == scene.size[0]
    # SGBM's search range leaves the image in the leftmost OAKD_NUM_DISPARITIES columns.
    estimated = reserved_scene(tmp_path, mono_pair).disparity_left[:, OAKD_NUM_DISPARITIES:]
    matched = np.isfinite(estimated)
    assert matched.mean() > 0.5
    assert np.median(estimated[matched]) == pytest.approx(SHIFT_PX, abs=0.5)


def test_without_the_cache_the_error_says_how_to_collect_it(tmp_path):
    with pytest.raises(HeldoutError, match='stereo-derain photos --reserved'):
        heldout_set('real-light', tmp_path)
    assert set(REAL_SETS) == {'real-light', 'real-medium', 'real-heavy', 'real-clean'}
