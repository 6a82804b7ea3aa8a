"""What the demo runs: input bag settings, the node's model, replay pace and report size."""

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from stereo_derain_ros.bagio.clip import RainClip
from stereo_derain_ros.demo import DemoError
from stereo_derain_ros.engine.config import DEFAULT_MODEL


@dataclass
class DemoConfig(RainClip):
    """Demo settings; the defaults are what `make demo` runs (see docs/demo.md).

    `replay_rate` None paces the replay from the node's own measured time per set, so that the
    node keeps up and no set is superseded; a number forces it (superseded sets are then counted
    and reported rather than prevented).
    """

    min_side: ClassVar[int] = 32
    min_side_reason: ClassVar[str] = ' (SSIM and SGBM need room)'

    output: Path = Path('demo_output')
    width: int = 480
    height: int = 270
    preset: str = 'heavy'
    model: str = DEFAULT_MODEL
    weights: Path | None = None
    untrained: bool = False
    device: str = 'auto'
    replay_rate: float | None = None
    sample_frames: int = 3
    scored_frames: int = 5
    node_start_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        if self.weights is not None:
            self.weights = Path(self.weights)
            if self.untrained:
                raise DemoError('give either --weights or --untrained, not both')
            if not self.weights.is_file():
                raise DemoError(f'weights file {self.weights} does not exist')
        problem = self.clip_problem()
        if problem:
            raise DemoError(problem)
        if self.replay_rate is not None and not self.replay_rate > 0:
            raise DemoError(f'replay rate must be > 0, got {self.replay_rate}')
        if self.sample_frames < 1 or self.scored_frames < 1:
            raise DemoError(f'frames to show and to score must be at least 1, got '
                            f'{self.sample_frames} and {self.scored_frames}')

    @property
    def bag_name(self) -> str:
        """Return the cached input bag's folder name: every setting that changes its content."""
        return (f'rainy_demo_{self.width}x{self.height}_{self.duration_s:g}s_'
                f'{self.rate_hz:g}hz_{self.preset}_seed{self.seed}')
