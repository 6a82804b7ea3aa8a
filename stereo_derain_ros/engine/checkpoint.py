"""Checkpoint files: safetensors holding a model's state dict plus JSON metadata.

Format (version 1): a safetensors file whose tensors are the model's `state_dict()` (CPU,
contiguous) and whose `__metadata__` (string -> string) holds:

- `format`: `stereo_derain_ros.checkpoint`
- `format_version`: `1`
- `model`: the registered model name (`stereo_derain_ros.models.build_model` name)
- `config`: JSON object, the model configuration (`model_config(model)`)
- `recipe`: JSON object or `null`, how the weights were trained
- `metrics`: JSON object or `null`, how well they do
- `package_version`: the stereo_derain_ros version that wrote the file

safetensors stores raw tensor bytes behind a JSON header, so loading never unpickles anything: a
checkpoint from an untrusted source cannot run code. Files are written to a temporary name in the
same folder and renamed, so a crash never leaves a half-written checkpoint under the final name.
"""

import inspect
import json
import math
import os
from pathlib import Path
import struct
from typing import Any, TypeVar
import warnings

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
import torch
from torch import nn

from stereo_derain_ros import __version__
from stereo_derain_ros.atomic import atomic_path
from stereo_derain_ros.engine.errors import CheckpointError
from stereo_derain_ros.models import (
    available_models,
    build_model,
    decimal_config_fields,
    model_config,
    model_name,
)
from stereo_derain_ros.models.fusion_gate import FusionGate
from stereo_derain_ros.models.refiner import Refiner

FORMAT = 'stereo_derain_ros.checkpoint'
FORMAT_VERSION = 1
_HEADER_LIMIT = 100 * 1024 * 1024
_PICKLE_PROTOCOLS = (b'\x02', b'\x03', b'\x04', b'\x05')
MAX_CONFIG_INT = 4096
MAX_BLOCKS = 64
MAX_CONFIG_ITEMS = 8
# Bound on every size argument (width, layers) of the small nets that follow a derainer.
MAX_PIXEL_NET_SIZE = 256


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *,
                    recipe: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None) -> Path:
    """Write `model`'s weights and description to `path` atomically and return the path."""
    path = Path(path)
    metadata = {
        'format': FORMAT,
        'format_version': str(FORMAT_VERSION),
        'model': model_name(model),
        'config': _to_json(model_config(model), 'model config'),
        'recipe': _to_json(recipe, 'recipe'),
        'metrics': _to_json(metrics, 'metrics'),
        'package_version': __version__,
    }
    tensors = {key: value.detach().to('cpu').contiguous().clone()
               for key, value in model.state_dict().items()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint into (state dict on CPU, metadata with JSON fields decoded).

    Raises CheckpointError naming the path when the file is missing, a pickle, damaged, or not
    written by save_checkpoint.
    """
    path = Path(path)
    raw_metadata = _read_header_metadata(path)
    metadata = _decode_metadata(path, raw_metadata)
    try:
        state_dict = load_file(path, device='cpu')
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f'checkpoint {path} is damaged: {error}') from error
    return state_dict, metadata


def build_model_from_checkpoint(path: str | os.PathLike, *,
                                expected_model: str | None = None) -> nn.Module:
    """Rebuild the checkpoint's model with its stored config and weights, in eval mode.

    Everything is vetted before the real model is built: the config's sizes are bounded, the
    model is built and run on the meta device and its tensor shapes compared with the file's,
    and every weight must be finite. `expected_model` guards against loading, say, an apanet
    checkpoint where bandnet was asked.
    """
    state_dict, metadata = load_checkpoint(path)
    name = metadata['model']
    if expected_model is not None and name != expected_model:
        raise CheckpointError(
            f'checkpoint {path} holds model {name!r}, not the requested {expected_model!r}')
    if name not in available_models():
        raise CheckpointError(
            f'checkpoint {path} holds model {name!r}, which this version does not know; '
            f'known models: {", ".join(available_models())}')
    config = metadata['config']
    _check_config_bounds(path, name, config)
    _check_fits(path, name, _skeleton(path, name, config), state_dict)
    _check_finite(path, state_dict)
    model = build_model(name, **config)
    model.load_state_dict(state_dict)
    return model.eval()


def build_fusion_gate_from_checkpoint(path: str | os.PathLike) -> FusionGate:
    """Rebuild a `FusionGate` (`stereo-derain train-fusion-gate`), vetted like any checkpoint."""
    return _build_pixel_net(path, FusionGate, 'stereo-derain train-fusion-gate')


def build_refiner_from_checkpoint(path: str | os.PathLike) -> Refiner:
    """Rebuild a `Refiner` (`stereo-derain train-refiner`), vetted like any checkpoint."""
    return _build_pixel_net(path, Refiner, 'stereo-derain train-refiner')


PixelNet = TypeVar('PixelNet', FusionGate, Refiner)


def _build_pixel_net(path: str | os.PathLike, kind: type[PixelNet], command: str) -> PixelNet:
    """Rebuild one of the small full-resolution nets that follow a derainer.

    They are not deraining models, so they are not in the registry; their config holds `hidden`
    and may hold the net's other size arguments (a refiner's `middle_layers` and `corrections`;
    older files lack them and get the defaults), each bounded; their tensors must have the
    shapes they build and be finite.
    """
    state_dict, metadata = load_checkpoint(path)
    what = kind.name.replace('_', ' ')
    if metadata['model'] != kind.name:
        raise CheckpointError(f'checkpoint {path} holds model {metadata["model"]!r}, not a '
                              f'{kind.name!r} (from {command})')
    config = metadata['config'] if isinstance(metadata['config'], dict) else {}
    lowest = {name: 1 if name in ('hidden', 'corrections') else 0
              for name in inspect.signature(kind).parameters}
    if ('hidden' not in config or not set(config) <= set(lowest)
            or not all(isinstance(value, int) and not isinstance(value, bool)
                       and lowest[name] <= value <= MAX_PIXEL_NET_SIZE
                       for name, value in config.items())):
        expected = ', '.join(f'"{name}": {low} to {MAX_PIXEL_NET_SIZE}'
                             for name, low in lowest.items())
        raise CheckpointError(f'checkpoint {path} has {what} config {metadata["config"]!r}; '
                              f'expected {{{expected}}} ("hidden" required)')
    hidden = config['hidden']
    try:
        net = kind(**config)
    except ValueError as error:
        raise CheckpointError(f'checkpoint {path} has {what} config {metadata["config"]!r}: '
                              f'{error}') from None
    expected = {key: tuple(tensor.shape) for key, tensor in net.state_dict().items()}
    found = {key: tuple(tensor.shape) for key, tensor in state_dict.items()}
    if found != expected:
        differing = (sorted(set(found) ^ set(expected))
                     or sorted(key for key in found if found[key] != expected[key]))
        raise CheckpointError(f'checkpoint {path} does not fit a {what} of width {hidden}: '
                              f'tensors {_first(differing)}; expected one written by this '
                              f"version's {command} (retrain older ones)")
    _check_finite(path, state_dict)
    net.load_state_dict(state_dict)
    return net.eval()


def _check_config_bounds(path: Path, name: str, config: dict[str, Any]) -> None:
    """Refuse config values no real model has before anything is built from them.

    A few hundred bytes of JSON can ask for millions of blocks; building that, even without
    memory on the meta device, takes minutes, so sizes are bounded first: whole numbers from 0
    to MAX_CONFIG_INT (block counts up to MAX_BLOCKS), at most MAX_CONFIG_ITEMS per list. Fields
    the model declares as decimal (an initial scale, say) take finite numbers up to
    MAX_CONFIG_INT in size instead.
    """
    decimal = decimal_config_fields(name)
    for key, value in config.items():
        limit = MAX_BLOCKS if 'blocks' in key else MAX_CONFIG_INT
        items = value if isinstance(value, list) else [value]
        bounded = _bounded_decimal if key in decimal else _bounded
        if len(items) > MAX_CONFIG_ITEMS or not all(bounded(item, limit) for item in items):
            expected = (f'finite numbers from -{limit} to {limit}' if key in decimal else
                        f'whole numbers from 0 to {limit} (lists of up to {MAX_CONFIG_ITEMS}), '
                        'true/false or null')
            raise CheckpointError(
                f'checkpoint {path} has config {key}={json.dumps(value)[:80]}; expected '
                f'{expected}')


def _bounded(value: Any, limit: int) -> bool:
    if value is None or isinstance(value, bool):
        return True
    return isinstance(value, int) and 0 <= value <= limit


def _bounded_decimal(value: Any, limit: int) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and -limit <= value <= limit)


def _skeleton(path: Path, name: str, config: dict[str, Any]) -> nn.Module:
    """Build the model on the meta device (no memory) and run it once, to vet its config.

    Tensor shapes come out of the meta model for the comparison with the file, and a config
    that builds but cannot run (a zero scale factor, say) fails here rather than at a frame.
    """
    try:
        with torch.device('meta'), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            model = build_model(name, **config)
            side = 2 * int(getattr(model, 'pad_multiple', 1))
            images = torch.empty(1, 3, side, side)
            with torch.no_grad():
                model(images, images)
    except Exception as error:  # noqa: BLE001 - any failure means the config is unusable
        raise CheckpointError(
            f'checkpoint {path} has a config that model {name!r} does not accept: '
            f'{type(error).__name__}: {_one_line(error)}') from None
    return model


def _check_finite(path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    """Refuse NaN or infinite weights: they turn every output into NaN (black images)."""
    bad = [key for key, tensor in state_dict.items()
           if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise CheckpointError(
            f'checkpoint {path} has NaN or infinite values in {len(bad)} of '
            f'{len(state_dict)} tensors ({_first(bad)}); expected finite weights')


def _one_line(error: BaseException) -> str:
    return ' '.join(str(error).split())[:200]


def _looks_like_pickle(head: bytes) -> bool:
    """Tell a zip or pickle from safetensors by the first 9 bytes.

    A pickle starts with the PROTO opcode 0x80 and a protocol from 2 to 5, but so does a
    safetensors file whose header length has 0x80 as its low byte; safetensors then opens its
    JSON header with '{' at byte 8, which is no pickle opcode. Checking the protocol too keeps
    arbitrary bytes that merely open with 0x80 out of the pickle message.
    """
    if head.startswith(b'PK\x03\x04'):
        return True
    return head[:1] == b'\x80' and head[1:2] in _PICKLE_PROTOCOLS and head[8:9] != b'{'


def _read_header_metadata(path: Path) -> dict[str, str]:
    """Check the file is complete safetensors before anything reads tensors, for clear messages."""
    if not path.exists():
        raise CheckpointError(f'checkpoint not found: {path}')
    if not path.is_file():
        raise CheckpointError(f'checkpoint {path} is not a file')
    size = path.stat().st_size
    with path.open('rb') as stream:
        head = stream.read(9)
        if _looks_like_pickle(head):
            raise CheckpointError(
                f'checkpoint {path} is a pickle (torch.save format); pickles can run arbitrary '
                'code when loaded, so only safetensors checkpoints written by save_checkpoint '
                'are accepted')
        if len(head) < 8:
            raise CheckpointError(f'checkpoint {path} is truncated: {size} bytes, no header')
        (header_size,) = struct.unpack('<Q', head[:8])
        stream.seek(8)
        if header_size > _HEADER_LIMIT:
            raise CheckpointError(f'checkpoint {path} is not a safetensors file')
        if 8 + header_size > size:
            raise CheckpointError(
                f'checkpoint {path} is truncated: header needs {header_size} bytes, file has '
                f'{size - 8}')
        try:
            header = json.loads(stream.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointError(
                f'checkpoint {path} is not a safetensors file (unreadable header)') from error
    if not isinstance(header, dict):
        raise CheckpointError(f'checkpoint {path} is not a safetensors file (unreadable header)')
    data_end = max((entry['data_offsets'][1] for key, entry in header.items()
                    if key != '__metadata__' and isinstance(entry, dict)
                    and 'data_offsets' in entry), default=0)
    if 8 + header_size + data_end > size:
        raise CheckpointError(
            f'checkpoint {path} is truncated: tensors need {data_end} bytes, file has '
            f'{size - 8 - header_size}')
    return header.get('__metadata__') or {}


def _decode_metadata(path: Path, raw: dict[str, str]) -> dict[str, Any]:
    if raw.get('format') != FORMAT:
        raise CheckpointError(
            f'checkpoint {path} is a safetensors file but not a stereo_derain_ros checkpoint '
            f'(metadata "format" is {raw.get("format")!r}, expected {FORMAT!r})')
    version = raw.get('format_version', '')
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise CheckpointError(
            f'checkpoint {path} has format version {version!r}; this version reads up to '
            f'{FORMAT_VERSION}')
    metadata: dict[str, Any] = {'format_version': int(version)}
    for key in ('model', 'package_version'):
        metadata[key] = raw.get(key, '')
    if not metadata['model']:
        raise CheckpointError(f'checkpoint {path} does not name its model')
    for key in ('config', 'recipe', 'metrics'):
        try:
            metadata[key] = json.loads(raw.get(key, 'null'))
        except json.JSONDecodeError as error:
            raise CheckpointError(
                f'checkpoint {path} has unreadable {key!r} metadata: {error}') from error
    if not isinstance(metadata['config'], dict):
        raise CheckpointError(f'checkpoint {path} has no model config')
    return metadata


def _check_fits(path: Path, name: str, model: nn.Module,
                state_dict: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [f'{key} {tuple(state_dict[key].shape)} vs {tuple(expected[key].shape)}'
                  for key in sorted(set(expected) & set(state_dict))
                  if state_dict[key].shape != expected[key].shape]
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing tensors ({_first(missing)})')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected tensors ({_first(unexpected)})')
    if mismatched:
        problems.append(f'{len(mismatched)} shape mismatches, checkpoint vs model '
                        f'({_first(mismatched)})')
    if problems:
        raise CheckpointError(
            f'checkpoint {path} does not fit model {name!r}: {"; ".join(problems)}')


def _first(items: list[str], count: int = 3) -> str:
    shown = ', '.join(items[:count])
    return shown + (', ...' if len(items) > count else '')


def _to_json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f'{what} must be JSON-serialisable: {error}') from error
