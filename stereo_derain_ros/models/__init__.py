"""Stereo deraining networks: pure PyTorch, no I/O, no ROS.

Importing the package registers every model; build one with `build_model(name, **overrides)`.
"""

from stereo_derain_ros.models.base import ParallaxModule, StereoDerainModel
from stereo_derain_ros.models.registry import (
    available_models,
    build_model,
    count_macs,
    count_macs_on_meta,
    count_parameters,
    decimal_config_fields,
    model_config,
    model_description,
    model_name,
    register_model,
)

__all__ = [
    'ParallaxModule',
    'StereoDerainModel',
    'available_models',
    'build_model',
    'count_macs',
    'count_macs_on_meta',
    'count_parameters',
    'decimal_config_fields',
    'model_config',
    'model_description',
    'model_name',
    'register_model',
]

# Importing the model modules registers them.
from stereo_derain_ros.models import apanet, bandnet, stereoirr  # noqa: E402, F401, I001
