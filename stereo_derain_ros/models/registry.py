"""Name -> model class registry, so checkpoints and CLIs can rebuild a model from plain JSON.

A model is registered under a name together with default overrides of its `Config` dataclass;
one class may serve several names (e.g. a stereo network and its monocular ablation). The built
model remembers its name and config, which is what checkpoints store.
"""

from collections.abc import Callable
import dataclasses
from typing import Any

import torch
from torch import nn

_REGISTRY: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, description: str = '',
                   **config_defaults: Any) -> Callable[[type], type]:
    """Register a model class whose `Config` dataclass builds it, under `name`.

    `config_defaults` override the dataclass defaults for this name only, so an ablation is a
    name plus a flag rather than a second class. `description` is the one line listings show.
    """

    def decorate(cls: type) -> type:
        config_cls = getattr(cls, 'Config', None)
        if config_cls is None or not dataclasses.is_dataclass(config_cls):
            raise TypeError(f'model class {cls.__name__} needs a dataclass attribute `Config`')
        if name in _REGISTRY:
            raise ValueError(f'model name {name!r} is already registered')
        _check_fields(name, config_cls, config_defaults)
        _REGISTRY[name] = (cls, dict(config_defaults))
        _DESCRIPTIONS[name] = description
        return cls

    return decorate


def _check_fields(name: str, config_cls: type, values: dict[str, Any]) -> None:
    known = [field.name for field in dataclasses.fields(config_cls)]
    for key in values:
        if key not in known:
            raise ValueError(f'model {name!r} has no config field {key!r}; '
                             f'its fields are: {", ".join(known)}')


def available_models() -> list[str]:
    """Return the registered model names, sorted."""
    return sorted(_REGISTRY)


def model_description(name: str) -> str:
    """Return the one-line description a model was registered with."""
    return _DESCRIPTIONS[name]


def decimal_config_fields(name: str) -> set[str]:
    """Return the config fields of model `name` that take decimal numbers (float defaults).

    Checkpoint vetting allows decimals only there, so a size field stays a whole number.
    """
    cls, defaults = _REGISTRY[name]
    return {field.name for field in dataclasses.fields(cls.Config)
            if isinstance(defaults.get(field.name, field.default), float)}


def build_model(name: str, **overrides: Any) -> nn.Module:
    """Build the model registered as `name` with its default config, fields overridden by keyword.

    Raises ValueError for an unknown name (listing the available ones) or config field.
    """
    if name not in _REGISTRY:
        raise ValueError(f'unknown model {name!r}; available models: '
                         f'{", ".join(available_models())}')
    cls, defaults = _REGISTRY[name]
    _check_fields(name, cls.Config, overrides)
    config = cls.Config(**{**defaults, **overrides})
    model = cls(config)
    model.name = name
    model.config = config
    return model


def model_name(model: nn.Module) -> str:
    """Return the registry name a model was built under."""
    return model.name


def model_config(model: nn.Module) -> dict[str, Any]:
    """Return the model's config as a JSON-serialisable dict (tuples become lists).

    `build_model(model_name(model), **model_config(model))` rebuilds the same architecture.
    """
    return _jsonable(dataclasses.asdict(model.config))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Return the number of parameters (all, or only those that require gradients)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, height: int, width: int) -> int:
    """Count multiply-accumulates for one 1x3xHxW left + right pair with torch's FLOP counter.

    MACs = FLOPs / 2 over the ops the counter knows (convolutions and matrix products), which is
    how published stereo deraining papers count (ptflops-style); element-wise ops are free.
    """
    from torch.utils.flop_counter import FlopCounterMode

    parameter = next(model.parameters())
    left = torch.rand(1, 3, height, width, dtype=parameter.dtype, device=parameter.device)
    right = torch.rand_like(left)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(left, right)
    return counter.get_total_flops() // 2


def count_macs_on_meta(name: str, height: int, width: int, **overrides: Any) -> int:
    """Count one pair's MACs for model `name` built on the meta device.

    Meta tensors have shapes but no storage, so the count costs no memory and almost no time
    at any image size (a real 1280x720 forward of some models needs over 12 GB).
    """
    with torch.device('meta'):
        model = build_model(name, **overrides).eval()
    return count_macs(model, height, width)
