"""Export a stereo deraining model to ONNX, and read back what an exported file describes.

The graph takes `left` and `right` as 1×3×H×W float32 RGB in [0, 1] and returns `left_out` and
`right_out` in the same layout; H and W are dynamic multiples of the model's `pad_multiple` (the
engine pads to them, as for torch). The batch is fixed at one pair: torch.export cannot keep the
batch of the siamese models dynamic, and the engine runs batches pair by pair on this backend.

The banded parallax attention exports as its chunked form (windows of S + D key columns), so no
node holds a W×W matrix. Export traces one example size and keeps height and width symbolic; the
example is an odd number of pad multiples wide, so no chunk count or padding is 0 or 1 there,
values torch.export would otherwise fix. The exported file is checked against torch on a second
size before it is written.
"""

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stereo_derain_ros.atomic import atomic_path
from stereo_derain_ros.engine.errors import EngineError
from stereo_derain_ros.models import model_config, model_name

OPSET = 18
INPUT_NAMES = ('left', 'right')
OUTPUT_NAMES = ('left_out', 'right_out')
LAYOUT = ('inputs left, right and outputs left_out, right_out: 1x3xHxW float32 RGB in [0, 1]; '
          'H and W multiples of pad_multiple')
# Example size in pad multiples (height, width): odd, and wide enough for several chunks.
EXAMPLE_STEPS = (3, 37)
CHECK_STEPS = (2, 9)
PARITY_TOLERANCE = 1e-3
_MAX_STEPS = 4096


def export_onnx(model: nn.Module, path: str | os.PathLike, *, max_disparity: int | None,
                recipe: dict[str, Any] | None = None) -> Path:
    """Write `model` (in eval mode) to `path` as ONNX with metadata, atomically; return the path.

    `max_disparity` is the band (input pixels) the model was set to, recorded for the engine.
    Raises EngineError when the exported graph disagrees with torch on a second size.
    """
    path = Path(path)
    proto = onnx_proto(model, max_disparity=max_disparity, recipe=recipe)
    import onnx

    with atomic_path(path) as temporary:
        onnx.save(proto, str(temporary))
    return path


def onnx_proto(model: nn.Module, *, max_disparity: int | None,
               recipe: dict[str, Any] | None = None):
    """Export `model` to a checked `onnx.ModelProto` carrying the package's metadata."""
    import onnx

    model = model.eval()
    multiple = int(getattr(model, 'pad_multiple', 1))
    height, width = (multiple * torch.export.Dim(name, min=1, max=_MAX_STEPS)
                     for name in ('height_steps', 'width_steps'))
    shapes = {name: {2: height, 3: width} for name in INPUT_NAMES}
    example = _example(multiple, EXAMPLE_STEPS)
    program = torch.onnx.export(
        model, example, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
        dynamic_shapes=shapes, opset_version=OPSET, dynamo=True, optimize=False,
        verbose=False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {key: str(value) for key, value in
                                        describe_model(model, max_disparity, recipe).items()})
    onnx.checker.check_model(proto)
    _check_parity(model, proto.SerializeToString(), multiple)
    return proto


def describe_model(model: nn.Module, max_disparity: int | None,
                   recipe: dict[str, Any] | None) -> dict[str, str]:
    """Return the metadata_props an exported file carries: what the engine needs to run it."""
    return {
        'model': model_name(model),
        'recipe': json.dumps(recipe),
        'max_disparity': '' if max_disparity is None else str(max_disparity),
        'pad_multiple': str(int(getattr(model, 'pad_multiple', 1))),
        'layout': LAYOUT,
        'config': json.dumps(model_config(model)),
    }


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read an exported file's metadata: model, max_disparity (int or None), pad_multiple, ...

    Raises EngineError when the file is not an ONNX file this package exported.
    """
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf's DecodeError has no stable import path
        raise EngineError(f'{path} is not a readable ONNX file: {error}') from error
    props = {prop.key: prop.value for prop in proto.metadata_props}
    missing = [key for key in ('model', 'max_disparity', 'pad_multiple') if key not in props]
    if missing:
        raise EngineError(
            f'{path} lacks metadata {", ".join(missing)}; expected a file written by '
            '`stereo-derain export`')
    band = props['max_disparity']
    return {**props, 'max_disparity': int(band) if band else None,
            'pad_multiple': int(props['pad_multiple'])}


def _example(multiple: int, steps: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shape = (1, 3, steps[0] * multiple, steps[1] * multiple)
    return (torch.rand(shape, generator=generator), torch.rand(shape, generator=generator))


def _check_parity(model: nn.Module, serialized: bytes, multiple: int) -> None:
    """Run the exported graph at a size other than the example's and compare with torch."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(serialized, options,
                                           providers=['CPUExecutionProvider'])
    left, right = _example(multiple, CHECK_STEPS)
    with torch.inference_mode():
        expected = model(left, right)
    outputs = session.run(list(OUTPUT_NAMES), {'left': left.numpy(), 'right': right.numpy()})
    error = max(float(np.abs(out - ref.numpy()).max()) for out, ref in zip(outputs, expected))
    if not error <= PARITY_TOLERANCE:
        raise EngineError(
            f'the exported {model_name(model)} graph differs from torch by {error:.2g} at '
            f'{left.shape[-2]}x{left.shape[-1]} (tolerance {PARITY_TOLERANCE}); it cannot be '
            'used at sizes other than the example')
