"""The collected photographs as a library that scene sources draw from, split by the manifest.

`PhotoLibrary.open(cache)` reads a cache filled by `stereo-derain photos`; without one,
`PhotoLibrary.builtin()` serves scikit-image's sample photographs, which install with the Python
dependencies (enough for tests and a first look, far too few to train on).
"""

from dataclasses import dataclass
import functools
import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from stereo_derain_ros.data.photos.collect import MANIFEST
from stereo_derain_ros.data.photos.sources import PHOTO_SOURCES, SKIMAGE_PHOTOS

SPLITS = ('train', 'heldout')
CACHE_ENV = 'STEREO_DERAIN_PHOTOS'


def default_cache() -> Path:
    """Return $STEREO_DERAIN_PHOTOS, else ~/.cache/stereo_derain_ros/photos."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path.home() / '.cache' / 'stereo_derain_ros' / 'photos'


class PhotoLibraryError(RuntimeError):
    """No usable photo cache; the message says how to make one."""


@dataclass(frozen=True)
class Picture:
    """A picture of the library: `load()` gives H x W x 3 RGB or H x W x 4 RGBA uint8."""

    key: str
    kind: str
    reader: object  # a callable returning the encoded bytes

    def load(self) -> np.ndarray:
        return _decode(self.key, self.reader)


@functools.lru_cache(maxsize=256)
def _decode(key: str, reader) -> np.ndarray:
    with Image.open(io.BytesIO(reader())) as image:
        mode = 'RGBA' if 'A' in image.getbands() or 'transparency' in image.info else 'RGB'
        return np.asarray(image.convert(mode))


class _FileReader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> bytes:
        return self.path.read_bytes()

    def __hash__(self) -> int:
        return hash(self.path)

    def __eq__(self, other) -> bool:
        return isinstance(other, _FileReader) and other.path == self.path


class PhotoLibrary:
    """Photographs (`photo`) and cut-outs (`cutout`) of one split."""

    def __init__(self, pictures: list[Picture], origin: str) -> None:
        self.pictures, self.origin = pictures, origin
        self.photos = [picture for picture in pictures if picture.kind == 'photo']
        self.cutouts = [picture for picture in pictures if picture.kind == 'cutout']
        if not self.photos:
            raise PhotoLibraryError(f'{origin} holds no photographs')

    @classmethod
    def open(cls, cache: Path | None = None, split: str = 'train') -> 'PhotoLibrary':
        if split not in SPLITS:
            raise ValueError(f'unknown photo split {split!r}; expected one of {SPLITS}')
        cache = Path(cache) if cache is not None else default_cache()
        manifest = cache / MANIFEST
        if not manifest.exists():
            raise PhotoLibraryError(f'no photo cache at {cache} (no {MANIFEST}); run '
                                    f'`stereo-derain photos --cache {cache}` first')
        records = json.loads(manifest.read_text())['pictures']
        pictures = [Picture(record['sha256'], record['kind'], _FileReader(cache / record['file']))
                    for record in records if record['split'] == split]
        return cls(pictures, f'{cache} ({split})')

    @classmethod
    def builtin(cls) -> 'PhotoLibrary':
        """Return scikit-image's sample photographs (no cut-outs), split ignored."""
        pictures = [Picture(raw.path, 'photo', functools.partial(_bytes_of, raw.data))
                    for raw in PHOTO_SOURCES['skimage'].pictures(Path())]
        return cls(pictures, f'scikit-image samples ({len(SKIMAGE_PHOTOS)})')

    @classmethod
    def open_or_builtin(cls, cache: Path | None = None, split: str = 'train') -> 'PhotoLibrary':
        try:
            return cls.open(cache, split)
        except PhotoLibraryError:
            return cls.builtin()

    def random_photo(self, rng: np.random.Generator) -> np.ndarray:
        """Return a random photograph as RGB uint8."""
        image = self.photos[int(rng.integers(len(self.photos)))].load()
        return image[..., :3] if image.shape[2] == 4 else image

    def random_cutout(self, rng: np.random.Generator) -> np.ndarray | None:
        """Return a random cut-out as RGBA uint8, None when the library has none."""
        if not self.cutouts:
            return None
        image = self.cutouts[int(rng.integers(len(self.cutouts)))].load()
        if image.shape[2] == 3:
            image = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
        return image


def _bytes_of(data: bytes) -> bytes:
    return data
