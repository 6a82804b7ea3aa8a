"""The tool that chose the packaged refiners on training photographs (tools/refiner_tuning.py).

Its choices rest on two claims: a refiner scored against itself changes nothing, and a refiner
that corrects nothing scores below the packaged one on rain (which gains several dB there).
"""

import importlib.util
import sys

import pytest
import torch

from stereo_derain_ros.engine import save_checkpoint
from stereo_derain_ros.models.refiner import Refiner

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / 'tools'))
_SPEC = importlib.util.spec_from_file_location('refiner_tuning',
                                               REPO_ROOT / 'tools' / 'refiner_tuning.py')
tuning = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tuning)

PACKAGED = REPO_ROOT / 'stereo_derain_ros' / 'weights' / 'refiner.safetensors'

torch.set_num_threads(1)


def test_a_refiner_that_corrects_nothing_scores_below_the_packaged_one(tmp_path):
    pairs = tuning.tuning_pairs(None, 'medium-mono', 1)
    assert len(pairs) == 1
    rainy, clean = pairs[0]['rainy'], pairs[0]['clean']
    assert all((view[..., 0] == view[..., 2]).all() for view in rainy + clean)
    assert any((r != c).any() for r, c in zip(rainy, clean))
    packaged = tuning.refiner_scores(PACKAGED, pairs)
    assert tuning.refiner_scores(PACKAGED, pairs) == packaged
    idle = save_checkpoint(tmp_path / 'idle.safetensors', Refiner(hidden=16, middle_layers=5))
    assert tuning.refiner_scores(idle, pairs)[0] < packaged[0] - 1.0


def test_unknown_kinds_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown pair kind 'drizzle'"):
        tuning.tuning_pairs(None, 'drizzle', 1)
