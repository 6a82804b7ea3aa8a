"""Rendered rain samples as torch dicts, and the seed ranges that keep sets apart.

Training, validation and the held-out benchmark draw procedural scenes from disjoint seed ranges
(scene seed = base + index, bases 10⁶ apart per seed and set), so no scene or rain pattern of the
benchmark is ever seen in training. The real Middlebury Motorcycle pair is used only by the
held-out set.
"""

from dataclasses import replace

import numpy as np
import torch

from stereo_derain_ros.rain.params import PRESETS, RainParams
from stereo_derain_ros.rain.procedural import procedural_scene
from stereo_derain_ros.rain.render import RainSample, render_rain

TRAIN_SCENE_BASE = 1_000_000
VAL_SCENE_BASE = 500_000_000
HELDOUT_SCENE_BASE = 900_000_000
SEED_STRIDE = 1_000_000
TRAINING_PRESETS = ('light', 'medium', 'heavy')


def training_rain_params(rng: np.random.Generator) -> RainParams:
    """Draw rain around the light..heavy presets: a preset with every knob jittered.

    Staying near the benchmark presets (no lens drops or sensor noise, which no deraining net can
    undo from one frame) spends a short CPU training budget where it counts.
    """
    preset = PRESETS[TRAINING_PRESETS[int(rng.integers(len(TRAINING_PRESETS)))]]

    def jitter(low: float, high: float) -> float:
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))

    return replace(
        preset,
        rain_rate_mm_h=preset.rain_rate_mm_h * jitter(0.6, 1.6),
        exposure_s=preset.exposure_s * jitter(0.7, 1.4),
        wind_mps=(float(rng.normal(preset.wind_mps[0], 1.5)), float(rng.normal(0.0, 0.3))),
        gain=preset.gain * jitter(0.8, 1.25),
        drop_brightness=float(np.clip(preset.drop_brightness * jitter(0.75, 1.3), 0.1, 0.9)),
        veil_scale=preset.veil_scale * jitter(0.5, 1.5),
        z_near_m=preset.z_near_m * jitter(0.75, 1.5),
        focus_m=preset.focus_m * jitter(0.5, 3.0),
    )


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


def sample_dict(sample: RainSample) -> dict[str, torch.Tensor]:
    """Convert a rendered sample into the dataset contract's dict of 3×H×W float tensors."""
    return {
        'rainy_left': _tensor(sample.rainy_left),
        'rainy_right': _tensor(sample.rainy_right),
        'clean_left': _tensor(sample.clean_left),
        'clean_right': _tensor(sample.clean_right),
        'alpha_left': torch.from_numpy(np.ascontiguousarray(sample.alpha_left))[None],
        'alpha_right': torch.from_numpy(np.ascontiguousarray(sample.alpha_right))[None],
        'disparity': torch.from_numpy(np.ascontiguousarray(sample.disparity_left))[None],
    }


class SyntheticRainSet:
    """Procedural scenes `base + index` with randomised light..heavy rain, rendered on access.

    Deterministic per (base, index): the scene, the rain parameters and the drops all derive
    from the scene seed, so any process renders the same sample.
    """

    def __init__(self, base: int, count: int, width: int = 512, height: int = 256):
        self.base, self.count, self.width, self.height = base, count, width, height

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.count:
            raise IndexError(f'sample {index} outside 0..{self.count - 1}')
        seed = self.base + index
        scene = procedural_scene(seed, self.width, self.height)
        params = training_rain_params(np.random.default_rng([seed, 1]))
        return sample_dict(render_rain(scene, params, seed))
