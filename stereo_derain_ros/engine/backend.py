"""What a DerainEngine needs from the runtime that executes the network, and how one is chosen.

The engine owns everything around the network (image layouts, padding, tiling, the fall-back
ladder); a backend only runs N×3×H×W float views whose size suits the model. Two exist: `torch`
(eager PyTorch, any device) and `onnxruntime` (an exported graph on CPU, CUDA or TensorRT).
"""

from dataclasses import dataclass
import logging
from typing import Protocol

import torch
from torch import nn

from stereo_derain_ros.engine.checkpoint import build_model_from_checkpoint
from stereo_derain_ros.engine.config import DEFAULT_MODEL, EngineConfig
from stereo_derain_ros.engine.weights import require_packaged_weights
from stereo_derain_ros.models import build_model, model_config, model_name

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What the engine must know about the network a backend runs, whatever runs it.

    `weights_source` is what diagnostics and reports show, so that a run on untrained weights can
    never pass for a run on the packaged ones. `weights_file` is the file the weights were read
    from (None for in-memory or untrained models); it keys the ONNX export cache.
    """

    name: str
    max_disparity: int | None
    pad_multiple: int
    weights_source: str
    weights_file: str | None = None


class Backend(Protocol):
    """Runs the network on padded views; moves tensors between host and its device."""

    info: ModelInfo
    model: nn.Module | None

    @property
    def device(self) -> torch.device:
        """Where `forward` takes and returns tensors."""

    @property
    def precision(self) -> str:
        """The arithmetic in use: fp32, fp16 or bf16."""

    def forward(self, left: torch.Tensor,
                right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run N×3×H×W float views (H, W multiples of pad_multiple); return float views."""

    def upload(self, name: str, images: torch.Tensor) -> torch.Tensor:
        """Move raw host images to `device`."""

    def download(self, name: str, images: torch.Tensor) -> torch.Tensor:
        """Bring results from `device` to the host."""

    def move_to_cpu(self) -> str | None:
        """Leave the accelerator after running out of memory; say what was done (None: on CPU)."""

    def release_memory(self) -> None:
        """Free what an out-of-memory failure left allocated."""

    def synchronize(self) -> None:
        """Wait until queued device work has finished."""


def create_backend(config: EngineConfig, model: nn.Module | None) -> Backend:
    """Build the backend `config.backend` names, for `model` or the model `config` describes."""
    if config.backend == 'onnxruntime':
        from stereo_derain_ros.engine.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(config, model)
    from stereo_derain_ros.engine.torch_backend import TorchBackend

    return TorchBackend(config, model)


def prepared_model(config: EngineConfig, model: nn.Module | None) -> tuple[nn.Module, ModelInfo]:
    """Load (or take) the torch model in eval mode, with the config's band set; describe it."""
    source, weights_file = 'in-memory model', None
    if model is None:
        model, source, weights_file = _load_model(config)
    model.eval()
    if config.max_disparity is not None:
        model.set_max_disparity(config.max_disparity)
    band = config.max_disparity
    if band is None:
        band = model_config(model).get('max_disparity')
    info = ModelInfo(model_name(model), band, int(getattr(model, 'pad_multiple', 1)), source,
                     weights_file)
    return model, info


def _load_model(config: EngineConfig) -> tuple[nn.Module, str, str | None]:
    """Build the model the config asks for; say where its weights came from and in which file."""
    if config.weights is not None:
        model = build_model_from_checkpoint(config.weights, expected_model=config.model)
        return model, str(config.weights), str(config.weights)
    name = config.model or DEFAULT_MODEL
    if config.allow_untrained:
        LOGGER.warning('running model %s with UNTRAINED weights (testing only)', name)
        return build_model(name, **config.model_overrides), 'untrained', None
    packaged = require_packaged_weights(name)
    model = build_model_from_checkpoint(packaged, expected_model=name)
    return model, f'packaged:{packaged.name}', str(packaged)

