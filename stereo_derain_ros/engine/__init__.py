"""The inference engine: numpy stereo pairs in and out, devices, precision, tiling, checkpoints.

Names are loaded on first use (PEP 562), so that `engine.config` (defaults, validation) can be
read by help texts without importing torch.
"""

import importlib

_EXPORTS = {
    'CheckpointError': 'errors',
    'DEFAULT_MODEL': 'config',
    'DerainEngine': 'inference',
    'EngineConfig': 'config',
    'EngineError': 'errors',
    'MissingWeightsError': 'errors',
    'build_model_from_checkpoint': 'checkpoint',
    'load_checkpoint': 'checkpoint',
    'packaged_weights': 'weights',
    'resolve_device': 'devices',
    'save_checkpoint': 'checkpoint',
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
