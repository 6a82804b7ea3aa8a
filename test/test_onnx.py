"""ONNX export and the onnxruntime backend: graph shape, metadata, parity with torch, fall-back."""

import json

import cv2
import numpy as np
import pytest
from small_models import small_bandnet
import torch

from stereo_derain_ros.cli import main
from stereo_derain_ros.engine import DerainEngine, EngineConfig, EngineError, save_checkpoint
from stereo_derain_ros.engine.layout import pad_to_multiple
from stereo_derain_ros.engine.onnx_backend import choose_providers, OnnxRuntimeBackend
from stereo_derain_ros.engine.onnx_export import read_metadata

onnx = pytest.importorskip('onnx')
onnxruntime = pytest.importorskip('onnxruntime')
torch.set_num_threads(1)
# (height, width): two sizes the graph takes as they are and one odd size the engine pads.
SIZES = ((32, 96), (45, 133), (64, 200))


def onnx_engine(path, **settings):
    return DerainEngine(EngineConfig(backend='onnxruntime', weights=str(path), device='cpu',
                                     warmup_shape=None, **settings))


def random_views(height, width, seed):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, height, width, generator=generator),
            torch.rand(1, 3, height, width, generator=generator))


def test_graph_has_dynamic_size_opset_metadata_and_passes_the_checker(small_onnx):
    proto = onnx.load(str(small_onnx))
    onnx.checker.check_model(proto, full_check=True)
    assert max(entry.version for entry in proto.opset_import if entry.domain == '') >= 17
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        assert [dim.dim_value for dim in dims[:2]] == [1, 3]
        assert all(dim.dim_param for dim in dims[2:]), f'{value.name} has a fixed height/width'
    metadata = read_metadata(small_onnx)
    assert metadata['model'] == 'bandnet' and metadata['max_disparity'] == 16
    assert metadata['pad_multiple'] == 8 and '1x3xHxW' in metadata['layout']
    assert json.loads(metadata['recipe']) is None


def test_banded_attention_never_materialises_a_width_by_width_tensor(small_onnx):
    """Run the graph with every intermediate exposed: no tensor may have two width-long axes."""
    proto = onnx.load(str(small_onnx))
    known = {output.name for output in proto.graph.output}
    for node in proto.graph.node:
        for name in node.output:
            if name and name not in known:
                proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
                known.add(name)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(proto.SerializeToString(), options,
                                           providers=['CPUExecutionProvider'])
    width = 1024
    views = np.random.default_rng(0).random((1, 3, 16, width), dtype=np.float32)
    names = [output.name for output in proto.graph.output]
    outputs = session.run(names, {'left': views, 'right': views})
    widths = {width, width // 4, width // 8}
    wide = [(name, value.shape) for name, value in zip(names, outputs)
            if sum(size in widths for size in np.shape(value)) >= 2]
    assert len(names) > 100 and wide == []


@pytest.mark.parametrize(('height', 'width'), SIZES)
def test_float_outputs_match_torch_within_1e_3(small_onnx, height, width):
    model = small_bandnet()
    backend = OnnxRuntimeBackend(EngineConfig(backend='onnxruntime', weights=str(small_onnx),
                                              device='cpu'), None)
    left, right = (pad_to_multiple(view, 8) for view in random_views(height, width, seed=width))
    with torch.inference_mode():
        expected = model(left, right)
    outputs = backend.forward(left, right)
    for view, out, ref in zip(('left', 'right'), outputs, expected):
        error = (out - ref).abs().max().item()
        assert error <= 1e-3, f'{view} view differs by {error}'


@pytest.mark.parametrize(('height', 'width'), SIZES)
def test_uint8_outputs_match_torch_within_one_grey_level(small_onnx, height, width):
    rng = np.random.default_rng(height)
    left, right = (rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2))
    torch_engine = DerainEngine(EngineConfig(device='cpu', precision='fp32', warmup_shape=None),
                                model=small_bandnet())
    expected = torch_engine.derain(left, right)
    outputs = onnx_engine(small_onnx).derain(left, right)
    for out, ref in zip(outputs, expected):
        assert out.shape == ref.shape and out.dtype == ref.dtype
        assert np.abs(out.astype(int) - ref).max() <= 1


def test_batches_and_tiles_run_through_the_shared_engine_steps(small_onnx):
    rng = np.random.default_rng(5)
    lefts = [rng.integers(0, 256, (40, 150), dtype=np.uint8) for _ in range(2)]
    rights = [np.roll(left, -2, axis=1) for left in lefts]
    whole = onnx_engine(small_onnx)
    tiled = onnx_engine(small_onnx, tile=(40, 96), tile_overlap=8)
    assert tiled.tile == (40, 96)
    for engine in (whole, tiled):
        out_lefts, out_rights = engine.derain_batch(lefts, rights)
        assert [out.shape for out in out_lefts + out_rights] == [(40, 150)] * 4
    single = whole.derain(lefts[1], rights[1])
    np.testing.assert_array_equal(whole.derain_batch(lefts, rights)[0][1], single[0])


def test_self_ensemble_is_the_engines(small_onnx):
    rng = np.random.default_rng(9)
    left, right = (rng.integers(0, 256, (45, 133, 3), dtype=np.uint8) for _ in range(2))
    torch_engine = DerainEngine(EngineConfig(device='cpu', precision='fp32', warmup_shape=None,
                                             self_ensemble=4),
                                model=small_bandnet())
    expected = torch_engine.derain(left, right)
    outputs = onnx_engine(small_onnx, self_ensemble=4).derain(left, right)
    for out, ref in zip(outputs, expected):
        assert np.abs(out.astype(int) - ref).max() <= 1
    assert not np.array_equal(outputs[0], onnx_engine(small_onnx).derain(left, right)[0])


def test_fall_back_ladder_is_the_engines(small_onnx):
    engine = onnx_engine(small_onnx, fallback_tile=(40, 96))
    assert 'tiles of 40x96' in engine.fall_back()
    with pytest.raises(EngineError, match='nothing left to fall back to'):
        engine.fall_back()


def test_onnx_file_settings_it_cannot_honour_are_refused(small_onnx, tmp_path):
    with pytest.raises(EngineError, match='exported with max_disparity 16, not 32'):
        onnx_engine(small_onnx, max_disparity=32)
    with pytest.raises(EngineError, match="holds model 'bandnet', not the requested"):
        onnx_engine(small_onnx, model='apanet')
    with pytest.raises(ValueError, match="needs backend 'onnxruntime'"):
        EngineConfig(weights=str(small_onnx))
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'; expected one of torch"):
        EngineConfig(backend='tensorrt')
    broken = tmp_path / 'broken.onnx'
    broken.write_bytes(b'not a protobuf')
    with pytest.raises(EngineError, match='broken.onnx'):
        onnx_engine(broken)


def test_providers_prefer_tensorrt_then_cuda_and_cpu_is_always_last():
    cpu_only = ['CPUExecutionProvider']
    assert choose_providers('auto', 'auto', cpu_only) == ([('CPUExecutionProvider', {})], 'fp32')
    gpu = ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']
    providers, precision = choose_providers('cuda:1', 'auto', gpu)
    assert [name for name, _ in providers] == gpu and precision == 'fp16'
    assert providers[0][1]['device_id'] == 1 and providers[1][1] == {'device_id': 1}
    assert choose_providers('cuda', 'fp32', gpu)[1] == 'fp32'
    assert choose_providers('cpu', 'auto', gpu)[0] == [('CPUExecutionProvider', {})]
    with pytest.raises(EngineError, match='no CUDA provider'):
        choose_providers('cuda', 'auto', cpu_only)


@pytest.mark.slow
def test_checkpoint_is_exported_once_to_the_cache(tmp_path, monkeypatch):
    """The packaged weights run on onnxruntime through an export cached on first use."""
    monkeypatch.setenv('STEREO_DERAIN_CACHE', str(tmp_path))
    config = EngineConfig(backend='onnxruntime', device='cpu', warmup_shape=None)
    engine = DerainEngine(config)
    cached = list((tmp_path / 'onnx').glob('bandnet-*.onnx'))
    assert len(cached) == 1 and engine.weights_source == 'packaged:bandnet.safetensors'
    rng = np.random.default_rng(1)
    left, right = (rng.integers(0, 256, (48, 160, 3), dtype=np.uint8) for _ in range(2))
    reference = DerainEngine(EngineConfig(device='cpu', precision='fp32',
                                          warmup_shape=None)).derain(left, right)
    for out, ref in zip(engine.derain(left, right), reference):
        assert np.abs(out.astype(int) - ref).max() <= 1
    stamp = cached[0].stat().st_mtime_ns
    DerainEngine(config)
    assert cached[0].stat().st_mtime_ns == stamp


def test_export_command_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    assert main(['export', 'nosuch', '--onnx', str(tmp_path / 'x.onnx')]) == 2
    assert "'nosuch' is neither a checkpoint file nor" in capsys.readouterr().err
    assert main(['export', 'bandnet', '--onnx', str(tmp_path / 'x.pt')]) == 2
    assert '--onnx must name a .onnx file' in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_export_command_writes_a_checkpoint_with_its_recipe_and_band(tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / 'small.safetensors', small_bandnet(),
                                 recipe={'steps': 3})
    out = tmp_path / 'graphs' / 'small.onnx'
    assert main(['export', str(checkpoint), '--onnx', str(out), '--max-disparity', '24']) == 0
    assert 'max_disparity 24' in capsys.readouterr().out
    metadata = read_metadata(out)
    assert json.loads(metadata['recipe']) == {'steps': 3} and metadata['max_disparity'] == 24
    assert [path.name for path in out.parent.iterdir()] == ['small.onnx']


def test_derain_command_runs_an_onnx_file(tmp_path, small_onnx):
    rng = np.random.default_rng(3)
    paths = []
    for side in ('left', 'right'):
        paths.append(tmp_path / f'{side}.png')
        cv2.imwrite(str(paths[-1]), rng.integers(0, 256, (27, 41, 3), dtype=np.uint8))
    assert main(['derain', *map(str, paths), '--out-dir', str(tmp_path / 'out'), '--device',
                 'cpu', '--backend', 'onnxruntime', '--weights', str(small_onnx)]) == 0
    outputs = sorted(path.name for path in (tmp_path / 'out').rglob('*.png'))
    assert len(outputs) == 2, outputs
