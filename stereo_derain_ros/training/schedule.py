"""Schedules as pure functions of the step, so that a resumed run continues exactly where it was.

The progressive crop schedule follows APANet (small crops first for many cheap steps, larger
crops later for context); the learning rate is cosine-decayed from `lr` to `lr_min` after a short
linear warm-up.
"""

from dataclasses import dataclass
import math

Crop = tuple[int, int]


def parse_crop(text: str) -> Crop:
    """Parse `S` (square) or `HxW` (e.g. `64x160`: wide crops give parallax attention room)."""
    height_text, _, width_text = text.strip().lower().partition('x')
    try:
        height = int(height_text)
        width = int(width_text) if width_text else height
    except ValueError:
        raise ValueError(f'bad crop size {text!r}; expected SIZE or HEIGHTxWIDTH') from None
    if min(height, width) < 16:
        raise ValueError(f'crop sides must be at least 16 px, got {text!r}')
    return height, width


@dataclass(frozen=True)
class CropSchedule:
    """Crop sizes by step: `(crop, until_step)` phases; the last crop runs to the end."""

    phases: tuple[tuple[Crop, float], ...]

    @classmethod
    def parse(cls, spec: str) -> 'CropSchedule':
        """Parse `CROP:UNTIL_STEP,...` (e.g. `64:1000,96x192`); an entry without a step is final.

        CROP is `S` or `HxW`; each crop is used for the steps before UNTIL_STEP.
        """
        phases = []
        for part in filter(None, (item.strip() for item in spec.split(','))):
            crop_text, _, until_text = part.partition(':')
            crop = parse_crop(crop_text)
            try:
                until = float(int(until_text)) if until_text else math.inf
            except ValueError:
                raise ValueError(f'bad crop schedule entry {part!r} in {spec!r}; expected '
                                 f'CROP:UNTIL_STEP such as 64:1000') from None
            phases.append((crop, until))
        if not phases:
            raise ValueError(f'crop schedule {spec!r} is empty')
        untils = [until for _, until in phases]
        if untils != sorted(untils):
            raise ValueError(f'crop schedule steps must increase, got {spec!r}')
        return cls(tuple(phases))

    def crop_at(self, step: int) -> Crop:
        for crop, until in self.phases:
            if step < until:
                return crop
        return self.phases[-1][0]


def cosine_lr(step: int, total_steps: int, lr: float, lr_min: float, warmup: int) -> float:
    """Return the learning rate of `step` (0-based) for a run of `total_steps`."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * progress))
