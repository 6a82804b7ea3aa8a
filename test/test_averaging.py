"""`stereo-derain average`: weighted means of real checkpoints, and clear refusals."""

import json

import pytest
from safetensors import safe_open
from safetensors.torch import save_file
from small_models import small_bandnet
import torch

from stereo_derain_ros.cli import main
from stereo_derain_ros.engine import (
    build_model_from_checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from stereo_derain_ros.engine.checkpoint import build_refiner_from_checkpoint
from stereo_derain_ros.models.fusion_gate import FusionGate
from stereo_derain_ros.models.refiner import Refiner, RefinerConfig
from stereo_derain_ros.training.averaging import average_checkpoints, average_parts

torch.set_num_threads(1)


@pytest.fixture
def parts(tmp_path):
    first = save_checkpoint(tmp_path / 'a.safetensors', small_bandnet(seed=1),
                            recipe={'model': 'bandnet', 'steps': 3, 'step': 3})
    second = save_checkpoint(tmp_path / 'b.safetensors', small_bandnet(seed=2),
                             recipe={'model': 'bandnet', 'steps': 5, 'step': 5})
    return first, second


def test_weighted_mean_of_every_tensor_and_a_recipe_of_the_parts(tmp_path, parts):
    out = tmp_path / 'soup.safetensors'
    assert main(['average', str(out), *map(str, parts), '--shares', '1,3']) == 0
    averaged, metadata = load_checkpoint(out)
    first, second = (load_checkpoint(path)[0] for path in parts)
    assert set(averaged) == set(first)
    for key, value in averaged.items():
        torch.testing.assert_close(value, 0.25 * first[key] + 0.75 * second[key])
    assert not torch.equal(first['entry.1.weight'], second['entry.1.weight'])
    assert metadata['recipe'] == {'model': 'bandnet', 'average': [
        {'checkpoint': str(parts[0]), 'share': 0.25,
         'recipe': {'model': 'bandnet', 'steps': 3, 'step': 3}},
        {'checkpoint': str(parts[1]), 'share': 0.75,
         'recipe': {'model': 'bandnet', 'steps': 5, 'step': 5}}]}
    assert metadata['config'] == load_checkpoint(parts[0])[1]['config']
    left, right = torch.rand(2, 1, 3, 16, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outputs = build_model_from_checkpoint(out)(left, right)
    assert all(output.shape == left.shape and output.isfinite().all() for output in outputs)


def test_equal_shares_by_default(parts):
    assert [part.share for part in average_parts(list(parts), None)] == [0.5, 0.5]
    model, recipe = average_checkpoints(average_parts(list(parts), None))
    first, second = (load_checkpoint(path)[0] for path in parts)
    torch.testing.assert_close(model.state_dict()['entry.1.weight'],
                               (first['entry.1.weight'] + second['entry.1.weight']) / 2)
    assert [part['share'] for part in recipe['average']] == [0.5, 0.5]


@pytest.mark.parametrize('shares, message', [
    ([1.0], '1 shares for 2 checkpoints'),
    ([1.0, 0.0], 'share 0.0 is not a positive number'),
    ([1.0, -2.0], 'share -2.0 is not a positive number'),
    ([1.0, float('nan')], 'share nan is not a positive number'),
])
def test_bad_shares_are_refused(parts, shares, message):
    with pytest.raises(ValueError, match=message):
        average_parts(list(parts), shares)


def test_one_checkpoint_is_not_an_average(parts):
    with pytest.raises(ValueError, match='at least two checkpoints, got 1'):
        average_parts(list(parts[:1]), None)


def test_checkpoints_of_another_config_are_refused(tmp_path, parts):
    other = save_checkpoint(tmp_path / 'c.safetensors', small_bandnet(seed=1, max_disparity=24))
    with pytest.raises(CheckpointError, match='has config .* only checkpoints of one model'):
        average_checkpoints(average_parts([parts[0], other], None))


def test_cli_errors_name_the_problem_and_write_nothing(tmp_path, parts, capsys):
    out = tmp_path / 'soup.safetensors'
    assert main(['average', str(out), *map(str, parts), '--shares', '0.3,x']) == 2
    assert "--shares '0.3,x' must be comma-separated numbers" in capsys.readouterr().err
    assert main(['average', str(out), str(parts[0]), str(tmp_path / 'missing.safetensors')]) == 2
    assert 'missing.safetensors' in capsys.readouterr().err
    assert main(['average', str(tmp_path / 'soup.pt'), *map(str, parts)]) == 2
    assert 'OUT must name a .safetensors file' in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / 'soup.pt').exists()


def test_refiners_average_and_the_engine_loads_the_mean(tmp_path, capsys):
    """The nets that follow a derainer are not registry models; their fits average all the same."""
    refiners = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        refiner = Refiner(hidden=4, middle_layers=1)
        for parameter in refiner.parameters():
            torch.nn.init.normal_(parameter, std=0.1)
        refiners.append(save_checkpoint(tmp_path / f'refiner{seed}.safetensors', refiner,
                                        recipe={'command': 'stereo-derain train-refiner'}))
    out = tmp_path / 'soup.safetensors'
    assert main(['average', str(out), *map(str, refiners)]) == 0
    assert f'wrote {out}: refiner = ' in capsys.readouterr().out
    first, second = (load_checkpoint(path)[0] for path in refiners)
    for key, value in load_checkpoint(out)[0].items():
        torch.testing.assert_close(value, (first[key] + second[key]) / 2)
    assert build_refiner_from_checkpoint(out).config == RefinerConfig(4, 1)
    gate = save_checkpoint(tmp_path / 'gate.safetensors', FusionGate(hidden=4))
    assert main(['average', str(tmp_path / 'mixed.safetensors'), str(refiners[0]),
                 str(gate)]) == 2
    assert ("has model 'fusion_gate' but" in capsys.readouterr().err
            and not (tmp_path / 'mixed.safetensors').exists())


def test_a_refiner_older_than_a_config_field_averages_with_a_new_one(tmp_path):
    """Refiner files older than `corrections` lack it; their continuations store it: they mix."""
    torch.manual_seed(3)
    refiner = Refiner(hidden=4, middle_layers=1)
    for parameter in refiner.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    new = save_checkpoint(tmp_path / 'new.safetensors', refiner)
    state_dict, _ = load_checkpoint(new)
    with safe_open(str(new), 'pt') as opened:
        metadata = opened.metadata()
    config = json.loads(metadata['config'])
    del config['corrections']
    old = tmp_path / 'old.safetensors'
    save_file(state_dict, str(old), metadata={**metadata, 'config': json.dumps(config)})
    assert 'corrections' not in load_checkpoint(old)[1]['config']
    with torch.no_grad():
        refiner.layers[-1].weight.zero_()
    continued = save_checkpoint(tmp_path / 'continued.safetensors', refiner)
    out = tmp_path / 'soup.safetensors'
    assert main(['average', str(out), str(old), str(continued)]) == 0
    changed = load_checkpoint(continued)[0]
    for key, value in load_checkpoint(out)[0].items():
        torch.testing.assert_close(value, (state_dict[key] + changed[key]) / 2)
    assert build_refiner_from_checkpoint(out).config == RefinerConfig(4, 1)
