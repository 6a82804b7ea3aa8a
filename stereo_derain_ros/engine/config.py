"""Engine settings, validated on construction so a typo fails at start-up, not at a frame."""

from dataclasses import dataclass, field
import re
from typing import Any

DEFAULT_MODEL = 'bandnet'
PRECISIONS = ('auto', 'fp32', 'fp16', 'bf16')
DEVICE_CHOICES = ('auto', 'cpu', 'cuda', 'cuda:N')
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
    extra columns of context so that every output pixel sees its whole band. `tile_margin`
    (pixels a tile's output is not trusted next to an inner edge) None means the model's
    receptive radius, measured when tiling starts.
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
    fallback_tile: int | tuple[int, int] = 512
    auto_fallback: bool = True
    channels_last: bool | None = None
    compile: bool = False
    warmup_shape: tuple[int, int] | None = (64, 64)

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not _DEVICE_PATTERN.match(self.device):
            raise ValueError(
                f'unknown device {self.device!r}; expected one of {", ".join(DEVICE_CHOICES)}')
        if self.precision not in PRECISIONS:
            raise ValueError(
                f'unknown precision {self.precision!r}; expected one of {", ".join(PRECISIONS)}')
        if self.max_disparity is not None and (
                not isinstance(self.max_disparity, int) or self.max_disparity < 0):
            raise ValueError(
                f'max_disparity must be a non-negative int or None, got {self.max_disparity!r}')
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
        if self.model_overrides and (self.weights is not None or not self.allow_untrained):
            raise ValueError(
                'model_overrides only apply to untrained models (allow_untrained=True, no '
                'weights); a checkpoint carries its own model configuration')


def _is_tile(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    return (isinstance(value, tuple | list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value))
