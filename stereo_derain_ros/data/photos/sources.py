"""The registry of places photographs come from: Debian packages and scikit-image's samples.

Each source names its package, what kind of picture it gives (`photo`: a full frame used as a
background or a texture; `cutout`: an object photographed on a transparent background, used as a
near layer) and how to pull the pictures out of the unpacked package. Every entry is checked by
eye: the GCompris activities below hold photographs (its other bundles hold drawings), Tux Paint's
stamps mix photographs with clip art, which `looks_like_photo` tells apart.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stereo_derain_ros.data.photos.qt_resources import QtResourceBundle

RASTER = ('.jpg', '.jpeg', '.png', '.webp')


@dataclass(frozen=True)
class RawPicture:
    """A picture file as found in its source: the path that names it there, and its bytes."""

    path: str
    data: bytes


@dataclass(frozen=True)
class PhotoSource:
    package: str | None  # Debian package; None for pictures that install with Python packages
    kind: str  # 'photo' or 'cutout'
    pictures: Callable[[Path], Iterator[RawPicture]]
    copyright_file: str | None = None  # path of the DEP-5 file inside the unpacked package
    # Picture path -> the path the copyright file's patterns are written against.
    licence_path: Callable[[str], str] = str
    keep: Callable[[np.ndarray], bool] | None = None  # a filter on the decoded RGBA picture


GCOMPRIS_PHOTO_BUNDLES = ('explore_monuments', 'erase', 'explore_world_animals',
                          'explore_farm_animals', 'explore_world_music', 'categorization')
GCOMPRIS_DRAWINGS = ('/alphabets/', '/numbers/')


def _gcompris(root: Path) -> Iterator[RawPicture]:
    for name in GCOMPRIS_PHOTO_BUNDLES:
        bundle_path = root / 'usr/share/gcompris-qt/rcc' / f'{name}.rcc'
        bundle = QtResourceBundle(bundle_path.read_bytes(), str(bundle_path))
        for entry in bundle.entries():
            path = str(entry.path)
            if entry.path.suffix.lower() in RASTER and not any(
                    part in path for part in GCOMPRIS_DRAWINGS):
                yield RawPicture(path, bundle.read(entry))


def _files(folder: str, pattern: str, exclude: tuple[str, ...] = ()
           ) -> Callable[[Path], Iterator[RawPicture]]:
    def pictures(root: Path) -> Iterator[RawPicture]:
        for path in sorted((root / folder).glob(pattern)):
            if path.suffix.lower() in RASTER and path.name not in exclude:
                yield RawPicture(str(path.relative_to(root / folder)), path.read_bytes())
    return pictures


def looks_like_photo(rgba: np.ndarray, min_pixels: int = 2000,
                     max_flat_fraction: float = 0.12) -> bool:
    """Tell a photographed cut-out from clip art: photographs have almost no flat runs.

    Clip art is drawn with flat fills, so many neighbouring opaque pixels are exactly equal;
    sensor noise and texture make that rare in a photograph (checked on Tux Paint's stamps).
    """
    opaque = rgba[..., 3] > 250
    pairs = opaque[:, 1:] & opaque[:, :-1]
    if pairs.sum() < min_pixels:
        return False
    grey = rgba[..., :3].astype(np.int16).sum(axis=2)
    flat = (grey[:, 1:] == grey[:, :-1])[pairs]
    return float(flat.mean()) <= max_flat_fraction


def _skimage(_: Path) -> Iterator[RawPicture]:
    from skimage import data

    folder = Path(data.__file__).parent
    for name in SKIMAGE_PHOTOS:
        path = folder / name
        yield RawPicture(f'skimage/data/{name}', path.read_bytes())


SKIMAGE_PHOTOS = ('astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'camera.png',
                  'brick.png', 'grass.png', 'gravel.png')

PHOTO_SOURCES: dict[str, PhotoSource] = {
    'gcompris': PhotoSource(
        'gcompris-qt-data', 'photo', _gcompris,
        copyright_file='usr/share/doc/gcompris-qt-data/copyright',
        licence_path=lambda path: path.removeprefix('/gcompris/')),
    'tuxpaint-stamps': PhotoSource(
        'tuxpaint-stamps-default', 'cutout',
        _files('usr/share/tuxpaint/stamps', '**/*.png'),
        copyright_file='usr/share/doc/tuxpaint-stamps-default/copyright',
        keep=looks_like_photo),
    'mate-backgrounds': PhotoSource(
        'mate-backgrounds', 'photo',
        _files('usr/share/backgrounds/mate', 'nature/*.jpg', exclude=('RainDrops.jpg',)),
        copyright_file='usr/share/doc/mate-backgrounds/copyright'),
    'lomiri-wallpapers-16.04': PhotoSource(
        'lomiri-wallpapers-16.04', 'photo', _files('usr/share/backgrounds', '*.jpg'),
        copyright_file='usr/share/doc/lomiri-wallpapers-16.04/copyright',
        licence_path=lambda path: f'16.04/{path}'),
    'lomiri-wallpapers-20.04': PhotoSource(
        'lomiri-wallpapers-20.04', 'photo', _files('usr/share/backgrounds', '*.jpg'),
        copyright_file='usr/share/doc/lomiri-wallpapers-20.04/copyright',
        licence_path=lambda path: f'20.04/{path}'),
    'skimage': PhotoSource(None, 'photo', _skimage),
}
SKIMAGE_LICENCE = 'BSD-3-Clause (scikit-image sample data; see skimage/data/README.txt)'
