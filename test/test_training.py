"""Training: the loss falls, resume equals an uninterrupted run, DDP ranks stay identical."""

import math
import multiprocessing
import os
from pathlib import Path
import socket
import warnings

import pytest
import torch
import torch.multiprocessing as mp

from stereo_derain_ros.data.pools import DATA_VERSION
from stereo_derain_ros.engine.checkpoint import load_checkpoint, save_checkpoint
from stereo_derain_ros.engine.errors import CheckpointError
from stereo_derain_ros.engine.precision import cpu_has_native_bf16
from stereo_derain_ros.models import build_model
from stereo_derain_ros.training.curves import plot_curves
from stereo_derain_ros.training.losses import (
    LOG_L1_FLOOR,
    LOG_MSE_FLOOR,
    parse_loss_spec,
    StereoLoss,
)
from stereo_derain_ros.training.pool import PairPool
from stereo_derain_ros.training.schedule import cosine_lr, CropSchedule
from stereo_derain_ros.training.trainer import (
    CHECKPOINT_NAME,
    Runtime,
    train,
    TrainConfig,
    VAL_PSNR_CAP_DB,
    validate,
)

TINY = {'width': 8, 'encoder_blocks': [1, 1], 'middle_blocks': 1, 'decoder_blocks': [1, 1]}


def _streaky_pairs(count: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Smooth clean pairs (right = left shifted 4 px) with bright vertical streaks added."""
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(count):
        coarse = torch.rand(1, 3, 8, 14, generator=generator)
        scene = torch.nn.functional.interpolate(coarse, size=(48, 84), mode='bilinear')[0]
        scene = scene * 0.6 + 0.2
        clean_left, clean_right = scene[:, :, 4:], scene[:, :, :-4]
        views = []
        for clean in (clean_left, clean_right):
            streaks = (torch.rand(1, 1, 80, generator=generator) > 0.85).float()
            views.append((clean + 0.4 * streaks.expand(3, 48, 80)).clamp(0, 1))
        samples.append({'rainy_left': views[0], 'rainy_right': views[1],
                        'clean_left': clean_left, 'clean_right': clean_right})
    return samples


def _config(**overrides) -> TrainConfig:
    values = {'model': 'bandnet', 'steps': 12, 'batch': 2, 'crop_schedule': '32:6,32x64',
              'lr': 2e-3, 'warmup': 2, 'val_every': 6, 'val_samples': 2, 'val_crop': 32,
              'checkpoint_every': 6, 'log_every': 3, 'seed': 3, 'model_args': TINY}
    return TrainConfig(**(values | overrides))


def _pools() -> tuple[PairPool, PairPool]:
    return (PairPool.from_dataset(_streaky_pairs(6, 0), progress=False),
            PairPool.from_dataset(_streaky_pairs(2, 1), progress=False))


def test_schedules_and_loss_specs():
    schedule = CropSchedule.parse('64:100,96x192:300,128')
    assert [schedule.crop_at(step) for step in (0, 99, 100, 299, 300, 10_000)] == [
        (64, 64), (64, 64), (96, 192), (96, 192), (128, 128), (128, 128)]
    assert cosine_lr(0, 100, 1e-3, 0.0, 10) == pytest.approx(1e-4)
    assert cosine_lr(10, 100, 1e-3, 0.0, 10) == pytest.approx(1e-3)
    assert cosine_lr(100, 100, 1e-3, 1e-6, 10) == pytest.approx(1e-6)
    assert parse_loss_spec('l1=1, ssim=0.2') == {'l1': 1.0, 'ssim': 0.2}
    with pytest.raises(ValueError, match='unknown loss term'):
        parse_loss_spec('l3=1')
    with pytest.raises(ValueError, match='must increase'):
        CropSchedule.parse('64:300,96:100')


def test_loss_terms_are_zero_for_a_perfect_output():
    image = torch.rand(1, 3, 24, 24)
    rainy = (image + 0.2).clamp(0, 1)
    total, parts = StereoLoss.from_spec('l1=1,charbonnier=1,ssim=1,rain_l1=1,lowpass=1')(
        (image, image), (image, image), (rainy, rainy))
    assert float(total) == pytest.approx(1e-3, abs=1e-4)
    assert parts['l1'] == 0.0 and parts['ssim'] == pytest.approx(0.0, abs=1e-5)
    assert parts['rain_l1'] == 0.0 and parts['lowpass'] == 0.0


def test_rain_l1_counts_a_missed_streak_more_than_plain_l1():
    clean = torch.full((1, 3, 32, 32), 0.4)
    rainy = clean.clone()
    rainy[:, :, :, 10] = 0.9
    left_rainy = StereoLoss.from_spec('rain_l1=1')((rainy, clean), (clean, clean),
                                                   (rainy, clean))[0]
    plain = StereoLoss.from_spec('l1=1')((rainy, clean), (clean, clean), (rainy, clean))[0]
    assert float(left_rainy) > 5 * float(plain)


def test_lowpass_sees_a_brightness_shift_that_averages_out_in_l1():
    target = torch.rand(1, 3, 32, 32) * 0.5 + 0.25
    noisy = target + 0.05 * torch.sign(torch.randn_like(target))
    shifted = target + 0.01
    lowpass = StereoLoss.from_spec('lowpass=1')
    assert float(lowpass((shifted, shifted), (target, target), (target, target))[0]) > \
        float(lowpass((noisy, noisy), (target, target), (target, target))[0])


def test_log_losses_weigh_each_pair_by_its_own_error():
    """A log loss steps harder on the lighter pair; L1 steps alike and MSE 10x on the heavy."""
    target = torch.full((2, 3, 16, 16), 0.5)
    light_miss, heavy_miss = 0.02, 0.2
    output = target.clone()
    output[0] += light_miss
    output[1] += heavy_miss
    output.requires_grad_(True)
    for name, ratio in (('log_l1', 1.0), ('log_mse', 1.0), ('l1', 1.0), ('mse', 10.0)):
        output.grad = None
        total = StereoLoss.from_spec(f'{name}=1')((output, output), (target, target),
                                                  (target, target))[0]
        total.backward()
        light, heavy = float(output.grad[0].abs().sum()), float(output.grad[1].abs().sum())
        if name.startswith('log'):
            assert light > 3 * heavy, name
        else:
            assert heavy / light == pytest.approx(ratio, rel=1e-3), name
    perfect = StereoLoss.from_spec('log_l1=1,log_mse=1')((target, target), (target, target),
                                                         (target, target))[1]
    assert perfect['log_l1'] == pytest.approx(math.log(LOG_L1_FLOOR))
    assert perfect['log_mse'] == pytest.approx(math.log(LOG_MSE_FLOOR))


def test_curves_of_a_negative_loss_are_drawn(tmp_path):
    (tmp_path / 'loss.csv').write_text('step,loss\n10,-3.5\n20,-4.0\n')
    (tmp_path / 'validation.csv').write_text('')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        plot_curves(tmp_path / 'loss.csv', tmp_path / 'validation.csv', tmp_path / 'c.png')
    assert (tmp_path / 'c.png').stat().st_size > 1000


class PassThrough(torch.nn.Module):
    """A derainer that returns its inputs: its validation scores are the rainy input's."""

    def forward(self, left, right):
        return left, right


def test_validation_caps_psnr_so_rain_free_pairs_do_not_swamp_the_mean():
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 3, 32, 48, generator=generator)
    rainy = clean.clone()
    rainy[0] = (rainy[0] + 0.1 * torch.rand(3, 32, 48, generator=generator)).clamp(0, 1)
    windows = {'rainy_left': rainy, 'rainy_right': rainy.clone(),
               'clean_left': clean, 'clean_right': clean.clone()}
    scores = validate(PassThrough(), windows, torch.device('cpu'))
    rainy_pair_db = 10 * torch.log10(1 / (rainy[0] - clean[0]).pow(2).mean()).item()
    # one rainy pair and one rain-free pair, capped: the mean of the two, not ~100 dB
    assert scores['psnr_rainy'] == pytest.approx((rainy_pair_db + VAL_PSNR_CAP_DB) / 2, abs=1e-3)
    assert scores['psnr'] == pytest.approx(scores['psnr_rainy'])


def test_a_few_steps_lower_the_loss(tmp_path):
    torch.set_num_threads(1)
    train_pool, val_pool = _pools()
    config = _config(steps=40, crop_schedule='32x64', val_every=40, checkpoint_every=40,
                     log_every=5)
    result = train(config, Runtime(out=tmp_path, progress=False), train_pool, val_pool)
    assert result.finished and result.step == 40
    rows = (tmp_path / 'loss.csv').read_text().splitlines()[1:]
    losses = [float(row.split(',')[1]) for row in rows]
    assert len(losses) == 8
    assert sum(losses[-2:]) < 0.8 * sum(losses[:2])
    assert (tmp_path / 'curves.png').stat().st_size > 1000
    _, metadata = load_checkpoint(tmp_path / 'last.safetensors')
    assert metadata['recipe']['step'] == 40 and metadata['recipe']['model_args'] == TINY
    assert metadata['recipe']['data_version'] == DATA_VERSION
    assert set(metadata['metrics']) == {'psnr', 'ssim', 'psnr_rainy', 'ssim_rainy'}


def test_batches_composed_by_worker_processes_train_the_same_weights(tmp_path):
    """The GPU path composes batches ahead in forked workers; the run must not change."""
    torch.set_num_threads(1)
    train_pool, val_pool = _pools()
    config = _config(steps=6, crop_schedule='32x64:3,48x64', val_every=6, checkpoint_every=6)
    weights = {}
    for workers in (0, 2):
        out = tmp_path / str(workers)
        result = train(config, Runtime(out=out, progress=False, data_workers=workers),
                       train_pool, val_pool)
        assert result.finished and result.step == 6
        weights[workers] = load_checkpoint(out / CHECKPOINT_NAME)[0]
    assert weights[0].keys() == weights[2].keys()
    assert all(torch.equal(weights[0][key], weights[2][key]) for key in weights[0])
    stopped = train(config, Runtime(out=tmp_path / 'stopped', progress=False, stop_at_step=2,
                                    data_workers=2), train_pool, val_pool)
    assert not stopped.finished and stopped.step == 2
    assert not multiprocessing.active_children()
    too_large = _config(crop_schedule='32x64:3,64x64')
    with pytest.raises(ValueError, match=r'^crop 64x64 does not fit the smallest training pair '
                                         r'\(48x80\); use a smaller --crop$'):
        train(too_large, Runtime(out=tmp_path / 'large', progress=False, data_workers=2),
              train_pool, val_pool)
    assert not (tmp_path / 'large').exists()  # refused before the run folder is made


def test_amp_trains_in_bf16_on_a_cpu_that_runs_it_and_in_fp32_elsewhere(tmp_path, caplog):
    torch.set_num_threads(1)
    train_pool, val_pool = _pools()
    losses = {}
    for amp in (False, True):
        config = _config(amp=amp, val_every=12, checkpoint_every=12)
        train(config, Runtime(out=tmp_path / str(amp), progress=False), train_pool, val_pool)
        rows = (tmp_path / str(amp) / 'loss.csv').read_text().splitlines()[1:]
        losses[amp] = [float(row.split(',')[1]) for row in rows]
        assert load_checkpoint(tmp_path / str(amp) / CHECKPOINT_NAME)[1]['recipe']['amp'] == amp
    native = cpu_has_native_bf16()
    assert (losses[True] != losses[False]) == native
    assert losses[True] == pytest.approx(losses[False], rel=0.05)
    assert ('bf16 needs a CPU with AVX512-BF16 or AMX' in caplog.text) != native


@pytest.mark.parametrize('ema', [0.0, 0.9])
def test_resume_continues_the_same_schedule(tmp_path, ema):
    torch.set_num_threads(1)
    train_pool, val_pool = _pools()
    whole = train(_config(ema=ema), Runtime(out=tmp_path / 'whole', progress=False),
                  train_pool, val_pool)
    first = train(_config(ema=ema), Runtime(out=tmp_path / 'parts', progress=False,
                                            stop_at_step=6), train_pool, val_pool)
    assert not first.finished and first.step == 6
    _, metadata = load_checkpoint(tmp_path / 'parts' / 'last.safetensors')
    assert metadata['recipe']['step'] == 6
    resumed = train(_config(ema=ema), Runtime(out=tmp_path / 'parts', progress=False),
                    train_pool, val_pool, resume=True)
    assert resumed.finished and resumed.step == 12
    # Same crops, learning rates, batches and optimiser moments: bit-identical weights, and the
    # same averaged weights in the checkpoint.
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    saved_whole, _ = load_checkpoint(tmp_path / 'whole' / 'last.safetensors')
    saved_parts, metadata = load_checkpoint(tmp_path / 'parts' / 'last.safetensors')
    for name, value in saved_whole.items():
        assert torch.equal(value, saved_parts[name]), name
    averaged = not torch.equal(saved_whole['exit.0.weight'],
                               whole.model.state_dict()['exit.0.weight'])
    assert averaged == bool(ema)
    assert ('psnr_raw' in metadata['metrics']) == bool(ema)
    rows = (tmp_path / 'parts' / 'loss.csv').read_text().splitlines()[1:]
    assert [int(row.split(',')[0]) for row in rows] == [3, 6, 9, 12]
    # An optimiser file from another step (a run killed between the two writes) is refused.
    short = tmp_path / 'short'
    train(_config(), Runtime(out=short, progress=False, stop_at_step=6), train_pool, val_pool)
    (tmp_path / 'whole' / 'optimizer.safetensors').replace(short / 'optimizer.safetensors')
    with pytest.raises(CheckpointError, match='optimiser of step 12'):
        train(_config(), Runtime(out=short, progress=False), train_pool, val_pool, resume=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update({'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port), 'RANK': str(rank),
                       'LOCAL_RANK': str(rank), 'WORLD_SIZE': str(world_size)})
    torch.set_num_threads(1)
    train_pool, val_pool = _pools()
    result = train(_config(steps=2, val_every=2, checkpoint_every=2, log_every=1),
                   Runtime(out=Path(out) / 'run', device='cpu', progress=False),
                   train_pool, val_pool)
    torch.save(result.model.state_dict(), Path(out) / f'rank{rank}.pt')


@pytest.mark.slow
def test_ddp_two_gloo_processes_hold_identical_weights(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    first = torch.load(tmp_path / 'rank0.pt')
    second = torch.load(tmp_path / 'rank1.pt')
    torch.manual_seed(_config().seed)
    initial = build_model('bandnet', **TINY).state_dict()
    changed = 0
    for name, value in first.items():
        assert torch.equal(value, second[name]), name
        changed += not torch.equal(value, initial[name])
    assert changed > 0
    assert (tmp_path / 'run' / 'last.safetensors').exists()


def test_init_starts_from_a_checkpoint_and_keeps_its_recipe(tmp_path):
    torch.set_num_threads(1)
    train_pool, val_pool = _pools()
    first = train(_config(steps=3), Runtime(out=tmp_path / 'first', progress=False), train_pool,
                  val_pool)
    checkpoint = str(tmp_path / 'first' / 'last.safetensors')
    config = _config(steps=1, lr=1e-12, warmup=0, init=checkpoint,
                     init_recipe={'steps': 3})
    tuned = train(config, Runtime(out=tmp_path / 'tuned', progress=False), train_pool, val_pool)
    for name, value in first.model.state_dict().items():
        assert torch.allclose(value, tuned.model.state_dict()[name], atol=1e-6), name
    _, metadata = load_checkpoint(tmp_path / 'tuned' / 'last.safetensors')
    assert metadata['recipe']['init'] == checkpoint
    assert metadata['recipe']['init_recipe'] == {'steps': 3}
    with pytest.raises(ValueError, match='holds model'):
        train(_config(model='bandnet_mono', init=checkpoint),
              Runtime(out=tmp_path / 'wrong', progress=False), train_pool, val_pool)
    # A partial start loads what fits: the mono ablation from stereo weights.
    mono = train(_config(model='bandnet_mono', steps=1, lr=1e-12, warmup=0, init=checkpoint,
                         init_partial=True),
                 Runtime(out=tmp_path / 'mono', progress=False), train_pool, val_pool)
    mono_state = mono.model.state_dict()
    assert not any('cross_view' in name for name in mono_state)
    for name, value in mono_state.items():
        assert torch.allclose(value, first.model.state_dict()[name], atol=1e-6), name


def test_train_only_changes_the_named_modules_and_keeps_the_rest(tmp_path):
    train_pool, val_pool = _pools()
    start = train(_config(steps=1, lr=1e-12, warmup=0),
                  Runtime(out=tmp_path / 'start', progress=False), train_pool, val_pool)
    checkpoint = str(tmp_path / 'start' / 'last.safetensors')
    config = _config(steps=3, lr=1e-2, warmup=0, init=checkpoint,
                     train_only=['exit', 'decoders.0'])
    train(config, Runtime(out=tmp_path / 'tuned', progress=False, stop_at_step=2), train_pool,
          val_pool)
    # The resumed run freezes the same parameters, so the saved optimiser state fits them.
    tuned = train(config, Runtime(out=tmp_path / 'tuned', progress=False), train_pool, val_pool,
                  resume=True)
    assert tuned.step == 3
    before, after = start.model.state_dict(), tuned.model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith(('exit.', 'decoders.0.')) for name in changed)
    assert any(name.startswith('exit.') for name in changed)
    assert any(name.startswith('decoders.0.') for name in changed)
    _, metadata = load_checkpoint(tmp_path / 'tuned' / 'last.safetensors')
    assert metadata['recipe']['train_only'] == ['exit', 'decoders.0']
    with pytest.raises(ValueError, match=r"--train-only 'head' names no parameters.*entry"):
        _config(train_only=['head']).validate()


def test_fine_tuning_from_the_command_line_keeps_the_init_architecture(tmp_path):
    from stereo_derain_ros.cli import build_parser
    from stereo_derain_ros.cli.train import _new_config

    model = build_model('bandnet', **TINY, pool_window=16)
    checkpoint = save_checkpoint(tmp_path / 'init.safetensors', model,
                                 recipe={'model': 'bandnet', 'steps': 1})
    parser = build_parser()
    config = _new_config(parser.parse_args(['train', '--model', 'bandnet', '--out',
                                            str(tmp_path / 'run'), '--init', str(checkpoint),
                                            '--model-arg', 'max_disparity=64']))
    assert config.model_args['pool_window'] == 16 and config.model_args['width'] == TINY['width']
    assert config.model_args['max_disparity'] == 64
    mono = _new_config(parser.parse_args(['train', '--model', 'bandnet_mono', '--out',
                                          str(tmp_path / 'mono'), '--init', str(checkpoint),
                                          '--init-partial']))
    assert mono.model_args == {}


def test_composition_overrides_reach_the_recipe_and_the_training_draws_only(tmp_path):
    from stereo_derain_ros.cli import build_parser, CommandError
    from stereo_derain_ros.cli.train import _new_config
    from stereo_derain_ros.training.data import DataError, training_pools

    parser = build_parser()
    config = _new_config(parser.parse_args(['train', '--model', 'bandnet', '--out',
                                            str(tmp_path / 'run'), '--composition',
                                            'rain_free=1', '--composition', 'mono=0']))
    assert config.composition == {'rain_free': 1.0, 'mono': 0.0}
    train_source, val_pool = training_pools('synthetic', seed=0, count=2, val_count=1,
                                            cache=tmp_path / 'pools', photos=tmp_path / 'none',
                                            progress=False, composition=config.composition)
    batch = train_source.batch(2, (32, 64), torch.Generator().manual_seed(0))
    assert torch.equal(batch['rainy_left'], batch['clean_left'])
    validation = val_pool.batch(1, (32, 64), torch.Generator().manual_seed(0), augment=False)
    assert not torch.equal(validation['rainy_left'], validation['clean_left'])
    with pytest.raises(ValueError, match='unknown composition key rainfree; expected one of '
                                         'rain_free, light_rain'):
        _config(composition={'rainfree': 0.2}).validate()
    with pytest.raises(ValueError, match='rain_free must be a number in \\[0, 1\\], got 1.5'):
        _config(composition={'rain_free': 1.5}).validate()
    with pytest.raises(CommandError, match="'a lot' is not a number"):
        _new_config(parser.parse_args(['train', '--model', 'bandnet', '--out',
                                       str(tmp_path / 'run'), '--composition', 'mono=a lot']))
    with pytest.raises(DataError, match='applies to synthetic data only'):
        training_pools(str(tmp_path), seed=0, count=2, val_count=1,
                       composition={'rain_free': 0.5})
