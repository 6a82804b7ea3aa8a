"""The fixed held-out sets: rendered by the data layer from seeds of their own, never trained on.

- `light`, `medium`, `heavy`: the rain presets on 8 procedural scenes (512 x 256) and the real
  Middlebury Motorcycle pair at half resolution, as the package has always reported them.
- `photos-light|medium|heavy` (colour) and `photos-...-mono` (monochrome sensor): pseudo-stereo
  scenes built only from the photo library's held-out split (photo layers and dead leaves in
  turn), with preset rain from the particle and the layered renderer in turn. The veil is mild
  (veil_scale 1 instead of the presets' 3-10): these scenes reach 60 m, where a preset veil
  hides half the background, and a veil that far cannot be restored by any derainer.
- `clean` and `clean-mono`: held-out photo scenes without rain (target = input), to check that
  a model leaves a rain-free frame alone.
- `real-light|medium|heavy` and `real-clean`: the same presets (particle and layered renderer in
  turn) and no rain on the real camera pairs reserved for independent evaluation
  (`data.reserved_pairs`: Aloe in colour, twelve OAK-D pairs in monochrome).
Every sample i of set NAME draws from `seeds.generator('heldout:NAME', 0, i)`, so a set is the
same on every machine. Photo sets need the photo cache (`stereo-derain photos`); without it they
fall back to scikit-image's samples and say so in their origin.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stereo_derain_ros.data.photos.library import default_cache, PhotoLibrary
from stereo_derain_ros.data.pseudo_stereo import dead_leaves_scene, photo_layer_scene
from stereo_derain_ros.data.reserved_pairs import (
    reserved_pairs,
    reserved_scene,
    ReservedPairsError,
)
from stereo_derain_ros.data.seeds import generator
from stereo_derain_ros.pixels import chw_unit_tensor
from stereo_derain_ros.rain.layered import render_layered_rain
from stereo_derain_ros.rain.params import rain_params
from stereo_derain_ros.rain.procedural import procedural_scene
from stereo_derain_ros.rain.render import RainSample, render_rain, veiled_views
from stereo_derain_ros.rain.scene import motorcycle_scene, StereoScene

PRESETS = ('light', 'medium', 'heavy')
PROCEDURAL_SCENES = 8
PHOTO_SCENES = 8
MOTORCYCLE_SCALE = 0.5
PHOTO_SIZE = (512, 256)
PHOTO_VEIL_SCALE = 1.0
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


class HeldoutError(ValueError):
    """An unknown held-out set; the message lists the known ones."""


def sample_dict(sample: RainSample, scene: StereoScene) -> dict[str, torch.Tensor]:
    """Convert a rendered sample into the dataset contract's dict of 3 x H x W float tensors.

    `veiled_left`/`veiled_right` are the scene under the sample's veil with no streaks: the
    evaluation's ceiling for a derainer that does not dehaze.
    """
    veiled_left, veiled_right = veiled_views(scene, sample.params)
    return {
        'veiled_left': chw_unit_tensor(veiled_left),
        'veiled_right': chw_unit_tensor(veiled_right),
        'rainy_left': chw_unit_tensor(sample.rainy_left),
        'rainy_right': chw_unit_tensor(sample.rainy_right),
        'clean_left': chw_unit_tensor(sample.clean_left),
        'clean_right': chw_unit_tensor(sample.clean_right),
        'alpha_left': torch.from_numpy(np.ascontiguousarray(sample.alpha_left))[None],
        'alpha_right': torch.from_numpy(np.ascontiguousarray(sample.alpha_right))[None],
        'disparity': torch.from_numpy(np.ascontiguousarray(sample.disparity_left))[None],
    }


def _rain_free(scene: StereoScene) -> dict[str, torch.Tensor]:
    left, right = chw_unit_tensor(scene.left), chw_unit_tensor(scene.right)
    return {'rainy_left': left, 'rainy_right': right, 'clean_left': left.clone(),
            'clean_right': right.clone(),
            'disparity': torch.from_numpy(np.ascontiguousarray(scene.disparity_left))[None]}


def _mono(sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    weights = torch.from_numpy(LUMA)[:, None, None]
    return {key: (value * weights).sum(0, keepdim=True).expand(3, -1, -1).contiguous()
            if value.shape[0] == 3 else value for key, value in sample.items()}


@dataclass
class HeldoutSet:
    """A held-out set: `len`, `set[i]` (a sample dict) and `scene_name(i)`."""

    name: str
    count: int
    render: Callable[[int, np.random.Generator], tuple[str, dict[str, torch.Tensor]]]
    origin: str = 'package'

    def __len__(self) -> int:
        return self.count

    def _draw(self, index: int) -> tuple[str, dict[str, torch.Tensor]]:
        if not 0 <= index < self.count:
            raise IndexError(f'held-out sample {index} outside 0..{self.count - 1}')
        return self.render(index, generator(f'heldout:{self.name}', 0, index))

    def scene_name(self, index: int) -> str:
        return self._draw(index)[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self._draw(index)[1]


def _preset_set(preset: str) -> HeldoutSet:
    def render(index: int, rng: np.random.Generator) -> tuple[str, dict[str, torch.Tensor]]:
        scene_seed = int(rng.integers(2 ** 62))
        if index < PROCEDURAL_SCENES:
            name, scene = f'procedural-{scene_seed}', procedural_scene(scene_seed)
        else:
            name, scene = 'middlebury-motorcycle-half', motorcycle_scene(MOTORCYCLE_SCALE)
        rain_seed = int(rng.integers(2 ** 62))
        return name, sample_dict(render_rain(scene, rain_params(preset), rain_seed), scene)
    return HeldoutSet(preset, PROCEDURAL_SCENES + 1, render)


def _photo_scene(library: PhotoLibrary, index: int, rng: np.random.Generator
                 ) -> tuple[str, StereoScene]:
    build = photo_layer_scene if index % 2 == 0 else dead_leaves_scene
    scene = build(library, rng, *PHOTO_SIZE)
    return f'{scene.source}-{index}', scene


def _scene_sample(scene: StereoScene, preset: str | None, index: int,
                  rng: np.random.Generator, mono: bool) -> dict[str, torch.Tensor]:
    """Return a photo or real-pair sample: `preset` rain (None: none) at the photo sets' veil.

    Even samples take the particle renderer and odd ones the layered one, so both kinds of rain
    are in every set.
    """
    seed = int(rng.integers(2 ** 62))
    if preset is None:
        sample_tensors = _rain_free(scene)
    else:
        renderer = render_rain if index % 2 == 0 else render_layered_rain
        params = rain_params(preset, veil_scale=PHOTO_VEIL_SCALE)
        sample_tensors = sample_dict(renderer(scene, params, seed), scene)
    return _mono(sample_tensors) if mono else sample_tensors


def photo_sample(library: PhotoLibrary, index: int, rng: np.random.Generator,
                 preset: str | None, mono: bool,
                 adjust: Callable[[StereoScene], StereoScene] | None = None
                 ) -> tuple[str, dict[str, torch.Tensor]]:
    """Return (scene name, sample) as the photo sets draw their sample `index`.

    The sets draw from the library's held-out split; tuning an option on pairs drawn the same
    way from the training split (`tools/view_fusion_tuning.py`) leaves the sets untouched.
    `adjust` changes the scene before rain is laid on it (training draws only; it must not draw
    from `rng`, so that the rain is the one drawn without it).
    """
    scene_name, scene = _photo_scene(library, index, rng)
    if adjust is not None:
        scene = adjust(scene)
    return scene_name, _scene_sample(scene, preset, index, rng, mono)


def _photo_set(name: str, preset: str | None, mono: bool, photos: Path | None) -> HeldoutSet:
    library = PhotoLibrary.open_or_builtin(photos, 'heldout')

    def render(index: int, rng: np.random.Generator) -> tuple[str, dict[str, torch.Tensor]]:
        return photo_sample(library, index, rng, preset, mono)
    return HeldoutSet(name, PHOTO_SCENES, render, library.origin)


def _photo_sets() -> dict[str, tuple[str | None, bool]]:
    sets: dict[str, tuple[str | None, bool]] = {}
    for preset in PRESETS:
        sets[f'photos-{preset}'] = (preset, False)
        sets[f'photos-{preset}-mono'] = (preset, True)
    sets['clean'] = (None, False)
    sets['clean-mono'] = (None, True)
    return sets


def _real_set(name: str, preset: str | None, photos: Path | None) -> HeldoutSet:
    cache = photos if photos is not None else default_cache()
    try:
        pairs = reserved_pairs(cache)
    except ReservedPairsError as error:
        raise HeldoutError(str(error)) from None

    def render(index: int, rng: np.random.Generator) -> tuple[str, dict[str, torch.Tensor]]:
        pair = pairs[index]
        scene = reserved_scene(cache, pair)
        return pair.name, _scene_sample(scene, preset, index, rng, pair.mono)
    return HeldoutSet(name, len(pairs), render, f'reserved real pairs in {cache}')


PHOTO_SETS = _photo_sets()
REAL_SETS = {f'real-{preset}': preset for preset in PRESETS} | {'real-clean': None}
HELDOUT_SETS = (*PRESETS, *PHOTO_SETS, *REAL_SETS)


def heldout_set(name: str, photos: Path | None = None) -> HeldoutSet:
    """Return a held-out set by name (see HELDOUT_SETS)."""
    if name in PRESETS:
        return _preset_set(name)
    if name in PHOTO_SETS:
        preset, mono = PHOTO_SETS[name]
        return _photo_set(name, preset, mono, photos)
    if name in REAL_SETS:
        return _real_set(name, REAL_SETS[name], photos)
    raise HeldoutError(f'unknown held-out set {name!r}; expected one of '
                       f'{", ".join("heldout:" + known for known in HELDOUT_SETS)}')
