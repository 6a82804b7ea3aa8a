"""Exceptions the engine raises for problems the user can fix."""


class EngineError(RuntimeError):
    """The engine cannot run as configured (device missing, nothing left to fall back to)."""


class CheckpointError(ValueError):
    """A checkpoint is missing, unsafe, damaged or for another model; the message says which."""


class MissingWeightsError(LookupError):
    """No trained weights are available for the requested model."""
