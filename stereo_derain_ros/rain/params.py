"""Rain parameters, the named presets and the training-time randomisation."""

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

# How far drops are lifted towards white, the training draw's range (physical and composed).
DROP_BRIGHTNESS_RANGE = (0.2, 0.8)


@dataclass(frozen=True)
class RainParams:
    """Physical and stylistic knobs of one rain rendering (SI units unless named otherwise).

    `gain` scales the physical streak opacity D / (v T), which is only a few per cent and far
    fainter than public deraining sets; `veil_scale` exaggerates the physical extinction so that
    rain accumulation shows at street and garage distances.
    """

    rain_rate_mm_h: float = 10.0
    exposure_s: float = 1 / 60
    wind_mps: tuple[float, float] = (1.0, 0.0)
    ego_velocity_mps: tuple[float, float, float] = (0.0, 0.0, 0.0)
    z_near_m: float = 0.4
    z_far_m: float = 10.0
    max_drops: int = 20000
    focus_m: float = 5.0
    aperture_m: float = 0.002
    gain: float = 12.0
    drop_brightness: float = 0.5
    veil_scale: float = 6.0
    lens_drops: int = 0
    noise_sigma: float = 0.0
    depth_bins: int = 12

    def __post_init__(self):
        positive = ('rain_rate_mm_h', 'exposure_s', 'z_near_m', 'max_drops', 'focus_m',
                    'depth_bins')
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f'rain parameter {name} must be > 0, got {getattr(self, name)}')
        if not self.z_far_m > self.z_near_m:
            raise ValueError(f'z_far_m ({self.z_far_m}) must exceed z_near_m ({self.z_near_m})')
        for name in ('aperture_m', 'gain', 'veil_scale', 'lens_drops', 'noise_sigma'):
            if getattr(self, name) < 0:
                raise ValueError(f'rain parameter {name} must be >= 0, got {getattr(self, name)}')

    def to_dict(self) -> dict:
        """Return a JSON-serialisable dict (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}


PRESETS: dict[str, RainParams] = {
    'light': RainParams(rain_rate_mm_h=2.5, exposure_s=1 / 100, wind_mps=(0.5, 0.0), gain=10.0,
                        drop_brightness=0.4, veil_scale=3.0),
    'medium': RainParams(rain_rate_mm_h=10.0, exposure_s=1 / 60, wind_mps=(1.0, 0.0), gain=12.0,
                         drop_brightness=0.5, veil_scale=6.0),
    'heavy': RainParams(rain_rate_mm_h=30.0, exposure_s=1 / 40, wind_mps=(2.0, 0.0), gain=16.0,
                        drop_brightness=0.6, veil_scale=10.0, max_drops=30000),
    'torrential': RainParams(rain_rate_mm_h=80.0, exposure_s=1 / 30, wind_mps=(3.0, 0.0),
                             gain=22.0, drop_brightness=0.7, veil_scale=15.0, max_drops=40000),
}


def rain_params(preset: str, **overrides) -> RainParams:
    """Return a named preset with some fields overridden."""
    if preset not in PRESETS:
        raise ValueError(f'unknown rain preset {preset!r}; expected one of {sorted(PRESETS)}')
    known = {field.name for field in fields(RainParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f'unknown rain parameters {unknown}; expected some of {sorted(known)}')
    return replace(PRESETS[preset], **overrides)



def random_rain_params(rng: np.random.Generator) -> RainParams:
    """Draw parameters spanning and slightly exceeding the presets, for training diversity."""
    rate = float(np.exp(rng.uniform(np.log(1.0), np.log(120.0))))
    severity = np.log(rate) / np.log(120.0)
    wind = (float(rng.normal(0.0, 2.5)), float(rng.normal(0.0, 0.5)))
    return RainParams(
        rain_rate_mm_h=rate,
        exposure_s=float(np.exp(rng.uniform(np.log(1 / 200), np.log(1 / 25)))),
        wind_mps=wind,
        z_near_m=float(rng.uniform(0.3, 1.0)),
        z_far_m=float(rng.uniform(6.0, 15.0)),
        max_drops=int(rng.integers(10000, 40000)),
        focus_m=float(np.exp(rng.uniform(np.log(1.5), np.log(30.0)))),
        aperture_m=float(rng.uniform(0.0, 0.004)),
        gain=float(rng.uniform(6.0, 14.0) * (1.0 + severity)),
        drop_brightness=float(rng.uniform(*DROP_BRIGHTNESS_RANGE)),
        veil_scale=float(rng.uniform(0.0, 20.0)),
        lens_drops=int(rng.choice([0, 0, 0, 2, 5])),
        noise_sigma=float(rng.choice([0.0, rng.uniform(0.0, 0.02)])),
    )
