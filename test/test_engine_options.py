"""One engine-options contract: every engine-running command builds its config the same way."""

import ast
from pathlib import Path

import cv2
import pytest
import torch

from stereo_derain_ros.cli import build_parser, CommandError
from stereo_derain_ros.cli.demo import demo_config
from stereo_derain_ros.cli.engine_options import engine_config
from stereo_derain_ros.engine import DerainEngine, EngineConfig, save_checkpoint
from stereo_derain_ros.engine.config import DEFAULT_MODEL
from stereo_derain_ros.engine.devices import resolve_device
from stereo_derain_ros.engine.errors import EngineError
from stereo_derain_ros.models import build_model

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / 'stereo_derain_ros'

# Each command that runs the engine, with its own required arguments.
COMMANDS = {
    'derain': ['derain', 'l.png', 'r.png', '--out-dir', 'out'],
    'bag': ['bag', 'in_bag', 'out_bag', '--left', '/l', '--right', '/r'],
    'eval': ['eval', 'bandnet', 'heldout:light'],
    'demo': ['demo'],
    'bench node': ['bench', 'node'],
    'bench bag': ['bench', 'bag'],
    'train': ['train', '--model', 'bandnet', '--out', 'run'],
    'train-fusion-gate': ['train-fusion-gate', '--out', 'gate.safetensors'],
}


@pytest.fixture
def parse():
    parser = build_parser()
    return parser.parse_args


@pytest.mark.parametrize('command', COMMANDS)
def test_every_engine_command_builds_its_config_through_the_contract(parse, command):
    args = parse([*COMMANDS[command], '--device', 'cpu'])
    config = engine_config(args)
    assert isinstance(config, EngineConfig)
    assert config.device == 'cpu'
    assert config.weights is None and config.threads is None
    defaults = engine_config(parse(COMMANDS[command]))
    assert defaults.device == 'auto'
    assert defaults.model in (None, 'bandnet')


@pytest.mark.parametrize('command', COMMANDS)
def test_every_engine_command_refuses_a_bad_device_in_one_line(parse, command):
    args = parse([*COMMANDS[command], '--device', 'gpu0'])
    with pytest.raises(CommandError, match=r"^unknown device 'gpu0'; expected one of auto, cpu"):
        engine_config(args)


def test_full_option_group_reaches_the_config(parse):
    args = parse([*COMMANDS['derain'], '--model', 'apanet',
                  '--weights', 'w.safetensors', '--precision', 'fp16', '--max-disparity', '48',
                  '--tile', '128x256', '--tile-overlap', '16', '--threads', '1',
                  '--self-ensemble', '4', '--view-fusion', '--view-fusion-disparity-range', '96',
                  '--view-fusion-gate', 'g.safetensors'])
    config = engine_config(args)
    assert (config.model, config.weights, config.precision, config.max_disparity, config.tile,
            config.tile_overlap, config.threads, config.self_ensemble, config.view_fusion,
            config.view_fusion_disparity_range, config.view_fusion_gate) == (
        'apanet', 'w.safetensors', 'fp16', 48, (128, 256), 16, 1, 4, True, 96, 'g.safetensors')
    defaults = engine_config(parse(COMMANDS['derain']))
    assert (defaults.view_fusion, defaults.view_fusion_disparity_range,
            defaults.view_fusion_gate) == (False, 64, None)


def test_eval_scores_at_full_precision_unless_asked(parse):
    assert engine_config(parse(COMMANDS['eval'])).precision == 'fp32'


@pytest.mark.parametrize('argv, message', [
    (['--model', 'bandnett'], "unknown model 'bandnett'; available: apanet, bandnet"),
    (['--threads', '0'], None),
    (['--threads', '-2'], 'threads must be a positive int or None, got -2'),
    (['--precision', 'fp8'], "unknown precision 'fp8'"),
    (['--view-fusion-disparity-range', '100'],
     'view_fusion_disparity_range must be a positive multiple of 16 .SGBM search range in px., '
     'got 100'),
])
def test_bad_engine_options_are_one_line_errors(parse, argv, message):
    args = parse([*COMMANDS['derain'], *argv])
    if message is None:
        assert engine_config(args).threads is None  # 0 is the unset spelling, as in the node
        return
    with pytest.raises(CommandError, match='^' + message):
        engine_config(args)


def test_from_options_maps_unset_spellings_and_refuses_unknown_names():
    config = EngineConfig.from_options(model='', weights='', tile=0, max_disparity=0, threads=0,
                                       untrained=True)
    assert (config.model, config.weights, config.tile, config.max_disparity, config.threads,
            config.allow_untrained) == (None, None, None, None, None, True)
    assert EngineConfig.from_options(weights=Path('a.safetensors')).weights == 'a.safetensors'
    with pytest.raises(ValueError, match='unknown engine option'):
        EngineConfig.from_options(tile_size=64)


def test_the_default_model_is_the_checkpoints(tmp_path):
    """An apanet checkpoint runs without also naming the model; no name means bandnet."""
    torch.manual_seed(0)
    small = build_model('apanet', width=8, blocks=(1, 1, 1, 1), slots=8)
    checkpoint = save_checkpoint(tmp_path / 'apanet.safetensors', small)
    engine = DerainEngine(EngineConfig.from_options(weights=checkpoint, device='cpu',
                                                    warmup_shape=None))
    assert engine.model_name == 'apanet'
    assert EngineConfig.from_options(weights=checkpoint).model_to_run() == 'apanet'
    assert EngineConfig().model is None and EngineConfig().model_to_run() == DEFAULT_MODEL
    demo = demo_config(build_parser().parse_args(['demo', '--weights', str(checkpoint)]))
    assert (demo.model, demo.weights) == ('apanet', checkpoint)


def test_engine_applies_threads_to_torch_and_opencv():
    before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        torch.set_num_threads(2)
        cv2.setNumThreads(2)
        DerainEngine(EngineConfig(device='cpu', threads=1, warmup_shape=None),
                     model=build_model('bandnet_mono', width=8, encoder_blocks=(1,),
                                       decoder_blocks=(1,), middle_blocks=1))
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (1, 1)
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def test_device_resolver():
    assert resolve_device('cpu') == torch.device('cpu')
    assert resolve_device('auto').type == ('cuda' if torch.cuda.is_available() else 'cpu')
    with pytest.raises(ValueError, match='unknown device'):
        resolve_device('tpu')
    if not torch.cuda.is_available():
        with pytest.raises(EngineError, match='CUDA is not available'):
            resolve_device('cuda:0', local_rank=0)


def _calls_named(tree: ast.AST, name: str) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, 'attr', None)
            if called == name:
                lines.append(node.lineno)
    return lines


def test_no_shell_constructs_engine_config_itself():
    """Shells go through `EngineConfig.from_options` (or the CLI's `engine_config`)."""
    offenders = []
    for path in sorted(PACKAGE.rglob('*.py')):
        if path.parent.name == 'engine':
            continue
        lines = _calls_named(ast.parse(path.read_text()), 'EngineConfig')
        offenders += [f'{path.relative_to(REPO_ROOT)}:{line}' for line in lines]
    assert not offenders, 'EngineConfig( built outside the contract: ' + ', '.join(offenders)


def test_no_shell_resolves_devices_itself():
    """`engine.devices.resolve_device` is the only code that turns 'auto' into a device."""
    offenders = []
    for path in sorted(PACKAGE.rglob('*.py')):
        if path.relative_to(PACKAGE).as_posix() == 'engine/devices.py':
            continue
        text = path.read_text()
        if "'cuda' if torch.cuda.is_available()" in text:
            offenders.append(str(path.relative_to(REPO_ROOT)))
    assert not offenders, 'device resolution outside engine/devices.py: ' + ', '.join(offenders)


def test_train_refuses_a_bad_device_before_rendering_anything(tmp_path, capsys):
    from stereo_derain_ros.cli import main

    cache = tmp_path / 'pools'
    status = main(['train', '--model', 'bandnet', '--out', str(tmp_path / 'run'), '--device',
                   'gpu', '--data-cache', str(cache), '--no-progress'])
    assert status == 2
    assert "unknown device 'gpu'" in capsys.readouterr().err
    assert not cache.exists() and not (tmp_path / 'run').exists()
