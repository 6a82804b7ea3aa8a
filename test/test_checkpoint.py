"""Checkpoints: safetensors round trip, and a clear CheckpointError for every bad file."""

import json
import pickle

import numpy as np
import pytest
from safetensors.torch import save_file
from small_models import SMALL_BANDNET, small_bandnet
import torch

from stereo_derain_ros.engine import (
    build_model_from_checkpoint,
    CheckpointError,
    DerainEngine,
    EngineConfig,
    load_checkpoint,
    save_checkpoint,
)
from stereo_derain_ros.models import build_model, model_config

torch.set_num_threads(1)
RECIPE = {'dataset': 'synthetic-kitti', 'steps': 1000, 'crop': [128, 384]}
METRICS = {'psnr': 31.5, 'ssim': 0.91}


@pytest.fixture
def model():
    return small_bandnet(seed=3)


@pytest.fixture
def checkpoint(tmp_path, model):
    return save_checkpoint(tmp_path / 'bandnet.safetensors', model, recipe=RECIPE,
                           metrics=METRICS)


def test_round_trip_keeps_metadata_and_outputs(checkpoint, model):
    state_dict, metadata = load_checkpoint(checkpoint)
    assert metadata['model'] == 'bandnet'
    assert metadata['config'] == model_config(model)
    assert metadata['recipe'] == RECIPE
    assert metadata['metrics'] == METRICS
    assert metadata['format_version'] == 1
    assert set(state_dict) == set(model.state_dict())

    rebuilt = build_model_from_checkpoint(checkpoint)
    assert not rebuilt.training
    generator = torch.Generator().manual_seed(0)
    left, right = (torch.rand(1, 3, 16, 32, generator=generator) for _ in range(2))
    with torch.no_grad():
        for expected, actual in zip(model(left, right), rebuilt(left, right)):
            torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_engine_from_checkpoint_matches_engine_from_model(checkpoint, model):
    from_file = DerainEngine(EngineConfig(weights=str(checkpoint), device='cpu'))
    in_memory = DerainEngine(EngineConfig(device='cpu'), model=model)
    rng = np.random.default_rng(0)
    left, right = (rng.integers(0, 256, (21, 30, 3), dtype=np.uint8) for _ in range(2))
    for a, b in zip(from_file.derain(left, right), in_memory.derain(left, right)):
        np.testing.assert_array_equal(a, b)
    assert from_file.model_name == 'bandnet'


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, model):
    target = tmp_path / 'nested' / 'model.safetensors'
    save_checkpoint(target, model)
    save_checkpoint(target, model, metrics={'psnr': 1.0})
    assert [path.name for path in target.parent.iterdir()] == ['model.safetensors']
    assert load_checkpoint(target)[1]['metrics'] == {'psnr': 1.0}


def test_metadata_that_is_not_json_is_refused(tmp_path, model):
    with pytest.raises(ValueError, match='metrics must be JSON-serialisable'):
        save_checkpoint(tmp_path / 'x.safetensors', model, metrics={'model': model})
    assert not list(tmp_path.iterdir())


def test_decimal_config_field_round_trips(tmp_path):
    torch.manual_seed(3)
    opened = build_model('bandnet', **SMALL_BANDNET, cross_view_init=0.25)
    path = save_checkpoint(tmp_path / 'opened.safetensors', opened)
    rebuilt = build_model_from_checkpoint(path)
    assert model_config(rebuilt)['cross_view_init'] == 0.25
    assert torch.equal(rebuilt.state_dict()['middle.cross_view.beta'],
                       opened.state_dict()['middle.cross_view.beta'])


def test_missing_file(tmp_path):
    path = tmp_path / 'absent.safetensors'
    with pytest.raises(CheckpointError, match=f'checkpoint not found: {path}'):
        load_checkpoint(path)


@pytest.mark.parametrize('writer', ['torch.save', 'pickle'])
def test_pickles_are_refused_without_unpickling(tmp_path, model, writer):
    path = tmp_path / 'model.pth'
    if writer == 'torch.save':
        torch.save(model.state_dict(), path)
    else:
        path.write_bytes(pickle.dumps({'weights': [1, 2, 3]}, protocol=4))
    with pytest.raises(CheckpointError, match='is a pickle') as error:
        build_model_from_checkpoint(path)
    assert str(path) in str(error.value)


def test_header_length_that_starts_like_a_pickle_loads(tmp_path, model):
    # A header length with 0x80 as its low byte makes the file begin with pickle's PROTO
    # opcode; a resumed training run once hit this and was refused as a pickle.
    for padding in range(256):
        path = save_checkpoint(tmp_path / f'padded-{padding}.safetensors', model,
                               recipe=RECIPE | {'note': 'x' * padding})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail('no padding gave a header length ending in 0x80')
    state_dict, metadata = load_checkpoint(path)
    assert metadata['recipe']['note'] == 'x' * padding
    assert state_dict.keys() == model.state_dict().keys()


@pytest.mark.parametrize('keep', [0, 5, 40, 0.5])
def test_truncated_files(checkpoint, keep):
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[:int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError, match='truncated') as error:
        load_checkpoint(checkpoint)
    assert str(checkpoint) in str(error.value)


def test_garbage_file(tmp_path):
    path = tmp_path / 'noise.safetensors'
    path.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00' + b'not json at all!' + bytes(64))
    with pytest.raises(CheckpointError, match='not a safetensors file'):
        load_checkpoint(path)


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / 'foreign.safetensors'
    save_file({'weight': torch.zeros(2, 2)}, str(path))
    with pytest.raises(CheckpointError, match='not a stereo_derain_ros checkpoint'):
        load_checkpoint(path)


def test_other_model_name_is_refused(checkpoint):
    with pytest.raises(CheckpointError, match="holds model 'bandnet', not the requested "
                                              "'bandnet_mono'"):
        build_model_from_checkpoint(checkpoint, expected_model='bandnet_mono')
    with pytest.raises(CheckpointError, match='not the requested'):
        DerainEngine(EngineConfig(model='bandnet_mono', weights=str(checkpoint), device='cpu'))


def rewrite_metadata(path, **changes):
    """Keep a checkpoint's tensors but change its metadata, as a mislabelled file would."""
    state_dict, metadata = load_checkpoint(path)
    raw = {'format': 'stereo_derain_ros.checkpoint', 'format_version': '1',
           'package_version': metadata['package_version'], 'model': metadata['model'],
           'config': json.dumps(metadata['config']), 'recipe': 'null', 'metrics': 'null'}
    raw.update(changes)
    save_file(state_dict, str(path), metadata=raw)


def test_state_dict_of_another_shape_is_refused(checkpoint):
    config = {**json.loads(json.dumps(SMALL_BANDNET)), 'width': 16, 'max_disparity': 16}
    rewrite_metadata(checkpoint, config=json.dumps(config))
    with pytest.raises(CheckpointError, match='does not fit model .bandnet.: .*shape mismatch'):
        build_model_from_checkpoint(checkpoint)


def test_state_dict_of_another_architecture_is_refused(tmp_path):
    mono = build_model('bandnet_mono', **SMALL_BANDNET)
    path = save_checkpoint(tmp_path / 'mono.safetensors', mono)
    rewrite_metadata(path, model='bandnet', config=json.dumps(model_config(mono) | {
        'stereo': True}))
    with pytest.raises(CheckpointError, match='missing tensors') as error:
        build_model_from_checkpoint(path)
    assert str(path) in str(error.value)


def test_unknown_model_and_newer_format_are_refused(checkpoint):
    rewrite_metadata(checkpoint, model='transformer9000')
    with pytest.raises(CheckpointError, match="'transformer9000', which this version does not"):
        build_model_from_checkpoint(checkpoint)
    rewrite_metadata(checkpoint, format_version='7')
    with pytest.raises(CheckpointError, match="format version '7'"):
        load_checkpoint(checkpoint)
