"""An animated rain sequence: one drop population moving through a fixed scene over time."""

import numpy as np

from stereo_derain_ros.rain.params import RainParams
from stereo_derain_ros.rain.particles import sample_drops
from stereo_derain_ros.rain.render import RainSample, render_drops, scene_camera
from stereo_derain_ros.rain.scene import StereoScene


class RainSequence:
    """Frames of the same rain at any time t; each frame is a pure function of (seed, t).

    Drops move with their own velocities and re-enter the volume at the top when they leave it,
    lens drops stay put, and sensor noise is drawn afresh for every distinct time.
    """

    def __init__(self, scene: StereoScene, params: RainParams, seed: int):
        self.scene = scene
        self.params = params
        self.seed = seed
        self._depths = scene.depth('left'), scene.depth('right')
        max_depth = float(max(depth.max() for depth in self._depths))
        rng = np.random.default_rng(seed)
        self.drops = sample_drops(rng, scene_camera(scene), params, max_depth)
        self._lens_seeds = rng.integers(0, 2 ** 63, size=2)

    def frame(self, t_seconds: float) -> RainSample:
        """Return the rainy and clean pair and rain alpha at time t (seconds from the start)."""
        microseconds = round(t_seconds * 1e6)
        noise = np.random.default_rng([self.seed, microseconds & 0xFFFFFFFF]).integers(
            0, 2 ** 63, size=2)
        positions = self.drops.at_time(t_seconds)
        return render_drops(self.scene, self.params, self.drops, positions,
                            np.concatenate([self._lens_seeds, noise]), depths=self._depths)
