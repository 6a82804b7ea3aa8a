"""Procedural stereo scenes: textured planes ray-cast into both views, so disparity is exact.

Every surface is a textured plane (fronto-parallel, slanted, a ground plane receding to the
horizon, building-like side walls) clipped to a shape. Each view casts its own rays and keeps
the nearest surface, so occlusions and disocclusions come out right and the texture at a 3-D
point is the same in both views. Textures are mip-mapped by footprint so that the far ground
does not alias differently in the two views.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from stereo_derain_ros.pixels import to_uint8
from stereo_derain_ros.rain.scene import StereoScene
from stereo_derain_ros.rain.textures import random_texture

MIP_LEVELS = 7


@dataclass(frozen=True)
class Surface:
    """A textured plane: origin, in-plane axes (metres), texture scale and a shape in (a, b)."""

    origin: np.ndarray
    axis_a: np.ndarray
    axis_b: np.ndarray
    texture: tuple[np.ndarray, ...]  # mip levels, level k downsampled by 2**k
    metres_per_texel: float
    shape: str  # 'all', 'rectangle', 'ellipse', 'triangle'
    half_extent: tuple[float, float] = (np.inf, np.inf)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.axis_a, self.axis_b)

    def inside(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ha, hb = self.half_extent
        if self.shape == 'all':
            return np.ones(a.shape, bool)
        if self.shape == 'ellipse':
            return (a / ha) ** 2 + (b / hb) ** 2 <= 1.0
        box = (np.abs(a) <= ha) & (np.abs(b) <= hb)
        if self.shape == 'triangle':
            return box & (np.abs(a) <= ha * (b + hb) / (2 * hb))
        return box


def _mipmap(texture: np.ndarray) -> tuple[np.ndarray, ...]:
    levels = [texture]
    for _ in range(MIP_LEVELS - 1):
        levels.append(cv2.pyrDown(levels[-1]))
    return tuple(levels)


@dataclass(frozen=True)
class Rays:
    """Per-pixel ray directions (x, y, 1) of a view's camera, split into components."""

    x: np.ndarray
    y: np.ndarray
    length: np.ndarray

    def dot(self, vector: np.ndarray) -> np.ndarray:
        return self.x * np.float32(vector[0]) + self.y * np.float32(vector[1]) + np.float32(
            vector[2])


def _cast(surface: Surface, rays: Rays, centre: np.ndarray, focal_px: float,
          z_buffer: np.ndarray, colour: np.ndarray) -> None:
    """Intersect the view's rays with a surface and paint it where it is the nearest so far."""
    normal = surface.normal
    facing = rays.dot(normal)
    with np.errstate(divide='ignore', invalid='ignore'):
        depth = np.float32((surface.origin - centre) @ normal) / facing
    valid = np.isfinite(depth) & (depth > 0.05)
    depth = np.where(valid, depth, np.float32(np.inf))
    finite_depth = np.where(valid, depth, np.float32(0.0))
    # In-plane coordinates of the hit point P = centre + depth * ray, relative to the origin.
    a = np.float32((centre - surface.origin) @ surface.axis_a) + finite_depth * rays.dot(
        surface.axis_a)
    b = np.float32((centre - surface.origin) @ surface.axis_b) + finite_depth * rays.dot(
        surface.axis_b)
    paint = valid & surface.inside(a, b) & (depth < z_buffer)
    if not paint.any():
        return
    texel_a = a / np.float32(surface.metres_per_texel)
    texel_b = b / np.float32(surface.metres_per_texel)
    # Texels per pixel along the ray, with the obliqueness of the surface folded in.
    obliqueness = np.maximum(np.abs(facing) / rays.length, 0.02)
    footprint = finite_depth / (focal_px * surface.metres_per_texel * obliqueness)
    level = np.clip(np.rint(np.log2(np.maximum(footprint, 1e-6))), 0, MIP_LEVELS - 1)
    for index in np.unique(level[paint]).astype(int):
        chosen = paint & (level == index)
        scale = np.float32(2.0 ** -index)
        sampled = cv2.remap(surface.texture[index], texel_a * scale, texel_b * scale,
                            cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        colour[chosen] = sampled[chosen]
    z_buffer[paint] = depth[paint]


def _surface(rng: np.random.Generator, origin, axis_a, axis_b, shape='all',
             half_extent=(np.inf, np.inf), metres_per_texel=None) -> Surface:
    if metres_per_texel is None:
        metres_per_texel = float(np.exp(rng.uniform(np.log(0.004), np.log(0.03))))
    return Surface(origin=np.asarray(origin, float), axis_a=np.asarray(axis_a, float),
                   axis_b=np.asarray(axis_b, float), texture=_mipmap(random_texture(rng)),
                   metres_per_texel=metres_per_texel, shape=shape, half_extent=half_extent)


def _layout(rng: np.random.Generator, focal_px: float, width: int, height: int) -> list[Surface]:
    """Draw a random street-like or indoor-like arrangement of surfaces."""
    right, down, forward = np.eye(3)
    background_depth = float(rng.uniform(40.0, 150.0))
    surfaces = [_surface(rng, forward * background_depth, right, down,
                         metres_per_texel=background_depth / focal_px * rng.uniform(0.5, 1.5))]
    camera_height = float(rng.uniform(1.1, 2.0))
    if rng.random() < 0.8:
        surfaces.append(_surface(rng, down * camera_height, right, forward,
                                 metres_per_texel=float(rng.uniform(0.005, 0.03))))
    else:
        wall = float(rng.uniform(4.0, 20.0))
        surfaces.append(_surface(rng, forward * wall, right, down))
    for side in (-1.0, 1.0):
        if rng.random() < 0.5:
            offset = float(rng.uniform(3.0, 10.0))
            wall_height = float(rng.uniform(3.0, 20.0))
            origin = right * side * offset + down * (camera_height - wall_height / 2)
            surfaces.append(_surface(rng, origin, forward, down, 'rectangle',
                                     (np.inf, wall_height / 2)))
    half_fov_x = width / 2 / focal_px
    for _ in range(int(rng.integers(3, 9))):
        depth = float(np.exp(rng.uniform(np.log(1.5), np.log(30.0))))
        size_a = float(rng.uniform(0.1, 0.8)) * (1 + depth / 10)
        size_b = size_a * float(rng.uniform(0.4, 2.0))
        x = float(rng.uniform(-1.2, 1.2)) * half_fov_x * depth
        standing = rng.random() < 0.6
        y = camera_height - size_b if standing else float(rng.uniform(-0.8, 0.8)) * (
            height / 2 / focal_px) * depth
        yaw = float(rng.uniform(-0.9, 0.9)) if rng.random() < 0.5 else 0.0
        axis_a = np.array([np.cos(yaw), 0.0, np.sin(yaw)])
        shape = str(rng.choice(['rectangle', 'rectangle', 'ellipse', 'triangle']))
        surfaces.append(_surface(rng, [x, y, depth], axis_a, down, shape, (size_a, size_b)))
    return surfaces


def procedural_scene(seed: int, width: int = 512, height: int = 256,
                     focal_px: float | None = None, baseline_m: float | None = None
                     ) -> StereoScene:
    """Return a random textured stereo scene with exact dense disparity in both views."""
    if width < 8 or height < 8:
        raise ValueError(f'procedural scenes need at least 8 x 8 pixels, got {width} x {height}')
    rng = np.random.default_rng(seed)
    focal_px = float(focal_px or width * rng.uniform(0.7, 1.3))
    baseline_m = float(baseline_m or rng.uniform(0.1, 0.5))
    surfaces = _layout(rng, focal_px, width, height)
    vs, us = np.mgrid[0:height, 0:width].astype(np.float32)
    ray_x = (us + 0.5 - width / 2) / np.float32(focal_px)
    ray_y = (vs + 0.5 - height / 2) / np.float32(focal_px)
    rays = Rays(x=ray_x, y=ray_y, length=np.sqrt(ray_x ** 2 + ray_y ** 2 + 1))
    views = []
    for centre_x in (0.0, baseline_m):
        z_buffer = np.full((height, width), np.inf, np.float32)
        colour = np.zeros((height, width, 3), np.float32)
        centre = np.array([centre_x, 0.0, 0.0])
        for surface in surfaces:
            _cast(surface, rays, centre, focal_px, z_buffer, colour)
        image = to_uint8(colour)
        disparity = (focal_px * baseline_m / z_buffer).astype(np.float32)
        views.append((image, disparity))
    return StereoScene(left=views[0][0], right=views[1][0], disparity_left=views[0][1],
                       disparity_right=views[1][1], focal_px=focal_px, baseline_m=baseline_m,
                       source=f'procedural:{seed}')
