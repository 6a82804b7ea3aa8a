"""Schedules as pure functions of the step, so that a resumed run continues exactly where it was.

The progressive crop schedule follows APANet (small crops first for many cheap steps, larger
crops later for context); the learning rate is cosine-decayed from `lr` to `lr_min` after a short
linear warm-up.
"""

from dataclasses import dataclass
import math


@dataclass(frozen=True)
class CropSchedule:
    """Crop sizes by step: `(size, until_step)` phases; the last size runs to the end."""

    phases: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, spec: str) -> 'CropSchedule':
        """Parse `SIZE:UNTIL_STEP,...` (e.g. `64:1000,96:3000,128`); a bare size is final."""
        phases = []
        for part in filter(None, (item.strip() for item in spec.split(','))):
            size_text, _, until_text = part.partition(':')
            try:
                size = int(size_text)
                until = int(until_text) if until_text else math.inf
            except ValueError:
                raise ValueError(f'bad crop schedule entry {part!r} in {spec!r}; expected '
                                 f'SIZE:UNTIL_STEP such as 64:1000') from None
            if size < 16:
                raise ValueError(f'crop size must be at least 16 px, got {size} in {spec!r}')
            phases.append((size, until))
        if not phases:
            raise ValueError(f'crop schedule {spec!r} is empty')
        untils = [until for _, until in phases]
        if untils != sorted(untils):
            raise ValueError(f'crop schedule steps must increase, got {spec!r}')
        return cls(tuple(phases))

    def crop_at(self, step: int) -> int:
        for size, until in self.phases:
            if step < until:
                return size
        return self.phases[-1][0]

    def spec(self) -> str:
        return ','.join(f'{size}:{until}' if math.isfinite(until) else str(size)
                        for size, until in self.phases)


def cosine_lr(step: int, total_steps: int, lr: float, lr_min: float, warmup: int) -> float:
    """Return the learning rate of `step` (0-based) for a run of `total_steps`."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * progress))
