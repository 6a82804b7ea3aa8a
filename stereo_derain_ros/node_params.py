"""The node's parameters: names, defaults, documentation and validation, without rclpy.

One table drives the node's declarations, `config/stereo_derain.yaml`, docs/node.md and the
tests that keep the three in step. Sync parameter names follow stereo_image_proc so users can
copy values between the two.
"""

from dataclasses import dataclass, fields

from stereo_derain_ros.engine.config import BACKENDS

INPUT_TYPES = ('raw', 'compressed')
OUTPUT_IMAGE_LEAVES = ('image_rect', 'image_raw')


@dataclass(frozen=True)
class NodeParameters:
    """Every parameter of `stereo_derain_node`, with its default."""

    enable: bool = True
    model: str = 'bandnet'
    weights: str = ''
    allow_untrained_weights: bool = False
    device: str = 'auto'
    precision: str = 'auto'
    backend: str = 'torch'
    tile_size: int = 0
    max_disparity: int = 0
    input_type: str = 'raw'
    rate_hz: float = 0.0
    queue_size: int = 5
    approximate_sync: bool = False
    approximate_sync_tolerance_seconds: float = 0.0
    camera_info_timeout_seconds: float = 2.0
    output_namespace: str = 'stereo_derained'
    output_image_leaf: str = 'image_rect'


PARAMETER_DESCRIPTIONS = {
    'enable': 'derain when true; republish the input unchanged when false (changeable live)',
    'model': 'registered model name (see `stereo-derain models`)',
    'weights': 'safetensors checkpoint path; empty = the weights shipped for `model`',
    'allow_untrained_weights': 'run a model with random weights when none are found (tests only)',
    'device': "'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'",
    'precision': "'auto', 'fp32', 'fp16' or 'bf16' (half precision on CUDA only)",
    'backend': "'torch' or 'onnxruntime' (weights may then be an .onnx file, see docs/deploy.md)",
    'tile_size': 'process images in tiles of this many pixels per side; 0 = whole image',
    'max_disparity': "largest disparity (px) the model attends over; 0 = the model's own band",
    'input_type': "'raw' (sensor_msgs/Image) or 'compressed' (<image topic>/compressed)",
    'rate_hz': 'processing timer rate; 0 = process each new set as soon as it is complete',
    'queue_size': 'messages kept per input while waiting for a match (as stereo_image_proc)',
    'approximate_sync': 'pair stamps approximately instead of exactly (as stereo_image_proc)',
    'approximate_sync_tolerance_seconds':
        'with approximate_sync: largest stamp spread within a set; 0 = nearest, unbounded',
    'camera_info_timeout_seconds':
        'after this long without camera_info, image pairs are published without it',
    'output_namespace': 'namespace of the published topics (relative to the node namespace)',
    'output_image_leaf': "leaf name of the output images: 'image_rect' or 'image_raw'",
}

# Changing these needs new subscriptions, publishers or timers: restart the node instead.
READ_ONLY_PARAMETERS = frozenset({
    'input_type', 'rate_hz', 'queue_size', 'approximate_sync',
    'approximate_sync_tolerance_seconds', 'camera_info_timeout_seconds', 'output_namespace',
    'output_image_leaf',
})

# Changing these rebuilds the engine (validated by building it before accepting the change).
ENGINE_PARAMETERS = frozenset({
    'model', 'weights', 'allow_untrained_weights', 'device', 'precision', 'backend', 'tile_size',
    'max_disparity',
})


def parameter_defaults() -> dict[str, object]:
    """Return `{name: default}` in declaration order."""
    defaults = NodeParameters()
    return {field.name: getattr(defaults, field.name) for field in fields(NodeParameters)}


def validate_parameters(values: dict[str, object]) -> NodeParameters:
    """Return the parameters as a dataclass, or raise ValueError naming the bad value."""
    params = NodeParameters(**values)
    problems = []
    if not params.model:
        problems.append('model must name a registered model, got an empty string')
    if params.device != 'auto' and params.device != 'cpu' and not (
            params.device == 'cuda' or (params.device.startswith('cuda:')
                                        and params.device[5:].isdigit())):
        problems.append(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {params.device!r}")
    if params.precision not in ('auto', 'fp32', 'fp16', 'bf16'):
        problems.append(
            f"precision must be 'auto', 'fp32', 'fp16' or 'bf16', got {params.precision!r}")
    if params.backend not in BACKENDS:
        problems.append(f'backend must be one of {BACKENDS}, got {params.backend!r}')
    if params.tile_size < 0:
        problems.append(f'tile_size must be 0 (no tiling) or positive, got {params.tile_size}')
    if params.max_disparity < 0:
        problems.append(
            f"max_disparity must be 0 (the model's band) or positive, got {params.max_disparity}")
    if params.input_type not in INPUT_TYPES:
        problems.append(f'input_type must be one of {INPUT_TYPES}, got {params.input_type!r}')
    if params.rate_hz < 0.0:
        problems.append(f'rate_hz must be >= 0 (0 = as soon as a set is ready), got '
                        f'{params.rate_hz}')
    if params.queue_size < 1:
        problems.append(f'queue_size must be at least 1, got {params.queue_size}')
    if params.approximate_sync_tolerance_seconds < 0.0:
        problems.append('approximate_sync_tolerance_seconds must be >= 0, got '
                        f'{params.approximate_sync_tolerance_seconds}')
    if params.camera_info_timeout_seconds < 0.0:
        problems.append('camera_info_timeout_seconds must be >= 0, got '
                        f'{params.camera_info_timeout_seconds}')
    if params.output_image_leaf not in OUTPUT_IMAGE_LEAVES:
        problems.append(f'output_image_leaf must be one of {OUTPUT_IMAGE_LEAVES}, got '
                        f'{params.output_image_leaf!r}')
    if not params.output_namespace.strip('/'):
        problems.append('output_namespace must not be empty: the output would overwrite the input')
    if problems:
        raise ValueError('; '.join(problems))
    return params
