"""The node's parameters as one table, without rclpy.

Each parameter is one field of `NodeParameters`: its type, default, description, range or
choices, whether it is read-only and whether changing it rebuilds the engine. The node declares
its ROS parameters (with `ParameterDescriptor` ranges) from this table, `config/stereo_derain.yaml`
and docs/node.md are checked against it by the tests, and the launch files forward its names.
Values that the engine or the synchronizer own are validated by composing their configs
(`EngineConfig`, `SyncConfig`), never re-checked here. Sync parameter names follow
stereo_image_proc so users can copy values between the two.
"""

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from stereo_derain_ros.engine.config import BACKENDS, EngineConfig, PRECISIONS
from stereo_derain_ros.stereo_sync import SyncConfig

INPUT_TYPES = ('raw', 'compressed')
OUTPUT_IMAGE_LEAVES = ('image_rect', 'image_raw')
# A timer faster than any camera only burns CPU polling an empty synchronizer.
MAX_RATE_HZ = 200.0
SPEC = 'parameter'


@dataclass(frozen=True)
class ParameterSpec:
    """One row of the table; `minimum`/`maximum` become the descriptor's range."""

    name: str
    type: type
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False
    rebuilds_engine: bool = False

    def range_text(self) -> str:
        """Return the allowed values as the docs show them."""
        if self.choices:
            return ', '.join(f'`{choice}`' for choice in self.choices)
        if self.minimum is not None:
            return f'{self.minimum:g} – {self.maximum:g}'
        return ''

    def check(self, value: Any) -> str | None:
        """Return what is wrong with `value`, or None when it is allowed."""
        if type(value) is not self.type:
            return f'{self.name} must be a {self.type.__name__}, got {value!r}'
        if self.choices and value not in self.choices:
            return f'{self.name} must be one of {", ".join(self.choices)}; got {value!r}'
        if self.minimum is not None and not self.minimum <= value <= self.maximum:
            return (f'{self.name} must be between {self.minimum:g} and {self.maximum:g}; '
                    f'got {value!r}')
        return None


def _parameter(default: Any, description: str, **spec: Any) -> Any:
    return field(default=default, metadata={SPEC: (description, spec)})


def _engine_parameter(default: Any, description: str, **spec: Any) -> Any:
    """Declare a parameter of the engine: changing it live rebuilds the engine."""
    return _parameter(default, description, rebuilds_engine=True, **spec)


def _startup_parameter(default: Any, description: str, **spec: Any) -> Any:
    """Declare a parameter read once at startup (topics, QoS, synchronizer): read-only."""
    return _parameter(default, description, read_only=True, **spec)


@dataclass(frozen=True)
class NodeParameters:
    """Every parameter of `stereo_derain_node`, with its default and table row."""

    enable: bool = _parameter(
        True, 'derain when true; republish the input unchanged when false (changeable live)')
    model: str = _engine_parameter(
        '', "registered model name (`stereo-derain models`); empty = the checkpoint's model, "
        'else the default model')
    weights: str = _engine_parameter(
        '', 'safetensors checkpoint path; empty = the weights shipped for `model`')
    allow_untrained_weights: bool = _engine_parameter(
        False, 'run a model with random weights when none are found (tests only)')
    device: str = _engine_parameter(
        'auto', "'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'")
    precision: str = _engine_parameter(
        'auto', 'fp16 runs on CUDA, bf16 on CUDA and on CPUs with AVX512-BF16 or AMX (torch '
        'backend); auto is fp16 on CUDA, bf16 on a CPU that runs it in hardware, else fp32',
        choices=PRECISIONS)
    backend: str = _engine_parameter(
        'torch', 'runs the network; with onnxruntime, `weights` may be an .onnx file (see '
        'docs/deploy.md)', choices=BACKENDS)
    threads: int = _engine_parameter(
        1, 'CPU threads of torch and OpenCV (the view fusion); 0 = their defaults (one per '
        'core). 1 measured fastest on small shared CPUs (docs/node.md)', minimum=0, maximum=256)
    tile_size: int = _engine_parameter(
        0, 'process images in square tiles of this many pixels per side, wider than 2 x '
        '(max_disparity + receptive margin) + 32 (about 640 px for bandnet); 0 = whole image',
        minimum=0, maximum=16384)
    max_disparity: int = _engine_parameter(
        0, "largest disparity (px) the model attends over; 0 = the model's own band",
        minimum=0, maximum=4096)
    self_ensemble: int = _engine_parameter(
        1, 'average the network over 1, 2 or 4 flips of each pair: better images for 2x or 4x '
        'the inference time (docs/engine.md)', minimum=1, maximum=4)
    refine: bool = _engine_parameter(
        True, 'correct the fine detail the network leaves on streak pixels with the small '
        'full-resolution refiner: better rainy and rain-free images (docs/engine.md)')
    refiner: str = _engine_parameter(
        '', 'with refine: refiner checkpoint from stereo-derain train-refiner; empty = the '
        'packaged refiners')
    view_fusion: bool = _engine_parameter(
        False, 'match the derained pair with SGBM and correct each view from the other where '
        'the network changed it: better rainy and rain-free images for one CPU matching per set '
        '(docs/engine.md)')
    view_fusion_disparity_range: int = _engine_parameter(
        64, "with view_fusion: SGBM's search range in px, a multiple of 16 (as "
        "stereo_image_proc's disparity_range)", minimum=16, maximum=1024)
    view_fusion_gate: str = _engine_parameter(
        '', 'with view_fusion: gate checkpoint from stereo-derain train-fusion-gate; empty = the '
        'packaged gate')
    input_type: str = _startup_parameter(
        'raw', "'raw' (sensor_msgs/Image) or 'compressed' (<image topic>/compressed)",
        choices=INPUT_TYPES)
    rate_hz: float = _startup_parameter(
        0.0, 'processing timer rate; 0 = process each new set as soon as it is complete',
        minimum=0.0, maximum=MAX_RATE_HZ)
    queue_size: int = _startup_parameter(
        5, 'messages kept per input while waiting for a match (as stereo_image_proc)',
        minimum=1, maximum=100)
    approximate_sync: bool = _startup_parameter(
        False, 'pair stamps approximately instead of exactly (as stereo_image_proc)')
    approximate_sync_tolerance_seconds: float = _startup_parameter(
        0.0, 'with approximate_sync: largest stamp spread within a set; 0 = nearest, unbounded',
        minimum=0.0, maximum=10.0)
    camera_info_timeout_seconds: float = _startup_parameter(
        2.0, 'how long a stereo pair waits for its camera_info before it is published without',
        minimum=0.0, maximum=60.0)
    output_namespace: str = _startup_parameter(
        'stereo_derained', 'namespace of the published topics (relative to the node namespace)')
    output_image_leaf: str = _startup_parameter(
        'image_rect', 'leaf name of the output images', choices=OUTPUT_IMAGE_LEAVES)


def _spec(item) -> ParameterSpec:
    description, spec = item.metadata[SPEC]
    return ParameterSpec(item.name, item.type, item.default, description, **spec)


PARAMETERS: tuple[ParameterSpec, ...] = tuple(_spec(item) for item in fields(NodeParameters))
PARAMETER_TABLE = {spec.name: spec for spec in PARAMETERS}


def parameter_defaults() -> dict[str, object]:
    """Return `{name: default}` in declaration order."""
    return {spec.name: spec.default for spec in PARAMETERS}


def engine_config(params: NodeParameters) -> EngineConfig:
    """Compose the engine's config through the one contract, which validates every value.

    The parameters' unset spellings ('' and 0) mean the engine's own defaults there.
    """
    return EngineConfig.from_options(
        model=params.model, weights=params.weights, untrained=params.allow_untrained_weights,
        device=params.device, precision=params.precision, backend=params.backend,
        max_disparity=params.max_disparity, tile=params.tile_size, threads=params.threads,
        self_ensemble=params.self_ensemble, refine=params.refine, refiner=params.refiner,
        view_fusion=params.view_fusion,
        view_fusion_disparity_range=params.view_fusion_disparity_range,
        view_fusion_gate=params.view_fusion_gate)


def sync_config(params: NodeParameters) -> SyncConfig:
    """Compose the synchronizer's config (it validates its own values)."""
    return SyncConfig(
        queue_size=params.queue_size, approximate_sync=params.approximate_sync,
        approximate_sync_tolerance_seconds=params.approximate_sync_tolerance_seconds,
        camera_info_timeout_seconds=params.camera_info_timeout_seconds)


def validate_parameters(values: dict[str, object]) -> NodeParameters:
    """Return the parameters as a dataclass, or raise ValueError naming each bad value."""
    problems = [problem for spec in PARAMETERS if spec.name in values
                and (problem := spec.check(values[spec.name])) is not None]
    unknown = sorted(set(values) - set(PARAMETER_TABLE))
    if unknown:
        problems.append(f'unknown parameter(s) {", ".join(unknown)}')
    if problems:
        raise ValueError('; '.join(problems))
    params = NodeParameters(**values)
    if not params.output_namespace.strip('/'):
        raise ValueError('output_namespace must not be empty: the output would overwrite the '
                         'input')
    engine_config(params)
    sync_config(params)
    return params


def changed(params: NodeParameters, changes: dict[str, object]) -> NodeParameters:
    """Return `params` with `changes` applied and validated."""
    return validate_parameters({**asdict(params), **changes})


def parameters_markdown() -> str:
    """Render the table for docs/node.md (a test keeps the docs equal to this)."""
    rows = ['| name | type | default | range | read-only | rebuilds engine | description |',
            '|---|---|---|---|---|---|---|']
    for spec in PARAMETERS:
        default = repr(spec.default) if spec.type is str else str(spec.default).lower()
        rows.append(f'| `{spec.name}` | {spec.type.__name__} | `{default}` | {spec.range_text()} '
                    f'| {"yes" if spec.read_only else ""} '
                    f'| {"yes" if spec.rebuilds_engine else ""} | {spec.description} |')
    return '\n'.join(rows)
