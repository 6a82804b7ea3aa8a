"""Datasets: on-the-fly synthetic crops, folder readers for every layout, synth round trip."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from stereo_derain_ros.cli import main as cli_main
from stereo_derain_ros.data.folders import (
    DatasetLayoutError,
    find_layout,
    read_disparity,
    StereoFolderDataset,
    write_disparity,
)
from stereo_derain_ros.data.synthetic import (
    sample_arrays,
    synthesize,
    SyntheticRainConfig,
    SyntheticStereoRain,
)

SMALL = SyntheticRainConfig(crop_height=32, crop_width=48)


def small_dataset(length=6, seed=0, **kwargs):
    return SyntheticStereoRain(length, seed, SMALL, with_alpha=True, with_disparity=True,
                               **kwargs)


def test_sample_structure():
    item = small_dataset()[0]
    assert set(item) == {'rainy_left', 'rainy_right', 'clean_left', 'clean_right',
                         'alpha_left', 'alpha_right', 'disparity'}
    for key in ('rainy_left', 'rainy_right', 'clean_left', 'clean_right'):
        assert item[key].shape == (3, 32, 48) and item[key].dtype == torch.float32
        assert 0.0 <= item[key].min() and item[key].max() <= 1.0
    for key in ('alpha_left', 'alpha_right', 'disparity'):
        assert item[key].shape == (1, 32, 48)
    assert set(SyntheticStereoRain(1, 0, SMALL)[0]) == {'rainy_left', 'rainy_right',
                                                       'clean_left', 'clean_right'}


def test_sample_is_fully_determined_by_seed_and_index():
    first = small_dataset(seed=0)[3]
    again = small_dataset(seed=0)[3]
    other_index = small_dataset(seed=0)[4]
    other_seed = small_dataset(seed=1)[3]
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not torch.equal(first['clean_left'], other_index['clean_left'])
    assert not torch.equal(first['clean_left'], other_seed['clean_left'])


def warp_error(left, right, disparity, disparity_right):
    """Return mean |left - right warped by disparity| on pixels both views see."""
    height, width = disparity.shape
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x = xs - disparity
    warped = cv2.remap(right, map_x, ys, cv2.INTER_LINEAR)
    back = cv2.remap(disparity_right, map_x, ys, cv2.INTER_NEAREST)
    mask = (np.abs(back - disparity) < 0.25) & (map_x >= 0)
    return float(np.abs(warped - left)[mask].mean())


def test_crops_are_identical_in_both_views_and_flip_swap_keeps_them_consistent():
    config = SyntheticRainConfig(crop_height=48, crop_width=96, sources=('procedural',),
                                 presets=('light',), renderers=('particles',))
    sample = synthesize(config, 21)
    flipped_any = False
    for draw in range(8):
        arrays = sample_arrays(sample, np.random.default_rng(draw), True, True)
        disparity = arrays['disparity_left'][0]
        assert (disparity[np.isfinite(disparity)] >= 0).all()
        left = arrays['clean_left'].transpose(1, 2, 0)
        right = arrays['clean_right'].transpose(1, 2, 0)
        unwarped = float(np.abs(left - right).mean())
        error = warp_error(left, right, disparity, arrays['disparity_right'][0])
        assert error < 0.3 * unwarped
        if np.array_equal(disparity, sample.disparity_right[:, ::-1]):
            flipped_any = True
            assert np.allclose(arrays['clean_left'][:, :, ::-1].sum(0) * 255,
                               sample.clean_right.sum(2), atol=1e-3)
        else:
            assert np.array_equal(disparity, sample.disparity_left)
    assert flipped_any


def test_channel_permutation_is_shared_by_all_images():
    config = SyntheticRainConfig(crop_height=32, crop_width=48, flip_swap=False)
    sample = synthesize(config, 5)
    for draw in range(6):
        arrays = sample_arrays(sample, np.random.default_rng(draw), False, True)
        order = [int(np.argmin([np.abs(arrays['clean_left'][c] * 255 - sample.clean_left[..., k])
                                .sum() for k in range(3)])) for c in range(3)]
        reordered = sample.clean_right[..., order].transpose(2, 0, 1) / 255.0
        assert np.allclose(arrays['clean_right'], reordered, atol=1e-6)


def collect(loader):
    return [batch['rainy_left'] for batch in loader]


@pytest.mark.slow
def test_dataloader_workers_give_distinct_and_reproducible_samples():
    dataset = small_dataset(length=6)
    loader = DataLoader(dataset, batch_size=1, num_workers=2, shuffle=False)
    first, second = collect(loader), collect(loader)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    # Items 0, 2, 4 come from one worker and 1, 3, 5 from the other: none may repeat.
    flat = [batch.flatten() for batch in first]
    assert all(not torch.equal(flat[i], flat[j]) for i in range(6) for j in range(i + 1, 6))
    assert torch.equal(first[3][0], dataset[3]['rainy_left'])


def test_bad_config_is_named():
    with pytest.raises(ValueError, match='unknown scene sources'):
        SyntheticRainConfig(sources=('kitti',))
    with pytest.raises(ValueError, match='unknown rain preset'):
        SyntheticRainConfig(presets=('drizzle',))


# --- folder readers ---------------------------------------------------------------------------

def write_image(path: Path, value: int, size=(24, 16), channels=3):
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    image = np.full((height, width, channels), value, np.uint8) if channels else np.full(
        (height, width), value, np.uint8)
    cv2.imwrite(str(path), image)


def build(root: Path, folders, names=('a', 'b'), size=(24, 16)):
    for index, folder in enumerate(folders):
        for name in names:
            write_image(root / folder / f'{name}.png', 40 * index + 10, size)


LAYOUT_TREES = {
    'apanet': ['testing/rain_left', 'testing/rain_right', 'testing/gt_left', 'testing/gt_right'],
    'prrnet': ['image_2_3_rain50', 'image_3_2_rain50', 'image_2_3_norain', 'image_3_2_norain'],
    'generic': ['rain/left', 'rain/right', 'norain/left', 'norain/right'],
    'unpaired': ['train/left', 'train/right'],
}


@pytest.mark.parametrize('layout', sorted(LAYOUT_TREES))
def test_every_layout_is_detected_and_read(tmp_path, layout):
    build(tmp_path, LAYOUT_TREES[layout])
    for name in (layout, 'auto'):
        dataset = StereoFolderDataset(tmp_path, layout=name)
        assert dataset.layout.name == layout
        assert len(dataset) == 2 and dataset.names == ['a', 'b']
        item = dataset[1]
        assert item['rainy_left'].shape == (3, 16, 24)
        assert item['rainy_left'].mean().item() == pytest.approx(10 / 255)
        assert item['rainy_right'].mean().item() == pytest.approx(50 / 255)
        assert dataset.paired == (layout != 'unpaired')
        if dataset.paired:
            assert item['clean_left'].mean().item() == pytest.approx(90 / 255)
            assert item['clean_right'].mean().item() == pytest.approx(130 / 255)
        else:
            assert 'clean_left' not in item


def test_grey_and_16_bit_images_become_rgb_in_unit_range(tmp_path):
    build(tmp_path, LAYOUT_TREES['unpaired'])
    cv2.imwrite(str(tmp_path / 'train/left/a.png'), np.full((16, 24), 65535, np.uint16))
    write_image(tmp_path / 'train/right/a.png', 255, channels=0)
    item = StereoFolderDataset(tmp_path)[0]
    assert item['rainy_left'].shape == (3, 16, 24) and item['rainy_left'].max() == 1.0
    assert item['rainy_right'].min() == 1.0


def test_missing_partner_is_named(tmp_path):
    build(tmp_path, LAYOUT_TREES['generic'])
    (tmp_path / 'norain/right/b.png').unlink()
    with pytest.raises(DatasetLayoutError, match=r'no partner in .*norain/right for b\.png'):
        StereoFolderDataset(tmp_path)


def test_extra_file_without_partner_is_named(tmp_path):
    build(tmp_path, LAYOUT_TREES['prrnet'])
    write_image(tmp_path / 'image_3_2_rain50/c.png', 0)
    with pytest.raises(DatasetLayoutError, match=r'image_2_3_rain50 for c\.png'):
        StereoFolderDataset(tmp_path)


def test_size_mismatch_is_named(tmp_path):
    build(tmp_path, LAYOUT_TREES['apanet'])
    write_image(tmp_path / 'testing/gt_right/b.png', 0, size=(20, 16))
    with pytest.raises(DatasetLayoutError, match=r"'b' differ in size.*gt_right/b\.png is 20x16"):
        StereoFolderDataset(tmp_path)


def test_empty_folder_is_named(tmp_path):
    build(tmp_path, LAYOUT_TREES['unpaired'])
    for path in (tmp_path / 'train/right').iterdir():
        path.unlink()
    with pytest.raises(DatasetLayoutError, match=r'train/right holds no images'):
        StereoFolderDataset(tmp_path)


def test_unknown_folder_and_layout_and_ambiguous_splits(tmp_path):
    with pytest.raises(DatasetLayoutError, match='does not exist'):
        StereoFolderDataset(tmp_path / 'nowhere')
    (tmp_path / 'photos').mkdir()
    with pytest.raises(DatasetLayoutError, match='no known stereo rain layout'):
        StereoFolderDataset(tmp_path)
    with pytest.raises(DatasetLayoutError, match='unknown layout'):
        StereoFolderDataset(tmp_path, layout='kitti')
    build(tmp_path, LAYOUT_TREES['apanet'])
    build(tmp_path, [p.replace('testing', 'training') for p in LAYOUT_TREES['apanet']])
    with pytest.raises(DatasetLayoutError, match='several splits'):
        StereoFolderDataset(tmp_path)
    assert find_layout(tmp_path, split='training').base == tmp_path / 'training'
    with pytest.raises(DatasetLayoutError, match='does not exist'):
        find_layout(tmp_path, split='val')


@pytest.mark.parametrize('suffix', ['npy', 'png'])
def test_disparity_alongside_is_read(tmp_path, suffix):
    build(tmp_path, LAYOUT_TREES['generic'])
    (tmp_path / 'disparity').mkdir()
    disparity = np.full((16, 24), 12.5, np.float32)
    disparity[0, 0] = np.inf
    for name in ('a', 'b'):
        write_disparity(tmp_path / 'disparity' / f'{name}.{suffix}', disparity)
    item = StereoFolderDataset(tmp_path)[0]
    assert item['disparity'].shape == (1, 16, 24)
    assert np.array_equal(item['disparity'][0].numpy(), disparity)
    assert np.array_equal(read_disparity(tmp_path / 'disparity' / f'a.{suffix}'), disparity)


def test_missing_disparity_is_named(tmp_path):
    build(tmp_path, LAYOUT_TREES['generic'])
    (tmp_path / 'disparity').mkdir()
    np.save(tmp_path / 'disparity' / 'a.npy', np.zeros((16, 24), np.float32))
    with pytest.raises(DatasetLayoutError, match=r'no partner in .*disparity for b\.png'):
        StereoFolderDataset(tmp_path)


# --- synth ------------------------------------------------------------------------------------

def test_synth_writes_apanet_layout_that_the_readers_read_back(tmp_path, capsys):
    out = tmp_path / 'set'
    assert cli_main(['synth', str(out), '--count', '3', '--size', '48x32', '--preset', 'heavy',
                     '--seed', '7']) == 0
    dataset = StereoFolderDataset(out)
    assert dataset.layout.name == 'apanet' and dataset.layout.base == out / 'testing'
    assert len(dataset) == 3
    item = dataset[2]
    assert set(item) == {'rainy_left', 'rainy_right', 'clean_left', 'clean_right', 'disparity'}
    assert item['rainy_left'].shape == (3, 32, 48)
    manifest = json.loads((out / 'synth.json').read_text())['testing']
    assert manifest['preset'] == 'heavy' and manifest['count'] == 3
    assert manifest['seed'] == 7 and [s['index'] for s in manifest['samples']] == [0, 1, 2]
    assert all(s['scene'] for s in manifest['samples'])
    # The written pair is exactly the dataset's sample for that seed (before augmentation).
    config = SyntheticRainConfig(crop_height=32, crop_width=48, presets=('heavy',))
    expected = synthesize(config, 7, 2)
    assert np.allclose(item['clean_left'].numpy().transpose(1, 2, 0) * 255, expected.clean_left,
                       atol=0.5)
    assert np.array_equal(item['disparity'][0].numpy(), expected.disparity_left)
    # A second split joins the same manifest; a used split is refused.
    assert cli_main(['synth', str(out), '--count', '1', '--size', '48x32', '--split',
                     'training', '--disparity-format', 'png']) == 0
    assert set(json.loads((out / 'synth.json').read_text())) == {'testing', 'training'}
    assert cli_main(['synth', str(out), '--count', '1', '--size', '48x32']) == 2
    assert 'already holds files' in capsys.readouterr().err


def test_synth_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(['synth', str(tmp_path), '--count', '1', '--size', 'big'])
    assert "size must be WIDTHxHEIGHT with positive sides, e.g. 640x360, got 'big'" in (
        capsys.readouterr().err)
    assert cli_main(['synth', str(tmp_path), '--count', '1', '--size', '8x8']) == 2
    assert '--size must be at least 16x16, got 8x8' in capsys.readouterr().err
    assert cli_main(['synth', str(tmp_path)]) == 2
    assert 'needs OUT and --count' in capsys.readouterr().err
