"""One 3-D population of falling drops, shared by both views and advanced in time.

Positions live in the left camera frame (X right, Y down, Z forward, metres). The population
fills the union of both camera frusta between a near and a far depth, so every drop that either
view can see exists exactly once; its own disparity then follows from its depth alone.
"""

from dataclasses import dataclass

import numpy as np

from stereo_derain_ros.rain.params import RainParams

MARSHALL_PALMER_N0 = 8000.0  # drops per m^3 per mm of diameter
DIAMETER_RANGE_MM = (0.5, 4.0)  # smaller drops never show as streaks; larger ones break up
Z_GRID_POINTS = 256


def marshall_palmer_slope(rain_rate_mm_h: float) -> float:
    """Return Lambda (1/mm) of the Marshall-Palmer size distribution for a rain rate."""
    return 4.1 * rain_rate_mm_h ** -0.21


def drops_per_cubic_metre(rain_rate_mm_h: float) -> float:
    """Return the number density of drops within DIAMETER_RANGE_MM."""
    slope = marshall_palmer_slope(rain_rate_mm_h)
    low, high = DIAMETER_RANGE_MM
    return MARSHALL_PALMER_N0 / slope * (np.exp(-slope * low) - np.exp(-slope * high))


def terminal_velocity(diameter_mm: np.ndarray) -> np.ndarray:
    """Return the fall speed in m/s for drop diameters in mm (Atlas et al. 1973)."""
    return np.maximum(9.65 - 10.3 * np.exp(-0.6 * diameter_mm), 0.1)


@dataclass(frozen=True)
class StereoCamera:
    """Pinhole geometry of the rectified pair: right centre at X = baseline, cx + doffs."""

    width: int
    height: int
    focal_px: float
    baseline_m: float
    doffs_px: float = 0.0
    cx_px: float | None = None
    cy_px: float | None = None

    @property
    def cx(self) -> float:
        return self.width / 2 if self.cx_px is None else self.cx_px

    @property
    def cy(self) -> float:
        return self.height / 2 if self.cy_px is None else self.cy_px

    def view_origin(self, view: str) -> tuple[float, float]:
        """Return (camera X in the left frame, principal point column) of a view."""
        if view == 'left':
            return 0.0, self.cx
        return self.baseline_m, self.cx + self.doffs_px

    def disparity(self, depth_m: np.ndarray) -> np.ndarray:
        """Return the disparity in px of points at the given depths."""
        return self.focal_px * self.baseline_m / depth_m - self.doffs_px


@dataclass(frozen=True)
class RainVolume:
    """The sampled region: union of both frusta plus margins for motion during the exposure."""

    camera: StereoCamera
    z_near: float
    z_far: float
    margin_x: float
    margin_top: float
    margin_bottom: float

    def x_range(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cam = self.camera
        lows, highs = [], []
        for view in ('left', 'right'):
            origin, cx = cam.view_origin(view)
            lows.append(origin - cx * z / cam.focal_px)
            highs.append(origin + (cam.width - cx) * z / cam.focal_px)
        return np.minimum(*lows) - self.margin_x, np.maximum(*highs) + self.margin_x

    def y_range(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cam = self.camera
        return (-cam.cy * z / cam.focal_px - self.margin_top,
                (cam.height - cam.cy) * z / cam.focal_px + self.margin_bottom)

    def cross_section(self, z: np.ndarray) -> np.ndarray:
        x0, x1 = self.x_range(z)
        y0, y1 = self.y_range(z)
        return (x1 - x0) * (y1 - y0)


def cumulative_volume(volume: RainVolume, z_far: float) -> tuple[np.ndarray, np.ndarray]:
    """Return a depth grid and the volume (m^3) between z_near and each grid depth."""
    grid = np.linspace(volume.z_near, z_far, Z_GRID_POINTS)
    area = volume.cross_section(grid)
    steps = 0.5 * (area[1:] + area[:-1]) * np.diff(grid)
    return grid, np.concatenate([[0.0], np.cumsum(steps)])


@dataclass(frozen=True)
class DropPopulation:
    """Drops at time 0, their velocities relative to the camera, and the volume they wrap in."""

    positions: np.ndarray  # N x 3, metres, left camera frame
    velocities: np.ndarray  # N x 3, m/s relative to the (possibly moving) camera
    diameters_mm: np.ndarray  # N
    volume: RainVolume

    def __len__(self) -> int:
        return len(self.diameters_mm)

    def at_time(self, t_seconds: float) -> np.ndarray:
        """Return positions after t seconds; drops leaving the volume re-enter on the far side.

        Wrapping is a pure function of t, so frames can be asked for in any order; every wrap
        also moves the drop sideways by a golden-ratio step, so re-entering rain does not repeat
        the pattern that just fell.
        """
        if t_seconds == 0:
            return self.positions
        volume = self.volume
        moved = self.positions + self.velocities * t_seconds
        depth_span = volume.z_far - volume.z_near
        z = volume.z_near + np.mod(moved[:, 2] - volume.z_near, depth_span)
        y0, y1 = volume.y_range(z)
        height = y1 - y0
        cycles = np.floor((moved[:, 1] - y0) / height)
        y = moved[:, 1] - cycles * height
        x0, x1 = volume.x_range(z)
        width = x1 - x0
        shift = np.mod(cycles * 0.6180339887, 1.0) * width
        x = x0 + np.mod(moved[:, 0] + shift - x0, width)
        return np.stack([x, y, z], axis=1)


def rain_volume(camera: StereoCamera, params: RainParams, max_scene_depth: float) -> RainVolume:
    """Return the volume to fill, its far end shortened so the expected count fits max_drops.

    Rain beyond the shortened far end is not lost: it is what the depth-dependent veil stands for.
    """
    relative = _relative_velocity_bounds(params)
    margin_x = relative['x'] * params.exposure_s
    volume = RainVolume(camera=camera, z_near=params.z_near_m,
                        z_far=max(params.z_near_m * 1.01, min(params.z_far_m, max_scene_depth)),
                        margin_x=margin_x, margin_top=relative['down'] * params.exposure_s,
                        margin_bottom=relative['up'] * params.exposure_s)
    density = drops_per_cubic_metre(params.rain_rate_mm_h)
    grid, cumulative = cumulative_volume(volume, volume.z_far)
    if density * cumulative[-1] <= params.max_drops:
        return volume
    z_far = float(np.interp(params.max_drops / density, cumulative, grid))
    return RainVolume(camera=camera, z_near=volume.z_near, z_far=max(z_far, volume.z_near * 1.01),
                      margin_x=margin_x, margin_top=volume.margin_top,
                      margin_bottom=volume.margin_bottom)


def _relative_velocity_bounds(params: RainParams) -> dict[str, float]:
    wind_x, _ = params.wind_mps
    ego_x, ego_y, _ = params.ego_velocity_mps
    fastest = float(terminal_velocity(np.array(DIAMETER_RANGE_MM[1])))
    return {'x': abs(wind_x - ego_x) * 1.2 + 0.2, 'down': fastest - ego_y + 0.2,
            'up': max(ego_y, 0.0) + 0.2}


def sample_drops(rng: np.random.Generator, camera: StereoCamera, params: RainParams,
                 max_scene_depth: float) -> DropPopulation:
    """Sample a Marshall-Palmer drop population uniformly over the rain volume."""
    volume = rain_volume(camera, params, max_scene_depth)
    density = drops_per_cubic_metre(params.rain_rate_mm_h)
    grid, cumulative = cumulative_volume(volume, volume.z_far)
    count = int(min(rng.poisson(density * cumulative[-1]), params.max_drops))
    # Inverse CDF of the Z density, which is proportional to the frustum cross-section.
    z = np.interp(rng.random(count) * cumulative[-1], cumulative, grid)
    x0, x1 = volume.x_range(z)
    y0, y1 = volume.y_range(z)
    x = x0 + rng.random(count) * (x1 - x0)
    y = y0 + rng.random(count) * (y1 - y0)
    slope = marshall_palmer_slope(params.rain_rate_mm_h)
    low, high = DIAMETER_RANGE_MM
    tail = 1.0 - np.exp(-slope * (high - low))
    diameters = low - np.log1p(-rng.random(count) * tail) / slope
    fall = terminal_velocity(diameters)
    turbulence = rng.normal(0.0, 0.05, size=(count, 3)) * fall[:, None]
    wind_x, wind_z = params.wind_mps
    ego = np.asarray(params.ego_velocity_mps, dtype=np.float64)
    velocities = np.stack([np.full(count, wind_x), fall, np.full(count, wind_z)], axis=1)
    velocities = velocities + turbulence - ego
    return DropPopulation(positions=np.stack([x, y, z], axis=1), velocities=velocities,
                          diameters_mm=diameters, volume=volume)
