"""The ONNX Runtime backend: an exported graph on the CPU, CUDA or TensorRT provider.

Weights may be an ONNX file written by `stereo-derain export` (its metadata says which model,
band and padding it has), or anything the torch backend accepts: a checkpoint, the packaged
weights or an in-memory model is then exported on the fly. Exports of weight files are cached
under `$STEREO_DERAIN_CACHE` (default `~/.cache/stereo_derain_ros`)/onnx, keyed by the weights'
bytes, the band and the package and torch versions, so only the first start pays the export.

Providers: `device` cpu uses the CPU provider only; auto takes TensorRT, then CUDA, when this
onnxruntime build has them; cuda or cuda:N requires CUDA. TensorRT builds fp16 engines unless
precision fp32 is asked, and keeps them in the cache's `tensorrt` folder.
"""

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stereo_derain_ros import __version__
from stereo_derain_ros.engine.backend import ModelInfo, prepared_model
from stereo_derain_ros.engine.config import EngineConfig
from stereo_derain_ros.engine.errors import EngineError
from stereo_derain_ros.engine.onnx_export import (
    export_onnx,
    INPUT_NAMES,
    onnx_proto,
    OPSET,
    OUTPUT_NAMES,
    read_metadata,
)

LOGGER = logging.getLogger(__name__)
CPU, CUDA, TENSORRT = 'CPUExecutionProvider', 'CUDAExecutionProvider', 'TensorrtExecutionProvider'
_OUT_OF_MEMORY_WORDS = ('failed to allocate', 'out of memory', 'bad_alloc')


def cache_folder() -> Path:
    """Return where exported graphs and TensorRT engines are cached."""
    default = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'stereo_derain_ros'
    return Path(os.environ.get('STEREO_DERAIN_CACHE', default))


def choose_providers(device: str, precision: str,
                     available: list[str]) -> tuple[list[tuple[str, dict]], str]:
    """Return the providers (with options) to ask for, best first, and the precision they run.

    Raises EngineError when a CUDA device is asked but this onnxruntime has no CUDA provider.
    """
    cpu = [(CPU, {})]
    if device == 'cpu':
        return cpu, 'fp32'
    if CUDA not in available and TENSORRT not in available:
        if device != 'auto':
            raise EngineError(
                f'device {device!r} was asked but this onnxruntime has no CUDA provider '
                f'(it has {", ".join(available)}); install onnxruntime-gpu or use device cpu')
        return cpu, 'fp32'
    index = int(device.partition(':')[2] or 0)
    providers = [(CUDA, {'device_id': index})] if CUDA in available else []
    if TENSORRT not in available:
        return providers + cpu, 'fp32'
    fp16 = precision in ('auto', 'fp16')
    tensorrt = {'device_id': index, 'trt_fp16_enable': fp16, 'trt_engine_cache_enable': True,
                'trt_engine_cache_path': str(cache_folder() / 'tensorrt')}
    return [(TENSORRT, tensorrt)] + providers + cpu, 'fp16' if fp16 else 'fp32'


class OnnxRuntimeBackend:
    """Run an exported graph pair by pair (the graph's batch is one) in an InferenceSession."""

    def __init__(self, config: EngineConfig, model: nn.Module | None) -> None:
        import onnxruntime

        self._ort = onnxruntime
        self.model = None
        if model is None and str(config.weights or '').endswith('.onnx'):
            self.info = _file_info(config)
            self._graph: str | bytes = str(config.weights)
        else:
            self.model, self.info = prepared_model(config, model)
            self._graph = _exported_graph(self.model, self.info)
        available = onnxruntime.get_available_providers()
        providers, self._precision = choose_providers(config.device, config.precision, available)
        if config.precision in ('fp16', 'bf16') and self._precision == 'fp32':
            LOGGER.warning('precision %s needs the TensorRT provider; running fp32',
                           config.precision)
        self._start(providers)

    @property
    def device(self) -> torch.device:
        return torch.device('cpu')

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def providers(self) -> list[str]:
        """The providers the session uses, best first."""
        return self._session.get_providers()

    def forward(self, left: torch.Tensor,
                right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [self._run_pair(left[index:index + 1], right[index:index + 1])
                   for index in range(left.shape[0])]
        return tuple(torch.cat([pair[view] for pair in outputs]) for view in (0, 1))

    def upload(self, name: str, images: torch.Tensor) -> torch.Tensor:
        return images

    def download(self, name: str, images: torch.Tensor) -> torch.Tensor:
        return images

    def move_to_cpu(self) -> str | None:
        if self.providers[0] == CPU:
            return None
        self._precision = 'fp32'
        self._start([(CPU, {})])
        return 'moved the network to the onnxruntime CPU provider'

    def release_memory(self) -> None:
        """Nothing to do: onnxruntime frees a failed run's buffers itself."""

    def synchronize(self) -> None:
        """Nothing to do: `InferenceSession.run` returns when its outputs are on the host."""

    def _start(self, providers: list[tuple[str, dict]]) -> None:
        options = self._ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = torch.get_num_threads()
        options.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = self._ort.InferenceSession(
            self._graph, options, providers=[name for name, _ in providers],
            provider_options=[values for _, values in providers])
        LOGGER.info('model %s on onnxruntime %s, precision %s', self.info.name,
                    ', '.join(self.providers), self._precision)

    def _run_pair(self, left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        feed = {name: np.ascontiguousarray(view.numpy(), dtype=np.float32)
                for name, view in zip(INPUT_NAMES, (left, right))}
        try:
            outputs = self._session.run(list(OUTPUT_NAMES), feed)
        except (self._ort.capi.onnxruntime_pybind11_state.Fail,
                self._ort.capi.onnxruntime_pybind11_state.RuntimeException) as error:
            if any(word in str(error).lower() for word in _OUT_OF_MEMORY_WORDS):
                # The same error as torch's, so one fall-back ladder serves both backends.
                raise torch.OutOfMemoryError(str(error)) from error
            raise
        return [torch.from_numpy(output) for output in outputs]


def _file_info(config: EngineConfig) -> ModelInfo:
    """Describe an exported file, refusing settings that its graph cannot honour."""
    if not Path(config.weights).is_file():
        raise EngineError(f'ONNX file {config.weights} does not exist')
    metadata = read_metadata(config.weights)
    if config.model is not None and config.model != metadata['model']:
        raise EngineError(f'ONNX file {config.weights} holds model {metadata["model"]!r}, not '
                          f'the requested {config.model!r}')
    band = metadata['max_disparity']
    if config.max_disparity is not None and config.max_disparity != band:
        raise EngineError(
            f'ONNX file {config.weights} was exported with max_disparity {band}, not '
            f'{config.max_disparity}; export again with --max-disparity {config.max_disparity}')
    return ModelInfo(metadata['model'], band, metadata['pad_multiple'], str(config.weights),
                     str(config.weights))


def _exported_graph(model: nn.Module, info: ModelInfo) -> str | bytes:
    """Export `model`: to the cache when its weights came from a file, else to memory."""
    if info.weights_file is None:
        return onnx_proto(model, max_disparity=info.max_disparity).SerializeToString()
    digest = hashlib.sha256(Path(info.weights_file).read_bytes())
    digest.update(f'{info.max_disparity}|{__version__}|{torch.__version__}|{OPSET}'.encode())
    path = cache_folder() / 'onnx' / f'{info.name}-{digest.hexdigest()[:20]}.onnx'
    if not path.is_file():
        LOGGER.info('exporting %s to %s (once per weights file)', info.weights_source, path)
        export_onnx(model, path, max_disparity=info.max_disparity)
    return str(path)
