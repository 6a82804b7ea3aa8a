"""Engine settings, validated on construction so a typo fails at start-up, not at a frame.

This is the one place that checks engine options (model names, devices, precisions, tiles,
threads) and that holds the default model: the CLI, the node, the benchmarks and the demo all build
their `EngineConfig` through `EngineConfig.from_options`, so a value means the same everywhere.
It imports no torch at module level, so help texts can quote its defaults cheaply.
"""

from dataclasses import dataclass, field, fields
import re
from typing import Any

DEFAULT_MODEL = 'bandnet'
PRECISIONS = ('auto', 'fp32', 'fp16', 'bf16')
BACKENDS = ('torch', 'onnxruntime')
DEVICE_CHOICES = ('auto', 'cpu', 'cuda', 'cuda:N')
SELF_ENSEMBLE_PASSES = (1, 2, 4)
_DEVICE_PATTERN = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')


def tile_shape(tile: int | tuple[int, int]) -> tuple[int, int]:
    """Return a tile setting as (height, width); an int means a square tile."""
    if isinstance(tile, int):
        return tile, tile
    height, width = tile
    return int(height), int(width)


@dataclass
class EngineConfig:
    """How a DerainEngine is built and run.

    `weights` is a checkpoint path; None means the packaged weights of `model`. `model` None means
    the checkpoint's model when a checkpoint is given, else DEFAULT_MODEL. `model_overrides` only
    applies to untrained models: a checkpoint carries its own configuration. `allow_untrained`
    runs freshly initialised weights (testing only) when no checkpoint path is given, even where
    packaged weights exist.

    `max_disparity` (input pixels) limits cross-view matching; None keeps the model's own band.

    `tile` (int or (height, width), None = whole image) bounds memory: tiles are cut at identical
    coordinates in both views and, when a disparity band is in force, each tile carries that many
    extra columns of context on each side so that every output pixel sees its whole band.
    `tile_margin` (pixels a tile's output is not trusted next to an inner edge) None means the
    model's receptive radius, measured when tiling starts.

    `channels_last` runs the network in the NHWC memory layout on either device (on the CPU,
    bandnet is 1.17x faster than in NCHW at 640x360 and 1.36x at 1280x720: no layout copies
    around its per-pixel LayerNorm and 1x1 convolutions); False keeps NCHW.

    `threads` sets the CPU threads of torch (intra-op) and of OpenCV (the view fusion's SGBM and
    warps) when the engine is built (None keeps their defaults, one per core); on small shared
    machines one thread is often faster than several.

    `backend` runs the network: 'torch' (eager PyTorch) or 'onnxruntime' (an exported graph;
    `weights` may then also be an .onnx file from `stereo-derain export`).

    `self_ensemble` averages the network over 1, 2 or 4 flips of the pair (`engine.
    self_ensemble`): better images on every held-out set for 2x or 4x the compute, so it is off
    (1) by default and meant for a GPU with time to spare or for offline bag processing.

    `refine` runs the refiner (`engine.refinement`) after the network: a small full-resolution
    net, trained behind the packaged bandnet weights, that corrects the fine detail the network
    leaves on streak pixels: better images on every held-out set, rain-free frames included, for
    five narrow convolutions per pixel (docs/model_card.md, "Refiner"), so it is on by default.
    It runs behind the packaged bandnet weights only, unless `refiner` names a checkpoint
    (`stereo-derain train-refiner`) trained behind the weights in use.

    `view_fusion` matches the derained pair at half resolution with SGBM (search range
    `view_fusion_disparity_range` pixels, a multiple of 16) and a learnt gate corrects each view
    from the other where the network changed it (`engine.view_fusion`): better rainy and
    rain-free images for one CPU matching per pair and about 1.5x the CPU time in fp32, so it is
    off by default. `view_fusion_gate` is the gate's checkpoint
    (`stereo-derain train-fusion-gate`); None means the packaged one.
    """

    model: str | None = None
    weights: str | None = None
    allow_untrained: bool = False
    model_overrides: dict[str, Any] = field(default_factory=dict)
    device: str = 'auto'
    precision: str = 'auto'
    max_disparity: int | None = None
    tile: int | tuple[int, int] | None = None
    tile_overlap: int = 32
    tile_margin: int | None = None
    tile_batch: int = 1
    # Wide: every tile spends 2 x max_disparity of its columns on disparity context.
    fallback_tile: int | tuple[int, int] = (512, 1280)
    auto_fallback: bool = True
    channels_last: bool = True
    compile: bool = False
    warmup_shape: tuple[int, int] | None = (64, 64)
    threads: int | None = None
    backend: str = 'torch'
    self_ensemble: int = 1
    refine: bool = True
    refiner: str | None = None
    view_fusion: bool = False
    view_fusion_disparity_range: int = 64
    view_fusion_gate: str | None = None

    @classmethod
    def from_options(cls, **options: Any) -> 'EngineConfig':
        """Build a config from the options a shell collected (CLI flags, node parameters).

        Shell options keep their user-facing names: `untrained` is `allow_untrained`. A ROS
        parameter cannot be None, so the unset spellings '' (model, weights) and 0 (tile,
        max_disparity, threads) mean None, i.e. the engine's own default. Unknown names are
        refused, so a renamed option cannot be dropped silently.
        """
        if 'untrained' in options:
            options['allow_untrained'] = bool(options.pop('untrained'))
        unknown = sorted(set(options) - {item.name for item in fields(cls)})
        if unknown:
            raise ValueError(f'unknown engine option(s) {", ".join(unknown)}')
        for name in _UNSET_WHEN_FALSY:
            if name in options and options[name] in ('', 0):
                options[name] = None
        for name in ('weights', 'refiner', 'view_fusion_gate'):
            if options.get(name) is not None:
                options[name] = str(options[name])
        return cls(**options)

    def model_to_run(self) -> str:
        """Return the model this config runs: `model`, else the checkpoint's, else DEFAULT_MODEL.

        For a shell that must name the model to another process (the demo's node); reading the
        checkpoint raises CheckpointError when it is missing or damaged.
        """
        if self.model is not None:
            return self.model
        if self.weights is None:
            return DEFAULT_MODEL
        if self.weights.endswith('.onnx'):
            from stereo_derain_ros.engine.onnx_export import read_metadata

            return read_metadata(self.weights)['model']
        from stereo_derain_ros.engine.checkpoint import load_checkpoint

        return load_checkpoint(self.weights)[1]['model']

    def __post_init__(self) -> None:
        check_backend(self.backend, self.weights)
        check_model_name(self.model, allow_none=True)
        check_device(self.device)
        if self.precision not in PRECISIONS:
            raise ValueError(
                f'unknown precision {self.precision!r}; expected one of {", ".join(PRECISIONS)}')
        for name in ('max_disparity', 'threads'):
            value = getattr(self, name)
            minimum = 0 if name == 'max_disparity' else 1
            if value is not None and (not _is_int(value) or value < minimum):
                kind = 'non-negative' if minimum == 0 else 'positive'
                raise ValueError(f'{name} must be a {kind} int or None, got {value!r}')
        self._check_tiles()
        if not _is_int(self.self_ensemble) or self.self_ensemble not in SELF_ENSEMBLE_PASSES:
            raise ValueError(
                f'self_ensemble must be one of {", ".join(map(str, SELF_ENSEMBLE_PASSES))} '
                f'(passes averaged), got {self.self_ensemble!r}')
        for name in ('refine', 'view_fusion'):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f'{name} must be true or false, got {getattr(self, name)!r}')
        if (not _is_int(self.view_fusion_disparity_range) or self.view_fusion_disparity_range < 16
                or self.view_fusion_disparity_range % 16):
            raise ValueError(
                'view_fusion_disparity_range must be a positive multiple of 16 (SGBM search '
                f'range in px), got {self.view_fusion_disparity_range!r}')
        if self.model_overrides and (self.weights is not None or not self.allow_untrained):
            raise ValueError(
                'model_overrides only apply to untrained models (allow_untrained=True, no '
                'weights); a checkpoint carries its own model configuration')

    def _check_tiles(self) -> None:
        for name in ('tile', 'fallback_tile'):
            value = getattr(self, name)
            if value is None and name == 'tile':
                continue
            if not _is_tile(value):
                raise ValueError(
                    f'{name} must be a positive int or a (height, width) pair of positive ints, '
                    f'got {value!r}')
        if not isinstance(self.tile_overlap, int) or self.tile_overlap < 0:
            raise ValueError(f'tile_overlap must be a non-negative int, got {self.tile_overlap!r}')
        if self.tile_margin is not None and (
                not isinstance(self.tile_margin, int) or self.tile_margin < 0):
            raise ValueError(
                f'tile_margin must be a non-negative int or None, got {self.tile_margin!r}')
        if not isinstance(self.tile_batch, int) or self.tile_batch < 1:
            raise ValueError(f'tile_batch must be a positive int, got {self.tile_batch!r}')
        if self.warmup_shape is not None and not _is_tile(tuple(self.warmup_shape)):
            raise ValueError(
                f'warmup_shape must be a (height, width) pair of positive ints or None, '
                f'got {self.warmup_shape!r}')


_UNSET_WHEN_FALSY = ('model', 'weights', 'tile', 'max_disparity', 'threads', 'refiner',
                     'view_fusion_gate')


def default_of(name: str) -> Any:
    """Return the default of one `EngineConfig` field, for help texts and shell defaults."""
    return next(item.default for item in fields(EngineConfig) if item.name == name)


def check_model_name(name: str | None, *, allow_none: bool = False) -> str | None:
    """Return a registered model name, or raise ValueError listing the registered ones."""
    from stereo_derain_ros.models import available_models

    if name is None and allow_none:
        return None
    if name not in available_models():
        raise ValueError(f'unknown model {name!r}; available: {", ".join(available_models())}')
    return name


def check_device(spec: str) -> str:
    """Return a well-formed device spec (auto, cpu, cuda, cuda:N), or raise ValueError."""
    if not isinstance(spec, str) or not _DEVICE_PATTERN.match(spec):
        raise ValueError(f'unknown device {spec!r}; expected one of {", ".join(DEVICE_CHOICES)}')
    return spec


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_backend(backend: str, weights: str | None) -> None:
    """Raise ValueError for an unknown backend or an ONNX file given to the torch backend."""
    if backend not in BACKENDS:
        raise ValueError(f'unknown backend {backend!r}; expected one of {", ".join(BACKENDS)}')
    if backend != 'onnxruntime' and str(weights or '').endswith('.onnx'):
        raise ValueError(f'weights {weights} is an ONNX file; it needs backend '
                         "'onnxruntime' (CLI --backend onnxruntime)")


def _is_tile(value: object) -> bool:
    if _is_int(value):
        return value > 0
    return (isinstance(value, tuple | list) and len(value) == 2
            and all(_is_int(v) and v > 0 for v in value))
