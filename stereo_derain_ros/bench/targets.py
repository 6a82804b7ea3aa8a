"""Acceptance targets of the node benchmark, as data: what is measured, the limit, the unit.

The runtime code only measures; `evaluate` compares a result's summary with these rows, so a
target changes here and nowhere else.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One target: `summary[key]` must be at most `limit` (absolute value if `absolute`)."""

    key: str
    text: str
    limit: float
    unit: str
    absolute: bool = False

    def evaluate(self, summary: dict) -> dict:
        value = summary.get(self.key)
        if value is None:
            return {'target': self.text, 'measured': 'not measured', 'met': None}
        checked = abs(value) if self.absolute else value
        return {'target': self.text, 'measured': f'{value:.1f} {self.unit}',
                'met': checked <= self.limit}


NODE_TARGETS = (
    Target('lost_in_transport', 'images lost in transport (camera -> node), largest size at '
           'the transport rate, default node QoS, shipped transport profile', 0, 'images'),
    Target('relay_floor_p50_ms', 'transport floor (relay) p50 at the largest size ≤ 15 ms',
           15.0, 'ms'),
    Target('overhead_p50_ms', 'node overhead p50 (end to end − inference − floor) ≤ 5 ms, '
           'largest size', 5.0, 'ms'),
    Target('overhead_p50_ms_smallest', 'node overhead p50 ≤ 5 ms, smallest size', 5.0, 'ms'),
    Target('soak_rss_growth_mb', 'resident memory flat (±20 MB) after warm-up over the soak at '
           '3× the processing rate', 20.0, 'MB', absolute=True),
)


def evaluate(targets: tuple[Target, ...], summary: dict) -> list[dict]:
    """Return one verdict row per target (met True/False, or None when not measured)."""
    return [target.evaluate(summary) for target in targets]
