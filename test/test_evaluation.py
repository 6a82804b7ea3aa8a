"""Evaluation: the expected columns on a tiny rendered set, report files, the eval command."""

import json

import numpy as np
import pytest
import torch

from stereo_derain_ros.cli import main
from stereo_derain_ros.data.heldout import heldout_set, HeldoutError, sample_dict
from stereo_derain_ros.data.specs import open_dataset
from stereo_derain_ros.engine import DerainEngine, EngineConfig
from stereo_derain_ros.evaluation.report import write_report
from stereo_derain_ros.evaluation.runner import (
    CLEAN,
    evaluate,
    identity_derainer,
    RAINY,
    StereoMinDerainer,
    VEIL_ONLY,
)
from stereo_derain_ros.rain.params import rain_params
from stereo_derain_ros.rain.procedural import procedural_scene
from stereo_derain_ros.rain.render import render_rain


def _tiny_set(count: int = 2) -> list[dict[str, torch.Tensor]]:
    scenes = [procedural_scene(77 + index, 96, 64) for index in range(count)]
    return [sample_dict(render_rain(scene, rain_params('heavy'), 5 + index), scene)
            for index, scene in enumerate(scenes)]


def _clean_derainer(dataset):
    """Return a derainer that knows the answer: the clean pair (an upper bound for the table)."""
    lookup = {}
    for sample in dataset:
        key = (sample['rainy_left'] * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
        lookup[key.tobytes()] = sample

    def derain(left, right):
        sample = lookup[left.tobytes()]
        return tuple((sample[view].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
                     for view in ('clean_left', 'clean_right'))
    return derain


def test_evaluation_yields_the_expected_columns_and_files(tmp_path):
    torch.set_num_threads(1)
    dataset = _tiny_set()
    engine = DerainEngine(EngineConfig(model='bandnet', allow_untrained=True, device='cpu',
                                       warmup_shape=None,
                                       model_overrides={'width': 8, 'middle_blocks': 1}))
    derainers = {RAINY: identity_derainer, 'oracle': _clean_derainer(dataset),
                 'baseline': StereoMinDerainer(32),
                 'untrained': lambda left, right: engine.derain(left, right, 'rgb')}
    result = evaluate(derainers, dataset, figure_method='untrained', figure_count=1,
                      progress=False)
    summary = result.summary()
    assert list(summary) == [RAINY, 'oracle', 'baseline', 'untrained', VEIL_ONLY, CLEAN]
    for method in (RAINY, 'oracle', 'baseline', 'untrained'):
        assert {'psnr', 'ssim', 'psnr_y', 'ssim_y', 'shift', 'epe', 'bad3', 'density'} <= set(
            summary[method])
    assert set(summary[CLEAN]) == {'epe', 'bad3', 'density'}
    assert summary['oracle']['psnr'] > 60 and summary['oracle']['ssim'] > 0.999
    assert summary['oracle']['bad3'] == pytest.approx(summary[CLEAN]['bad3'])
    assert summary[RAINY]['psnr'] < 40
    # Heavy rain's veil: removing every streak and nothing else lands between the two.
    assert summary[RAINY]['psnr'] < summary[VEIL_ONLY]['psnr'] < summary['oracle']['psnr']
    paths = write_report(result, tmp_path, title='tiny', details={'set': 'tiny'})
    table = paths['markdown'].read_text()
    assert '| rainy input |' in table and 'SGBM bad-3px (%)' in table
    assert '| oracle | ' in table and '| 2 of 2 |' in table
    assert f'| {VEIL_ONLY} | ' in table and 'does not dehaze' in table
    worst_oracle = min(sample['oracle']['psnr'] for sample in result.samples)
    assert f'| oracle | {worst_oracle:.2f} | 2 of 2 |' in table
    report = json.loads(paths['json'].read_text())
    assert len(report['samples']) == 2 and report['summary']['oracle']['psnr'] > 60
    assert paths['figure'].stat().st_size > 5000


def test_without_a_veil_removing_the_streaks_restores_the_scene():
    scene = procedural_scene(78, 96, 64)
    sample = sample_dict(render_rain(scene, rain_params('heavy', veil_scale=0.0), 6), scene)
    assert torch.equal(sample['veiled_left'], sample['clean_left'])
    assert torch.equal(sample['veiled_right'], sample['clean_right'])


def test_rain_free_sets_have_no_veil_row():
    summary = evaluate({RAINY: identity_derainer}, [heldout_set('clean')[0]],
                       progress=False).summary()
    assert VEIL_ONLY not in summary or not summary[VEIL_ONLY]


def test_heldout_is_deterministic_and_has_disparity():
    first, again = heldout_set('light')[0], heldout_set('light')[0]
    assert torch.equal(first['rainy_left'], again['rainy_left'])
    assert first['rainy_left'].shape == (3, 256, 512)
    assert torch.isfinite(first['disparity']).any()
    assert not torch.equal(first['rainy_left'], heldout_set('heavy')[0]['rainy_left'])
    with pytest.raises(HeldoutError, match='unknown held-out set'):
        heldout_set('drizzle')


@pytest.mark.slow
def test_eval_command_writes_a_report(tmp_path, capsys):
    status = main(['eval', 'bandnet', 'heldout:medium', '--untrained', '--limit', '1',
                   '--baseline', '--figures', '1', '--out', str(tmp_path), '--device', 'cpu',
                   '--threads', '1', '--no-progress'])
    assert status == 0
    printed = capsys.readouterr().out
    assert '| bandnet (untrained) |' in printed and '| stereo min baseline |' in printed
    assert 'pairs at or above the input' in printed
    assert {path.name for path in tmp_path.iterdir()} == {'report.md', 'report.json',
                                                         'figure.png'}


@pytest.mark.slow
def test_self_paired_row_shows_what_the_second_view_changes(tmp_path):
    status = main(['eval', 'bandnet', 'heldout:medium', '--limit', '1', '--self-paired',
                   '--figures', '0', '--out', str(tmp_path), '--device', 'cpu', '--threads', '1',
                   '--no-progress'])
    assert status == 0
    scores = json.loads((tmp_path / 'report.json').read_text())['summary']
    paired, alone = scores['bandnet'], scores['bandnet, each view paired with itself']
    # The packaged weights read the other view, so removing it changes the output.
    assert paired['psnr'] != alone['psnr']
    assert alone['psnr'] > scores['rainy input']['psnr']


@pytest.mark.slow
def test_the_self_paired_row_runs_without_the_stereo_only_fusion(tmp_path):
    """A view matched with itself would look all scene to the fusion; the row is the network's."""
    reports = {}
    for fusion in ([], ['--view-fusion']):
        out = tmp_path / ('fused' if fusion else 'plain')
        assert main(['eval', 'bandnet', 'heldout:medium', '--limit', '1', '--self-paired',
                     *fusion, '--figures', '0', '--out', str(out), '--device', 'cpu',
                     '--threads', '1', '--no-progress']) == 0
        reports[bool(fusion)] = json.loads((out / 'report.json').read_text())['summary']
    alone = 'bandnet, each view paired with itself'
    assert reports[True][alone] == reports[False][alone]
    assert reports[True]['bandnet'] != reports[False]['bandnet']


def test_eval_command_rejects_an_unknown_dataset(tmp_path, capsys):
    status = main(['eval', 'bandnet', 'heldout:drizzle', '--untrained', '--out', str(tmp_path)])
    assert status == 2
    assert 'heldout:light' in capsys.readouterr().err


@pytest.mark.slow
def test_heldout_written_to_disk_reads_back_identically(tmp_path):
    assert main(['heldout', '--out', str(tmp_path), '--presets', 'light']) == 0
    on_disk = open_dataset(str(tmp_path / 'light'))
    in_memory = heldout_set('light')
    assert len(on_disk) == len(in_memory) == 9
    for index in (0, 8):
        disk, memory = on_disk[index], in_memory[index]
        for view in ('rainy_left', 'clean_right'):
            assert torch.allclose(disk[view], memory[view], atol=1e-6)
        assert torch.equal(disk['disparity'], memory['disparity'])
