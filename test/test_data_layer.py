"""The data layer: photo collection parts, pseudo-stereo geometry, rain layers, pools, sets."""

import ast
from dataclasses import replace
import json
from pathlib import Path
import shutil
import struct
import zlib

import cv2
import numpy as np
from PIL import Image
import pytest
import torch

from stereo_derain_ros.data.compose import compose_pair, CompositionConfig
from stereo_derain_ros.data.heldout import heldout_set
from stereo_derain_ros.data.photos.collect import (
    collect_photos,
    MANIFEST,
    PhotoCollectionError,
    shrink_cache,
    split_of,
    unpack_package,
)
from stereo_derain_ros.data.photos.debian_copyright import license_of, parse_copyright
from stereo_derain_ros.data.photos.library import PhotoLibrary, Picture
from stereo_derain_ros.data.photos.qt_resources import QtResourceBundle, ResourceFormatError
from stereo_derain_ros.data.photos.sources import looks_like_photo
from stereo_derain_ros.data.pools import cached_pool, ComposedRainSource, PoolRecipe
from stereo_derain_ros.data.pseudo_stereo import dead_leaves_scene, photo_layer_scene
from stereo_derain_ros.data.rain_layers import (
    broad_streak_specs,
    render_layered,
    render_particles,
    render_streak_specs,
)
from stereo_derain_ros.data.seeds import generator
from stereo_derain_ros.rain.layered import NEAREST_LAYER_M, streak_length_px
from stereo_derain_ros.rain.params import rain_params
from stereo_derain_ros.rain.particles import sample_drops, StereoCamera
from stereo_derain_ros.rain.render import streak_depth_layers
from stereo_derain_ros.training.data import POOL_WIDTH

PACKAGE = Path(__file__).resolve().parent.parent / 'stereo_derain_ros'


# --- photo sources ----------------------------------------------------------------------------

def _rcc(files: dict[str, bytes], compressed: set[str]) -> bytes:
    """Write a version-2 Qt resource bundle with one folder holding `files`."""
    names, tree, data = b'', [], b''
    name_offsets = {}
    for name in ['images', *files]:
        name_offsets[name] = len(names)
        encoded = name.encode('utf-16-be')
        names += struct.pack('>HI', len(name), 0) + encoded
    tree.append(struct.pack('>IHII', 0, 2, 1, 1) + bytes(8))  # root: one child at node 1
    tree.append(struct.pack('>IHII', name_offsets['images'], 2, len(files), 2) + bytes(8))
    for name, blob in files.items():
        flags = 1 if name in compressed else 0
        payload = struct.pack('>I', len(blob)) + zlib.compress(blob) if flags else blob
        tree.append(struct.pack('>IHHHI', name_offsets[name], flags, 0, 0, len(data)) + bytes(8))
        data += struct.pack('>I', len(payload)) + payload
    header_size = 20
    tree_blob = b''.join(tree)
    tree_offset = header_size
    data_offset = tree_offset + len(tree_blob)
    names_offset = data_offset + len(data)
    return (b'qres' + struct.pack('>4I', 2, tree_offset, data_offset, names_offset)
            + tree_blob + data + names)


def test_qt_resource_bundle_lists_and_reads_plain_and_compressed_files():
    files = {'a.webp': b'first file', 'b.png': b'second file, stored compressed' * 10}
    bundle = QtResourceBundle(_rcc(files, {'b.png'}))
    entries = {str(entry.path): entry for entry in bundle.entries()}
    assert set(entries) == {'/images/a.webp', '/images/b.png'}
    assert bundle.read(entries['/images/a.webp']) == files['a.webp']
    assert bundle.read(entries['/images/b.png']) == files['b.png']
    with pytest.raises(ResourceFormatError, match='not a Qt resource bundle'):
        QtResourceBundle(b'PK\x03\x04 a zip file', 'x.rcc')


def test_debian_copyright_last_matching_stanza_wins_and_raster_suffixes_match():
    stanzas = parse_copyright(
        'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n'
        'Files: *\nCopyright: someone\nLicense: GPL-3+\n\n'
        'Files: src/animals/*.svg\n src/animals/cat.jpg\nLicense: CC0-1.0\n')
    assert license_of(stanzas, 'src/animals/cat.webp') == 'CC0-1.0'
    assert license_of(stanzas, 'src/animals/dog.webp') == 'GPL-3+'
    assert license_of(stanzas, 'src/animals/dog.svg') == 'CC0-1.0'
    assert license_of([], 'x.png') == 'unknown'


def test_photo_heuristic_tells_photographs_from_clip_art():
    rng = np.random.default_rng(0)
    photo = np.dstack([(rng.random((60, 60, 3)) * 255).astype(np.uint8),
                       np.full((60, 60), 255, np.uint8)])
    clip_art = photo.copy()
    clip_art[..., :3] = 200
    clip_art[20:40, 20:40, :3] = (10, 120, 30)
    assert looks_like_photo(photo) and not looks_like_photo(clip_art)


def test_collect_writes_a_manifest_with_licence_hash_and_a_fixed_split(tmp_path):
    records = collect_photos(tmp_path, ['skimage'], max_side=128, progress=False)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert len(records) == len(manifest['pictures']) >= 6
    for record in manifest['pictures']:
        assert (tmp_path / record['file']).exists()
        assert max(record['width'], record['height']) <= 128
        assert record['split'] == split_of(record['sha256']) and record['licence']
    library = PhotoLibrary.open(tmp_path, 'train')
    assert library.random_photo(np.random.default_rng(0)).dtype == np.uint8
    assert split_of('0' * 64) == 'heldout' and split_of('f' * 64) == 'train'
    small = shrink_cache(tmp_path, tmp_path / 'small', max_side=64, jpeg_quality=90)
    assert [record['split'] for record in small] == [record.split for record in records]
    assert all((tmp_path / 'small' / record['file']).suffix == '.jpg' for record in small)
    assert PhotoLibrary.open(tmp_path / 'small', 'train').random_photo(
        np.random.default_rng(0)).shape[2] == 3


# --- pseudo-stereo scenes ---------------------------------------------------------------------

def _library_with_cutouts() -> PhotoLibrary:
    builtin = PhotoLibrary.builtin()
    astronaut = builtin.photos[0].load()[::4, ::4]
    height, width = astronaut.shape[:2]
    alpha = np.zeros((height, width), np.uint8)
    cv2.ellipse(alpha, (width // 2, height // 2), (width // 3, height // 2 - 2), 0, 0, 360, 255,
                -1)
    path_bytes = _png(np.dstack([astronaut, alpha]))
    cutout = Picture('astronaut-cutout', 'cutout', lambda: path_bytes)
    return PhotoLibrary([*builtin.pictures, cutout], 'test')


def _png(rgba: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format='PNG')
    return buffer.getvalue()


def _warp_error(scene) -> tuple[float, float]:
    """Return (mean abs error in grey levels, share of pixels compared) of right -> left."""
    height, width = scene.disparity_left.shape
    xs = (np.arange(width, dtype=np.float32)[None, :] - scene.disparity_left).astype(np.float32)
    ys = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], xs.shape).astype(
        np.float32)
    warped = cv2.remap(scene.right, xs, ys, cv2.INTER_CUBIC)
    back = cv2.remap(scene.disparity_right, xs, ys, cv2.INTER_NEAREST)
    seen = (np.abs(back - scene.disparity_left) < 0.5) & (xs >= 0) & (xs <= width - 1)
    gradient = np.abs(cv2.Sobel(scene.disparity_left, cv2.CV_32F, 1, 0)) + np.abs(
        cv2.Sobel(scene.disparity_left, cv2.CV_32F, 0, 1))
    edges = cv2.dilate((gradient > 1).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    mask = seen & ~edges
    error = np.abs(warped.astype(np.float32) - scene.left.astype(np.float32)).mean(axis=2)
    return float(error[mask].mean()), float(mask.mean())


@pytest.mark.parametrize('build', [photo_layer_scene, dead_leaves_scene])
def test_pseudo_stereo_right_view_warps_onto_the_left_within_two_grey_levels(build):
    library = _library_with_cutouts()
    for seed in range(3):
        scene = build(library, np.random.default_rng(seed), 256, 128)
        error, compared = _warp_error(scene)
        assert error <= 2.0, f'{build.__name__} seed {seed}: mean error {error:.2f}/255'
        assert compared > 0.5
        unwarped = float(np.abs(scene.left.astype(np.float32) - scene.right).mean())
        assert unwarped > 2 * error
        assert (scene.disparity_left > 0).all() and (scene.disparity_right > 0).all()


def test_nearer_layers_occlude_in_each_view_on_their_own():
    scene = photo_layer_scene(_library_with_cutouts(), np.random.default_rng(4), 256, 128)
    # Disparity fields differ between views wherever a layer moved over the background.
    assert len(np.unique(np.round(scene.disparity_left))) > 3
    assert not np.array_equal(scene.disparity_left, scene.disparity_right)


# --- rain layers ------------------------------------------------------------------------------

def test_a_layered_rain_plane_is_the_same_streaks_shifted_by_its_disparity():
    rng = np.random.default_rng(0)
    for spec in broad_streak_specs(rng, 192):
        rain = render_streak_specs([spec], rng, 192, 96)
        d = spec.disparity_px
        assert rain.alpha[0].max() > 0.05
        assert np.array_equal(rain.alpha[0][:, d:], rain.alpha[1][:, :192 - d])
        assert (rain.disparity[0][rain.alpha[0] > 0] == d).all()


def test_layered_training_streaks_are_as_long_as_the_presets_draw_them_near_the_camera():
    # The held-out presets' nearest streaks, at the training pools' rig (focal length = width).
    rng = np.random.default_rng(1)
    lengths = np.array([spec.length_px for _ in range(1000)
                        for spec in broad_streak_specs(rng, POOL_WIDTH)])
    for preset in ('light', 'medium', 'heavy'):
        nearest = streak_length_px(rain_params(preset), POOL_WIDTH, NEAREST_LAYER_M)
        assert (lengths >= nearest).mean() > 0.005, (preset, nearest, lengths.max())
    assert (lengths >= streak_length_px(rain_params('medium'), POOL_WIDTH,
                                        NEAREST_LAYER_M)).mean() > 0.05


def _aligned_correlation(alpha_left: np.ndarray, alpha_right: np.ndarray,
                         disparity_left: np.ndarray) -> tuple[float, float]:
    """Correlate left streaks with right streaks warped by the left rain disparity."""
    height, width = alpha_left.shape
    xs = (np.arange(width, dtype=np.float32)[None, :] - disparity_left).astype(np.float32)
    ys = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], xs.shape).astype(
        np.float32)
    warped = cv2.remap(alpha_right, xs, ys, cv2.INTER_LINEAR)
    strong = (alpha_left > 0.05) & (xs >= 0)
    aligned = np.corrcoef(warped[strong], alpha_left[strong])[0, 1]
    unaligned = np.corrcoef(alpha_right[strong], alpha_left[strong])[0, 1]
    return float(aligned), float(unaligned)


def test_layered_rain_streaks_sit_at_their_own_disparity_in_both_views():
    for seed in (3, 5):
        rain = render_layered(np.random.default_rng(seed), 256, 128)
        aligned, unaligned = _aligned_correlation(rain.alpha[0], rain.alpha[1],
                                                  rain.disparity[0])
        assert aligned > 0.8 and aligned > unaligned + 0.2, (seed, aligned, unaligned)


def test_particle_rain_disparity_is_that_of_the_drops_painting_each_pixel():
    params = replace(rain_params('medium'), max_drops=300)
    camera = StereoCamera(width=256, height=128, focal_px=256.0, baseline_m=0.12)
    drops = sample_drops(np.random.default_rng(2), camera, params, 1e4)
    depth = np.full((128, 256), 1e4, np.float32)
    edges = np.geomspace(drops.volume.z_near, drops.volume.z_far, params.depth_bins + 1)
    layers = streak_depth_layers(camera, 'left', depth, drops, drops.positions, params,
                                 with_disparity=True)
    assert len(layers) >= 3
    for layer in layers:
        index = int(np.argmin(np.abs(edges - layer.near_m)))
        painted = layer.alpha > 0.02
        nearest = camera.disparity(np.array(edges[index]))
        farthest = camera.disparity(np.array(edges[index + 1]))
        values = layer.disparity[painted]
        assert (values <= nearest + 1e-3).all() and (values >= farthest - 1e-3).all()
    pooled = render_particles(np.random.default_rng(2), 256, 128)
    assert pooled.disparity[0].max() > 0 and pooled.alpha[0].max() > 0


# --- composition ------------------------------------------------------------------------------

def _flat_scene(disparity: float) -> tuple[np.ndarray, ...]:
    image = np.full((32, 48, 3), 90, np.uint8)
    field = np.full((32, 48), disparity, np.float32)
    return image, image.copy(), field, field.copy()


def _rain(disparity: float) -> tuple[np.ndarray, ...]:
    alpha = np.zeros((32, 48), np.float32)
    alpha[:, 10:14] = 0.8
    field = np.full((32, 48), disparity, np.float32)
    return alpha, alpha.copy(), field, field.copy()


def test_rain_is_hidden_behind_nearer_surfaces_and_rain_free_samples_equal_their_target():
    rainy_only = CompositionConfig(rain_free=0.0, light_rain=0.0, mono=0.0, noise=0.0, jpeg=0.0)
    behind = compose_pair(_flat_scene(20.0), _rain(5.0), np.random.default_rng(0), rainy_only)
    assert np.array_equal(behind.rainy[0], behind.clean[0])
    in_front = compose_pair(_flat_scene(5.0), _rain(20.0), np.random.default_rng(0), rainy_only)
    assert np.abs(in_front.rainy[0] - in_front.clean[0])[:, 10:14].mean() > 0.05
    assert np.array_equal(in_front.rainy[0][:, 20:], in_front.clean[0][:, 20:])
    rain_free = CompositionConfig(rain_free=1.0)
    for seed in range(5):
        pair = compose_pair(_flat_scene(5.0), _rain(20.0), np.random.default_rng(seed),
                            rain_free)
        assert np.array_equal(pair.rainy[0], pair.clean[0])
        assert np.array_equal(pair.rainy[1], pair.clean[1])


def test_physical_drop_radiance_makes_rain_on_a_dark_scene_grey():
    # The held-out presets' drops show the scene's mean radiance lifted towards white: on a dark
    # scene they are grey, where the default colour (white to the background's tint) stays bright.
    plain = CompositionConfig(rain_free=0.0, light_rain=0.0, mono=0.0, noise=0.0, jpeg=0.0,
                              veil=0.0, haze=0.0, defocus=0.0)
    scene = tuple(np.full_like(item, 20) if item.dtype == np.uint8 else item
                  for item in _flat_scene(5.0))

    def streak_rise(config: CompositionConfig) -> float:
        rises = [float((pair.rainy[0] - pair.clean[0])[:, 10:14].mean())
                 for pair in (compose_pair(scene, _rain(20.0), np.random.default_rng(seed),
                                           config) for seed in range(12))]
        return float(np.mean(rises))

    default, physical = streak_rise(plain), streak_rise(replace(plain, drop_radiance=1.0))
    assert 0.05 < physical < 0.75 * default, (physical, default)


def test_monochrome_samples_have_equal_channels_in_input_and_target():
    mono = CompositionConfig(mono=1.0, rain_free=0.0, noise=1.0)
    pair = compose_pair(_flat_scene(5.0), _rain(20.0), np.random.default_rng(1), mono)
    for image in (pair.rainy[0], pair.clean[1]):
        assert np.allclose(image[..., 0], image[..., 1]) and np.allclose(
            image[..., 1], image[..., 2])


@pytest.mark.parametrize('share', ['scene_lines', 'scene_grids', 'scene_bands'])
def test_scene_lines_sit_at_the_scene_depth_in_both_views_and_in_input_and_target(share):
    # A streak that moves with the scene between the views is scene: it stays in the target.
    lines_only = CompositionConfig(rain_free=1.0, mono=0.0, noise=0.0, jpeg=0.0, defocus=0.0,
                                   haze=0.0, **({'scene_lines': 0.0} | {share: 1.0}))
    for seed in range(4):
        pair = compose_pair(_flat_scene(6.0), _rain(20.0), np.random.default_rng(seed),
                            lines_only)
        left, right = pair.clean
        assert np.ptp(left, axis=(0, 1)).max() > 0.05, f'seed {seed}: no line painted'
        assert np.abs(right[:, :-6] - left[:, 6:]).max() < 1e-4
        assert np.array_equal(pair.rainy[0], left) and np.array_equal(pair.rainy[1], right)
    unlined = compose_pair(_flat_scene(6.0), _rain(20.0), np.random.default_rng(0),
                           CompositionConfig(rain_free=1.0, defocus=0.0, haze=0.0, noise=0.0,
                                             jpeg=0.0, scene_lines=0.0))
    assert np.ptp(unlined.clean[0], axis=(0, 1)).max() < 1e-6


@pytest.mark.parametrize('rain_free', [0.0, 1.0])
def test_sensor_noise_and_jpeg_are_the_same_draw_on_input_and_target(rain_free):
    # Only the rain tells input from target: a network trained on these learns not to denoise.
    sensor = CompositionConfig(rain_free=rain_free, light_rain=0.0, mono=0.0, noise=1.0,
                               jpeg=1.0)
    pair = compose_pair(_flat_scene(5.0), _rain(20.0), np.random.default_rng(2), sensor)
    flat = _flat_scene(5.0)[0].astype(np.float32) / 255.0
    assert np.abs(pair.clean[0] - flat).std() > 1e-3
    # JPEG codes 16-px blocks on their own (chroma is interpolated across the edge): away from
    # the streak's block input and target agree exactly, noise included.
    assert np.array_equal(pair.rainy[0][:, 20:], pair.clean[0][:, 20:])
    assert np.array_equal(pair.rainy[0], pair.clean[0]) == bool(rain_free)


# --- pools, seeds and held-out sets -----------------------------------------------------------

def test_pools_are_cached_by_recipe_and_batches_depend_only_on_the_generator(tmp_path):
    library = PhotoLibrary.builtin()
    scenes = PoolRecipe('scene', 'train', 3, 96, 48, 0, library.origin)
    rain = PoolRecipe('rain', 'train', 2, 96, 48, 0, library.origin)
    first = cached_pool(scenes, library, tmp_path, progress=False)
    assert len(list(tmp_path.glob('*.safetensors'))) == 1
    again = cached_pool(scenes, library, tmp_path, progress=False)
    assert all(np.array_equal(first[key], again[key]) for key in first)
    assert PoolRecipe('scene', 'val', 3, 96, 48, 0, library.origin).key() != scenes.key()
    source = ComposedRainSource(first, cached_pool(rain, library, tmp_path, progress=False), 0)

    def batch(seed: int) -> dict[str, torch.Tensor]:
        return source.batch(4, (32, 64), torch.Generator().manual_seed(seed))

    one, same, other = batch(5), batch(5), batch(6)
    assert one['rainy_left'].shape == (4, 3, 32, 64)
    assert all(torch.equal(one[key], same[key]) for key in one)
    assert not torch.equal(one['clean_left'], other['clean_left'])


def test_seed_streams_differ_by_purpose_and_reject_unknown_purposes():
    assert generator('train-scene', 0, 1).random() != generator('val-scene', 0, 1).random()
    assert generator('synth', 3, 2).random() == generator('synth', 3, 2).random()
    with pytest.raises(ValueError, match='unknown seed purpose'):
        generator('tarin-scene', 0, 0)


def test_photo_held_out_sets_are_deterministic_and_clean_sets_need_no_change():
    medium = heldout_set('photos-medium')
    first, again = medium[0], heldout_set('photos-medium')[0]
    assert torch.equal(first['rainy_left'], again['rainy_left'])
    assert not torch.equal(first['rainy_left'], first['clean_left'])
    clean = heldout_set('clean-mono')[1]
    assert torch.equal(clean['rainy_left'], clean['clean_left'])
    assert torch.equal(clean['clean_left'][0], clean['clean_left'][2])


def test_training_imports_no_evaluation_module_for_data():
    for path in (PACKAGE / 'training').glob('*.py'):
        tree = ast.parse(path.read_text())
        modules = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not any(module and module.startswith('stereo_derain_ros.evaluation')
                       and module != 'stereo_derain_ros.evaluation.metrics'
                       for module in modules), path


@pytest.mark.skipif(shutil.which('apt-get') is None, reason='needs apt-get (Debian, Ubuntu)')
def test_a_missing_package_is_named_with_what_to_do(tmp_path):
    with pytest.raises(PhotoCollectionError, match='no-such-package-stereo-derain.*apt-get'):
        unpack_package('no-such-package-stereo-derain', tmp_path)
