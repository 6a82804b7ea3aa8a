"""Where trained weights ship: `stereo_derain_ros/weights/<model>.safetensors` in the package."""

from importlib import resources
from pathlib import Path

from stereo_derain_ros.engine.errors import MissingWeightsError

WEIGHTS_PACKAGE = 'stereo_derain_ros'
WEIGHTS_FOLDER = 'weights'


def packaged_weights(model: str) -> Path | None:
    """Return the packaged checkpoint of `model`, or None when none is shipped."""
    candidate = resources.files(WEIGHTS_PACKAGE).joinpath(WEIGHTS_FOLDER, f'{model}.safetensors')
    if candidate.is_file():
        return Path(str(candidate))
    return None


def require_packaged_weights(model: str) -> Path:
    """Return the packaged checkpoint of `model` or explain how to run without one."""
    path = packaged_weights(model)
    if path is None:
        raise MissingWeightsError(
            f'no trained weights are packaged for model {model!r} yet (looked for '
            f'{WEIGHTS_PACKAGE}/{WEIGHTS_FOLDER}/{model}.safetensors); pass a checkpoint '
            '(weights=PATH, CLI --weights PATH), or allow_untrained=True (CLI --untrained) to '
            'run untrained weights for testing')
    return path
