"""The rainy clip of a synthetic bag: frame size, length, rate, rain preset and seed.

`make-bag` renders one and the demo renders its input bag from one, so both take the same
settings, checks and command-line options. This module imports nothing heavy, so the command
line can read the defaults for its help texts.
"""

from dataclasses import dataclass, fields
from typing import ClassVar


@dataclass(kw_only=True)
class RainClip:
    """What a rainy sequence looks like over time; subclasses add where it goes and why."""

    # The smallest side the clip's user can work with, and why (said in the error).
    min_side: ClassVar[int] = 8
    min_side_reason: ClassVar[str] = ''

    width: int = 640
    height: int = 360
    duration_s: float = 3.0
    rate_hz: float = 10.0
    preset: str = 'medium'
    seed: int = 0

    @property
    def frame_count(self) -> int:
        return max(1, round(self.duration_s * self.rate_hz))

    def clip_problem(self) -> str | None:
        """Return what is wrong with the size, length or rate, or None when they are usable."""
        if not self.duration_s > 0 or not self.rate_hz > 0:
            return f'duration and rate must be > 0, got {self.duration_s} s at {self.rate_hz} Hz'
        if self.width < self.min_side or self.height < self.min_side:
            return (f'size must be at least {self.min_side}x{self.min_side}'
                    f'{self.min_side_reason}, got {self.width}x{self.height}')
        return None

    def clip(self) -> dict[str, object]:
        """Return the clip's own fields, to render the bag of a config that extends the clip."""
        return {item.name: getattr(self, item.name) for item in fields(RainClip)}
