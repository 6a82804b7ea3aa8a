"""The inference engine: numpy stereo pairs in and out, devices, precision, tiling, checkpoints."""

from stereo_derain_ros.engine.checkpoint import (
    build_model_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from stereo_derain_ros.engine.config import DEFAULT_MODEL, EngineConfig
from stereo_derain_ros.engine.errors import CheckpointError, EngineError, MissingWeightsError
from stereo_derain_ros.engine.inference import DerainEngine
from stereo_derain_ros.engine.weights import packaged_weights

__all__ = [
    'CheckpointError',
    'DEFAULT_MODEL',
    'DerainEngine',
    'EngineConfig',
    'EngineError',
    'MissingWeightsError',
    'build_model_from_checkpoint',
    'load_checkpoint',
    'packaged_weights',
    'save_checkpoint',
]
