"""`stereo-derain derain` on real image files and folders, with a small real checkpoint."""

import os
from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import pytest
from small_models import small_bandnet

from stereo_derain_ros.cli import main
from stereo_derain_ros.engine import packaged_weights, save_checkpoint
from stereo_derain_ros.models import available_models

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp('weights') / 'small.safetensors'
    return str(save_checkpoint(path, small_bandnet()))


def write_pair(folder: Path, name: str, shape, dtype, seed=0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    left = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    paths = []
    for side, image in (('left', left), ('right', np.roll(left, -2, axis=1))):
        path = folder / side / name
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), image)
        paths.append(path)
    return paths[0], paths[1]


@pytest.mark.parametrize(('shape', 'dtype'), [
    ((27, 41, 3), np.uint8),
    ((27, 41), np.uint16),
    ((27, 41, 4), np.uint8),
])
def test_pair_is_written_with_the_inputs_size_channels_and_depth(tmp_path, weights, shape, dtype):
    left, right = write_pair(tmp_path / 'in', 'frame.png', shape, dtype)
    out = tmp_path / 'out'
    assert main(['derain', str(left), str(right), '--out-dir', str(out), '--weights', weights,
                 '--device', 'cpu']) == 0
    for source, result in ((left, out / 'left.png'), (right, out / 'right.png')):
        original = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
        derained = cv2.imread(str(result), cv2.IMREAD_UNCHANGED)
        assert derained.shape == original.shape
        assert derained.dtype == original.dtype
        assert not np.array_equal(derained, original)
        if shape[-1] == 4:
            np.testing.assert_array_equal(derained[..., 3], original[..., 3])


def test_folders_are_derained_pair_by_pair_under_their_names(tmp_path, weights, capsys):
    for seed, name in enumerate(['b.png', 'a.png', 'c.png']):
        write_pair(tmp_path / 'in', name, (16, 24, 3), np.uint8, seed)
    (tmp_path / 'in' / 'left' / 'notes.txt').write_text('not an image')
    out = tmp_path / 'out'
    assert main(['derain', '--left-dir', str(tmp_path / 'in' / 'left'),
                 '--right-dir', str(tmp_path / 'in' / 'right'), '--out-dir', str(out),
                 '--weights', weights, '--device', 'cpu', '--tile', '64x128',
                 '--tile-overlap', '8']) == 0
    for side in ('left', 'right'):
        assert sorted(path.name for path in (out / side).iterdir()) == ['a.png', 'b.png', 'c.png']
    assert 'derained 3 pair(s)' in capsys.readouterr().out


def test_missing_partner_is_named(tmp_path, weights, capsys):
    write_pair(tmp_path / 'in', 'a.png', (16, 24, 3), np.uint8)
    write_pair(tmp_path / 'in', 'b.png', (16, 24, 3), np.uint8)
    (tmp_path / 'in' / 'right' / 'b.png').unlink()
    assert main(['derain', '--left-dir', str(tmp_path / 'in' / 'left'),
                 '--right-dir', str(tmp_path / 'in' / 'right'), '--out-dir',
                 str(tmp_path / 'out'), '--weights', weights]) == 2
    assert 'left image b.png has no partner' in capsys.readouterr().err


def test_mismatched_pair_is_a_clear_error(tmp_path, weights, capsys):
    left, _ = write_pair(tmp_path / 'a', 'x.png', (16, 24, 3), np.uint8)
    _, right = write_pair(tmp_path / 'b', 'x.png', (16, 20, 3), np.uint8)
    assert main(['derain', str(left), str(right), '--out-dir', str(tmp_path / 'out'),
                 '--weights', weights, '--device', 'cpu']) == 2
    assert 'left and right images differ' in capsys.readouterr().err


def test_files_or_folders_must_be_given(tmp_path, capsys):
    assert main(['derain', '--out-dir', str(tmp_path)]) == 2
    assert 'give either LEFT and RIGHT' in capsys.readouterr().err


def test_untrained_default_model_runs_when_asked(tmp_path):
    left, right = write_pair(tmp_path / 'in', 'x.png', (20, 30, 3), np.uint8)
    assert main(['derain', str(left), str(right), '--out-dir', str(tmp_path / 'out'),
                 '--untrained', '--device', 'cpu', '--max-disparity', '32']) == 0
    assert cv2.imread(str(tmp_path / 'out' / 'left.png')).shape == (20, 30, 3)


def test_missing_weights_is_one_clear_line(tmp_path):
    unshipped = [name for name in available_models() if packaged_weights(name) is None]
    if not unshipped:
        pytest.skip('every model ships trained weights')
    left, right = write_pair(tmp_path / 'in', 'x.png', (16, 24, 3), np.uint8)
    env = {**os.environ, 'PYTHONPATH': str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, '-m', 'stereo_derain_ros', 'derain', str(left), str(right),
         '--out-dir', str(tmp_path / 'out'), '--model', unshipped[0]],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    assert result.returncode == 2
    assert result.stderr.count('\n') == 1
    assert 'no trained weights are packaged' in result.stderr
    assert '--untrained' in result.stderr
