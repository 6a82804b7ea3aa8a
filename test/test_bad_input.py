"""Bad-input matrix: checkpoints, `derain`, `bag` and `models` fail in one line or cope.

Every case runs the real command (in-process through `main(argv)`, or as a process where the
exit status, a signal or the node matter) under a time limit, and checks: no traceback, a
one-line error (or the documented skip report), no output that looks complete, and every input
file byte for byte as before (hashed).
"""

import hashlib
import json
import os
from pathlib import Path
import pickle
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from safetensors.torch import save_file
from small_models import small_bandnet
from stereo_bag_fixtures import BagSpec, frame_pixels, write_stereo_bag
import torch

from stereo_derain_ros.bagio.mcap_crc import write_chunk_crcs
from stereo_derain_ros.cli import main
from stereo_derain_ros.engine import load_checkpoint, save_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent
LEFT, RIGHT = '/stereo/left/image_rect', '/stereo/right/image_rect'
CASE_TIMEOUT_S = 60


def digest(folder: Path) -> str:
    """Hash every file's path and bytes under `folder`."""
    hasher = hashlib.sha256()
    for path in sorted(folder.rglob('*')):
        if path.is_file():
            hasher.update(str(path.relative_to(folder)).encode() + b'\0' + path.read_bytes())
    return hasher.hexdigest()


def rewrite(source: Path, target: Path, *, tensors=None, **metadata: str) -> Path:
    """Write `source`'s tensors (or `tensors(state_dict)`) under changed metadata to `target`."""
    state_dict, meta = load_checkpoint(source)
    raw = {'format': 'stereo_derain_ros.checkpoint', 'format_version': '1',
           'package_version': meta['package_version'], 'model': 'bandnet',
           'config': json.dumps(meta['config']), 'recipe': 'null', 'metrics': 'null', **metadata}
    save_file(tensors(state_dict) if tensors else state_dict, str(target), metadata=raw)
    return target


def jpeg_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode('.jpg', image)
    assert ok
    return encoded.tobytes()


@pytest.fixture(scope='module')
def inputs(tmp_path_factory) -> Path:
    """Every input of the matrix, in one folder that no case may change."""
    root = tmp_path_factory.mktemp('inputs')
    write_checkpoints(root)
    write_images(root / 'images')
    write_bags(root / 'bags')
    return root


def write_checkpoints(root: Path) -> None:
    """Write good.safetensors and, in checkpoints/, every bad variant the cases name."""
    good = save_checkpoint(root / 'good.safetensors', small_bandnet())
    config = load_checkpoint(good)[1]['config']
    bad = root / 'checkpoints'
    bad.mkdir()
    rewrite(good, bad / 'all_nan.safetensors',
            tensors=lambda sd: {k: torch.full_like(v, float('nan')) for k, v in sd.items()})
    rewrite(good, bad / 'one_inf.safetensors',
            tensors=lambda sd: {**sd, 'exit.0.bias': torch.full_like(sd['exit.0.bias'],
                                                                   float('inf'))})
    rewrite(good, bad / 'overflowing.safetensors',
            tensors=lambda sd: {k: torch.full_like(v, 1e30) for k, v in sd.items()})
    for name, change in (('huge_middle', {'middle_blocks': 5_000_000}),
                         ('negative_width', {'width': -8}), ('zero_width', {'width': 0}),
                         ('text_width', {'width': 'wide'}), ('float_width', {'width': 8.5}),
                         ('nan_scale', {'cross_view_init': float('nan')}),
                         ('huge_scale', {'cross_view_init': -1e300}),
                         ('zero_unshuffle', {'unshuffle': 0}), ('unknown_field', {'depth': 3}),
                         ('other_width', {'width': 16}),
                         ('long_list', {'encoder_blocks': [1] * 99}),
                         ('mismatched_levels', {'encoder_blocks': [1, 1]})):
        rewrite(good, bad / f'{name}.safetensors', config=json.dumps({**config, **change}))
    rewrite(good, bad / 'unknown_model.safetensors', model='transformer9000')
    rewrite(good, bad / 'newer_format.safetensors', format_version='7')
    rewrite(good, bad / 'config_not_json.safetensors', config='{width: 8')
    with (bad / 'pickle.safetensors').open('wb') as stream:
        pickle.dump({'weight': [1.0]}, stream)
    torch.save(small_bandnet().state_dict(), bad / 'torch_save.safetensors')
    data = good.read_bytes()
    (bad / 'truncated.safetensors').write_bytes(data[:len(data) // 2])
    (bad / 'header_only.safetensors').write_bytes(data[:8])
    (bad / 'empty.safetensors').write_bytes(b'')
    noise = np.random.default_rng(0).bytes(4096)
    (bad / 'garbage.safetensors').write_bytes(noise)
    (bad / 'proto_garbage.safetensors').write_bytes(b'\x80\xff' + noise)
    save_file({'x': torch.zeros(2)}, str(bad / 'foreign.safetensors'))
    (bad / 'a_folder.safetensors').mkdir()


def write_images(images: Path) -> None:
    """Write good, damaged and mismatched image files and folders."""
    images.mkdir()
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(images / 'left.png'), picture)
    cv2.imwrite(str(images / 'right.png'), np.roll(picture, -2, axis=1))
    cv2.imwrite(str(images / 'small.png'), picture[:32, :32])
    cv2.imwrite(str(images / 'deep.png'), picture.astype(np.uint16) * 257)
    full = jpeg_bytes(picture)
    (images / 'full.jpg').write_bytes(full)
    (images / 'truncated.jpg').write_bytes(full[:len(full) * 2 // 3])
    png = (images / 'left.png').read_bytes()
    (images / 'truncated.png').write_bytes(png[:len(png) // 2])
    (images / 'empty.png').write_bytes(b'')
    (images / 'text.jpg').write_text('not an image\n')
    for side in ('left', 'right'):
        (images / f'{side}_dir').mkdir()
        cv2.imwrite(str(images / f'{side}_dir' / 'a.png'), picture)
    cv2.imwrite(str(images / 'left_dir' / 'only_left.png'), picture)
    (images / 'empty_dir').mkdir()


def write_bags(bags: Path) -> None:
    """Write a good bag and bags with bad pairs, broken metadata and damaged storage."""
    bags.mkdir()
    write_stereo_bag(bags / 'good', BagSpec(frames=3))
    write_stereo_bag(bags / 'narrow_pair', BagSpec(frames=4, narrow_right=(1,)))
    write_stereo_bag(bags / 'corrupt_message', BagSpec(frames=4, corrupt_left=(2,)))
    write_stereo_bag(bags / 'bad_yaml', BagSpec(frames=1))
    (bags / 'bad_yaml' / 'metadata.yaml').write_text('rosbag2_bagfile_information: [not: valid')
    write_stereo_bag(bags / 'wrong_yaml', BagSpec(frames=1))
    (bags / 'wrong_yaml' / 'metadata.yaml').write_text('just: a mapping\n')
    write_stereo_bag(bags / 'truncated', BagSpec(frames=2))
    storage = next((bags / 'truncated').glob('*.mcap'))
    storage.write_bytes(storage.read_bytes()[:300])
    write_stereo_bag(bags / 'zeroed', BagSpec(frames=3))
    storage = next((bags / 'zeroed').glob('*.mcap'))
    write_chunk_crcs(storage)  # as the bag tools write it
    data = bytearray(storage.read_bytes())
    offset = data.find(frame_pixels(1, 0).tobytes()[:24])
    assert offset > 0  # the first pixels of frame 1's left image
    data[offset:offset + 64] = bytes(64)
    storage.write_bytes(bytes(data))
    (bags / 'not_a_bag').mkdir()


@pytest.fixture(scope='module')
def input_digest(inputs) -> str:
    return digest(inputs)


def run_cli(argv: list[str], capfd) -> tuple[int, str, str]:
    started = time.monotonic()
    status = main(argv)
    assert time.monotonic() - started < CASE_TIMEOUT_S
    out, err = capfd.readouterr()
    assert 'Traceback' not in out + err
    return status, out, err


def assert_one_line_error(status: int, err: str, expected: str) -> None:
    assert status == 2
    errors = [line for line in err.splitlines() if 'error:' in line]
    assert len(errors) == 1 and errors[0].startswith('stereo-derain: error: '), err
    assert expected in errors[0], errors[0]


CHECKPOINT_CASES = [
    ('all_nan', 'NaN or infinite values in'),
    ('one_inf', 'NaN or infinite values in 1 of'),
    ('huge_middle', 'middle_blocks=5000000; expected whole numbers from 0 to 64'),
    ('negative_width', 'width=-8; expected whole numbers'),
    ('zero_width', 'does not accept'),
    ('text_width', 'width="wide"'),
    ('float_width', 'width=8.5'),
    ('nan_scale', 'cross_view_init=NaN; expected finite numbers'),
    ('huge_scale', 'cross_view_init=-1e+300; expected finite numbers from -4096 to 4096'),
    ('zero_unshuffle', 'does not accept: ZeroDivisionError'),
    ('unknown_field', "has no config field 'depth'"),
    ('other_width', 'shape mismatches'),
    ('long_list', 'lists of up to 8'),
    ('mismatched_levels', 'does not accept'),
    ('unknown_model', "'transformer9000', which this version does not know"),
    ('newer_format', "format version '7'"),
    ('config_not_json', "unreadable 'config' metadata"),
    ('pickle', 'is a pickle'),
    ('torch_save', 'is a pickle'),
    ('truncated', 'is truncated'),
    ('header_only', 'is truncated'),
    ('empty', 'is truncated'),
    ('garbage', 'not a safetensors file'),
    ('proto_garbage', 'not a safetensors file'),
    ('foreign', 'not a stereo_derain_ros checkpoint'),
    ('a_folder', 'is not a file'),
    ('missing', 'checkpoint not found'),
]


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize(('name', 'expected'), CHECKPOINT_CASES)
def test_bad_checkpoint_is_refused_by_derain(inputs, input_digest, tmp_path, capfd, name,
                                             expected):
    images = inputs / 'images'
    status, _, err = run_cli(['derain', str(images / 'left.png'), str(images / 'right.png'),
                              '--out-dir', str(tmp_path / 'out'), '--device', 'cpu',
                              '--weights', str(inputs / 'checkpoints' / f'{name}.safetensors')],
                             capfd)
    assert_one_line_error(status, err, expected)
    assert not list(tmp_path.rglob('*.png'))
    assert digest(inputs) == input_digest


@pytest.mark.timeout(CASE_TIMEOUT_S)
def test_weights_that_overflow_give_an_error_not_black_images(inputs, input_digest, tmp_path,
                                                              capfd):
    images = inputs / 'images'
    status, _, err = run_cli(['derain', str(images / 'left.png'), str(images / 'right.png'),
                              '--out-dir', str(tmp_path), '--device', 'cpu', '--weights',
                              str(inputs / 'checkpoints' / 'overflowing.safetensors')], capfd)
    assert_one_line_error(status, err, 'NaN or infinite values, so there is no image')
    assert not list(tmp_path.rglob('*.png'))
    assert digest(inputs) == input_digest


def derain_argv(inputs: Path, out: Path, *positional: str, **options: str) -> list[str]:
    argv = ['derain', *positional, '--out-dir', str(out), '--device', 'cpu',
            '--weights', str(inputs / 'good.safetensors')]
    for key, value in options.items():
        argv += [f'--{key.replace("_", "-")}', value.format(images=inputs / 'images')]
    return argv


DERAIN_CASES = [
    (('{images}/truncated.jpg', '{images}/full.jpg'), {}, 'is a truncated JPEG'),
    (('{images}/full.jpg', '{images}/truncated.jpg'), {}, 'is a truncated JPEG'),
    (('{images}/truncated.png', '{images}/right.png'), {}, 'cannot read image'),
    (('{images}/empty.png', '{images}/right.png'), {}, 'cannot read image'),
    (('{images}/text.jpg', '{images}/right.png'), {}, 'cannot read image'),
    (('{images}/left.png', '{images}/small.png'), {}, 'left and right images differ'),
    (('{images}/left.png', '{images}/deep.png'), {}, 'differ'),
    (('{images}/left.png', '{images}/nothing.png'), {}, 'image not found'),
    (('{images}/left.png',), {}, 'give either LEFT and RIGHT'),
    (('{images}/left.png', '{images}/right.png'), {'left_dir': '{images}/left_dir'},
     'give either LEFT and RIGHT'),
    ((), {'left_dir': '{images}/left_dir', 'right_dir': '{images}/right_dir'},
     'has no partner'),
    ((), {'left_dir': '{images}/empty_dir', 'right_dir': '{images}/empty_dir'}, 'no images'),
    ((), {'left_dir': '{images}/missing', 'right_dir': '{images}/right_dir'},
     'folder not found'),
    (('{images}/left.png', '{images}/right.png'), {'device': 'cuda:7'}, 'cuda'),
    (('{images}/left.png', '{images}/right.png'), {'precision': 'int8'}, 'unknown precision'),
    (('{images}/left.png', '{images}/right.png'), {'max_disparity': '-4'}, 'max_disparity'),
    (('{images}/left.png', '{images}/right.png'), {'model': 'bandnet_mono'},
     'not the requested'),
]


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize(('positional', 'options', 'expected'), DERAIN_CASES)
def test_bad_derain_input_is_one_line(inputs, input_digest, tmp_path, capfd, positional,
                                      options, expected):
    argv = derain_argv(inputs, tmp_path / 'out',
                       *(path.format(images=inputs / 'images') for path in positional),
                       **options)
    status, _, err = run_cli(argv, capfd)
    assert_one_line_error(status, err, expected)
    assert not list(tmp_path.rglob('*.png'))
    assert digest(inputs) == input_digest


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize('out_dir', ['/proc/stereo_derain_out', 'FILE'])
def test_derain_into_an_unusable_folder_fails_first(inputs, input_digest, tmp_path, capfd,
                                                    out_dir):
    if out_dir == 'FILE':
        out_dir = tmp_path / 'a_file'
        out_dir.write_text('')
    images = inputs / 'images'
    status, _, err = run_cli(derain_argv(inputs, Path(out_dir), str(images / 'left.png'),
                                         str(images / 'right.png')), capfd)
    assert_one_line_error(status, err, 'cannot create the output folder')
    assert digest(inputs) == input_digest


def bag_argv(inputs: Path, bag: str, output: Path, *extra: str) -> list[str]:
    return ['bag', str(inputs / 'bags' / bag), str(output), '--left', LEFT, '--right', RIGHT,
            '--device', 'cpu', '--weights', str(inputs / 'good.safetensors'), *extra]


BAG_CASES = [
    ('missing', (), 'does not exist'),
    ('not_a_bag', (), 'not a rosbag2 directory'),
    ('bad_yaml', (), "metadata.yaml is not valid YAML: expected ',' or ']'"),
    ('wrong_yaml', (), 'cannot open bag'),
    ('truncated', (), 'looks corrupt'),
    ('zeroed', (), 'Chunk checksum mismatch'),
    ('good', ('--left', '/camera/left'), '/camera/left is not in the bag'),
    ('good', ('--left', RIGHT), 'left and right topics are the same'),
    ('good', ('--left', '/chatter'), 'has type std_msgs/msg/String'),
    ('good', ('--batch-size', '0'), 'batch size must be at least 1'),
    ('good', ('--stamp-tolerance', '-1'), 'stamp tolerance must be >= 0'),
    ('good', ('--output-namespace', '/'), 'namespace must not be empty'),
    ('good', ('--output-namespace', '/stereo'), 'already exist in the input bag'),
]


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize(('bag', 'extra', 'expected'), BAG_CASES)
def test_bad_bag_input_is_one_line_and_writes_nothing(inputs, input_digest, tmp_path, capfd,
                                                      bag, extra, expected):
    status, _, err = run_cli(bag_argv(inputs, bag, tmp_path / 'out', *extra), capfd)
    assert_one_line_error(status, err, expected)
    assert not list(tmp_path.iterdir())
    assert digest(inputs) == input_digest


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize('output', ['EXISTS', 'INPUT', 'NO_PARENT', '/proc/derained',
                                    'LIVE_PARTIAL'])
def test_bag_output_location_is_checked_first(inputs, input_digest, tmp_path, capfd, output):
    expected = {'EXISTS': 'exists already', 'INPUT': 'is the input bag',
                'NO_PARENT': 'does not exist', '/proc/derained': 'is not writable',
                'LIVE_PARTIAL': 'is being written by process 1'}[output]
    target = {'EXISTS': tmp_path / 'out', 'INPUT': inputs / 'bags' / 'good',
              'NO_PARENT': tmp_path / 'no' / 'out', 'LIVE_PARTIAL': tmp_path / 'out'}.get(
        output, Path(output))
    if output == 'EXISTS':
        target.mkdir()
    if output == 'LIVE_PARTIAL':
        (tmp_path / 'out.partial-1').mkdir()  # PID 1 always runs
    status, _, err = run_cli(bag_argv(inputs, 'good', target), capfd)
    assert_one_line_error(status, err, expected)
    assert 'model' not in err  # refused before any engine was built
    assert digest(inputs) == input_digest


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize(('bag', 'reason', 'pairs'), [
    ('narrow_pair', 'left image is 16x24x3 rgb uint8 but right image is 16x12x3', 3),
    ('corrupt_message', 'cannot deserialise', 3),
])
def test_bad_pairs_are_skipped_and_reported(inputs, input_digest, tmp_path, capfd, bag, reason,
                                            pairs):
    status, out, err = run_cli(bag_argv(inputs, bag, tmp_path / 'out'), capfd)
    assert status == 0
    assert f'{pairs} pairs derained' in out
    assert 'skipped 1 image(s) or pair(s)' in err and reason in err
    assert sorted(path.name for path in (tmp_path / 'out').iterdir()) == ['metadata.yaml',
                                                                          'out.mcap']
    assert digest(inputs) == input_digest


@pytest.mark.timeout(CASE_TIMEOUT_S)
def test_stale_partial_output_of_a_killed_run_is_removed(inputs, input_digest, tmp_path, capfd):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    stale = tmp_path / f'out.partial-{dead.pid}'
    (stale / 'out').mkdir(parents=True)
    (stale / 'out' / 'out.mcap').write_bytes(b'half a bag')
    status, out, _ = run_cli(bag_argv(inputs, 'good', tmp_path / 'out'), capfd)
    assert status == 0
    assert f'note: removed {stale}, left by a run that was killed' in out
    assert sorted(path.name for path in tmp_path.iterdir()) == ['out']
    assert digest(inputs) == input_digest


def subprocess_env() -> dict[str, str]:
    return {**os.environ, 'PYTHONPATH': str(REPO_ROOT)}


@pytest.mark.timeout(CASE_TIMEOUT_S * 2)
def test_sigterm_during_bag_cleans_up_like_ctrl_c(inputs, input_digest, tmp_path):
    write_stereo_bag(tmp_path / 'long', BagSpec(frames=1000))
    process = subprocess.Popen(
        [sys.executable, '-m', 'stereo_derain_ros', 'bag', str(tmp_path / 'long'),
         str(tmp_path / 'out'), '--left', LEFT, '--right', RIGHT, '--device', 'cpu',
         '--weights', str(inputs / 'good.safetensors'), '--batch-size', '1'],
        stderr=subprocess.PIPE, text=True, env=subprocess_env())
    deadline = time.monotonic() + CASE_TIMEOUT_S
    while not list(tmp_path.glob('out.partial-*/out/*.mcap')) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=CASE_TIMEOUT_S)
    assert process.returncode == 130, err
    assert 'stereo-derain: interrupted' in err and 'Traceback' not in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ['long']
    assert digest(inputs) == input_digest


@pytest.mark.timeout(CASE_TIMEOUT_S * 2)
def test_node_refuses_an_all_nan_checkpoint(inputs, input_digest):
    weights = inputs / 'checkpoints' / 'all_nan.safetensors'
    result = subprocess.run(
        [sys.executable, '-m', 'stereo_derain_ros.node', '--ros-args', '-p',
         f'weights:={weights}', '-p', 'device:=cpu'],
        capture_output=True, text=True, timeout=CASE_TIMEOUT_S * 2, env=subprocess_env())
    assert result.returncode != 0
    assert 'NaN or infinite values' in result.stderr and 'Traceback' not in result.stderr
    assert digest(inputs) == input_digest


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize('size', ['1280x720', '4096x4096'])
def test_models_counts_large_sizes_without_running_them(capfd, size):
    status, out, _ = run_cli(['models', '--size', size], capfd)
    assert status == 0
    assert f'GMACs@{size}' in out and 'bandnet' in out
