"""The fixed held-out benchmark: rendered by the package's own synthesizer, never trained on.

Per preset (light, medium, heavy) it holds the same 9 scenes:
- procedural scenes with seeds 900000000..900000007 (512×256 px), and
- the real Middlebury 2014 Motorcycle pair from scikit-image at half resolution (370×250 px),
rendered with the preset's rain parameters and rain seed 900001000·k + i, where k is 1, 2, 3 for
light, medium, heavy and i the sample index (0..8). Training uses procedural scene seeds from
1000000 upward (10⁶ per training seed) and validation from 500000000, and never the Motorcycle
pair, so no benchmark scene or rain pattern is seen in training. Rendering is deterministic, so
`heldout:medium` is the same everywhere; `stereo-derain heldout --out DIR` writes it to disk.
"""

import torch

from stereo_derain_ros.evaluation.synthetic import HELDOUT_SCENE_BASE, sample_dict
from stereo_derain_ros.rain.params import rain_params
from stereo_derain_ros.rain.procedural import procedural_scene
from stereo_derain_ros.rain.render import render_rain
from stereo_derain_ros.rain.scene import motorcycle_scene

HELDOUT_PRESETS = ('light', 'medium', 'heavy')
PROCEDURAL_SCENES = 8
MOTORCYCLE_SCALE = 0.5
RAIN_SEED_STEP = 900_001_000


class HeldoutSet:
    """The held-out samples of one preset, rendered on access (about a second each)."""

    def __init__(self, preset: str):
        if preset not in HELDOUT_PRESETS:
            raise ValueError(f'unknown held-out preset {preset!r}; expected one of '
                             f'{", ".join(HELDOUT_PRESETS)}')
        self.preset = preset
        self.rain_seed_base = RAIN_SEED_STEP * (HELDOUT_PRESETS.index(preset) + 1)

    def __len__(self) -> int:
        return PROCEDURAL_SCENES + 1

    def scene_name(self, index: int) -> str:
        if index < PROCEDURAL_SCENES:
            return f'procedural-{HELDOUT_SCENE_BASE + index}'
        return 'middlebury-motorcycle-half'

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f'held-out sample {index} outside 0..{len(self) - 1}')
        if index < PROCEDURAL_SCENES:
            scene = procedural_scene(HELDOUT_SCENE_BASE + index)
        else:
            scene = motorcycle_scene(MOTORCYCLE_SCALE)
        return sample_dict(render_rain(scene, rain_params(self.preset),
                                       self.rain_seed_base + index))
