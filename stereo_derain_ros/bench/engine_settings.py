"""The engine a benchmark times, as `bench node` and `bench bag` take it from the command line."""

from dataclasses import dataclass

from stereo_derain_ros.engine.config import EngineConfig


@dataclass
class BenchEngineSettings:
    """The engine fields of a benchmark config; results keep them flat under `settings`.

    `model` '' runs the checkpoint's model, else the default model; `weights` '' runs untrained
    weights (speed does not depend on them); `threads` None keeps torch's default.
    """

    model: str = ''
    weights: str = ''
    device: str = 'auto'
    precision: str = 'auto'
    threads: int | None = None

    def engine_config(self) -> EngineConfig:
        """Return the engine's config through the one contract, which validates every value."""
        return EngineConfig.from_options(
            model=self.model, weights=self.weights, untrained=not self.weights,
            device=self.device, precision=self.precision, threads=self.threads or 0)
