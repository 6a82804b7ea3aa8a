"""Gather the photographs of downloadable Debian packages into a local cache.

Debian packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a
temporary folder (nothing is installed); each kept picture is decoded, shrunk so its longer side
is at most `max_side`, and stored as PNG under its content hash. `manifest.json` records, per
picture, the source package and version, its licence (from the package's DEP-5 copyright file),
the original file, its sha256, its kind and its split. The split is fixed by the content hash, so
every machine holds out the same pictures.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass
import hashlib
import io
import json
from pathlib import Path
import subprocess
import tempfile

import numpy as np
from PIL import Image
from tqdm import tqdm

from stereo_derain_ros.atomic import write_text_atomic
from stereo_derain_ros.data.photos.debian_copyright import license_of, parse_copyright
from stereo_derain_ros.data.photos.sources import (
    PHOTO_SOURCES,
    PhotoSource,
    RawPicture,
    SKIMAGE_LICENCE,
)

MANIFEST = 'manifest.json'
HELDOUT_PERCENT = 12
DEFAULT_MAX_SIDE = 1024


class PhotoCollectionError(RuntimeError):
    """Collecting could not proceed; the message says what is missing."""


@dataclass(frozen=True)
class PhotoRecord:
    """One stored picture and where it came from."""

    file: str
    kind: str
    source: str
    package: str
    version: str
    licence: str
    original: str
    sha256: str
    width: int
    height: int
    split: str


def split_of(sha256: str) -> str:
    """Return 'heldout' for a fixed ~12 % of pictures (by content hash), else 'train'."""
    return 'heldout' if int(sha256[:8], 16) % 100 < HELDOUT_PERCENT else 'train'


def _run(command: list[str], cwd: Path) -> str:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise PhotoCollectionError(f'{command[0]} is not installed; collecting photographs from '
                                   'Debian packages needs apt-get and dpkg-deb') from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ['no message'])[-1]
        hint = ('; run `apt-get update` first (a fresh machine has no package lists)'
                if 'Unable to locate package' in last else '')
        raise PhotoCollectionError(f'{" ".join(command)} failed: {last}{hint}')
    return result.stdout


def unpack_package(package: str, workdir: Path) -> tuple[Path, str]:
    """Download a .deb (no install) and unpack it; return (root, version)."""
    _run(['apt-get', 'download', package], workdir)
    debs = sorted(workdir.glob(f'{package}_*.deb'))
    if not debs:
        raise PhotoCollectionError(f'apt-get download {package} left no .deb in {workdir}')
    version = _run(['dpkg-deb', '-f', str(debs[-1]), 'Version'], workdir).strip()
    root = workdir / package
    _run(['dpkg-deb', '-x', str(debs[-1]), str(root)], workdir)
    return root, version


def _decode(picture: RawPicture) -> np.ndarray | None:
    try:
        with Image.open(io.BytesIO(picture.data)) as image:
            return np.asarray(image.convert('RGBA'))
    except (OSError, ValueError):
        return None


def _shrink(rgba: np.ndarray, max_side: int) -> np.ndarray:
    height, width = rgba.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return rgba
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(rgba).resize(size, Image.Resampling.LANCZOS))


def store_pictures(name: str, source: PhotoSource, pictures: Iterable[RawPicture],
                   version: str, licences: list, cache: Path, max_side: int,
                   progress: bool) -> list[PhotoRecord]:
    """Decode, filter, shrink and store one source's pictures; return their records."""
    records = []
    for picture in tqdm(list(pictures), desc=f'photos: {name}', disable=not progress,
                        leave=False):
        rgba = _decode(picture)
        if rgba is None or (source.keep is not None and not source.keep(rgba)):
            continue
        digest = hashlib.sha256(picture.data).hexdigest()
        rgba = _shrink(rgba, max_side)
        opaque = bool((rgba[..., 3] == 255).all())
        stored = rgba[..., :3] if source.kind == 'photo' or opaque else rgba
        file = f'{source.kind}/{digest[:20]}.png'
        (cache / file).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(stored)).save(cache / file, optimize=False)
        licence = (license_of(licences, source.licence_path(picture.path)) if licences
                   else SKIMAGE_LICENCE)
        records.append(PhotoRecord(
            file=file, kind=source.kind, source=name, package=source.package or 'scikit-image',
            version=version, licence=licence, original=picture.path, sha256=digest,
            width=int(rgba.shape[1]), height=int(rgba.shape[0]), split=split_of(digest)))
    return records


def collect_source(name: str, cache: Path, max_side: int, progress: bool) -> list[PhotoRecord]:
    """Collect one registered source into the cache."""
    source = PHOTO_SOURCES[name]
    if source.package is None:
        from skimage import __version__

        return store_pictures(name, source, source.pictures(Path()), __version__, [], cache,
                              max_side, progress)
    with tempfile.TemporaryDirectory(prefix='stereo-derain-photos-') as temporary:
        root, version = unpack_package(source.package, Path(temporary))
        licences = parse_copyright((root / source.copyright_file).read_text(errors='replace'))
        return store_pictures(name, source, source.pictures(root), version, licences, cache,
                              max_side, progress)


def collect_photos(cache: Path, sources: Iterable[str] | None = None,
                   max_side: int = DEFAULT_MAX_SIDE, progress: bool = True) -> list[PhotoRecord]:
    """Fill `cache` with the pictures of the given sources (all by default); write the manifest.

    The manifest is written last through a temporary file, so a cache without one is
    incomplete and a cache with one is whole. Pictures seen twice (same bytes) are kept once.
    """
    names = list(sources) if sources is not None else list(PHOTO_SOURCES)
    unknown = sorted(set(names) - set(PHOTO_SOURCES))
    if unknown:
        raise PhotoCollectionError(f'unknown photo sources {unknown}; expected some of '
                                   f'{sorted(PHOTO_SOURCES)}')
    cache.mkdir(parents=True, exist_ok=True)
    (cache / MANIFEST).unlink(missing_ok=True)
    records: dict[str, PhotoRecord] = {}
    for name in names:
        for record in collect_source(name, cache, max_side, progress):
            records.setdefault(record.sha256, record)
    manifest = {'max_side': max_side, 'heldout_percent': HELDOUT_PERCENT,
                'pictures': [asdict(record) for record in records.values()]}
    write_text_atomic(cache / MANIFEST, json.dumps(manifest, indent=1))
    return list(records.values())


def shrink_cache(source: Path, destination: Path, max_side: int,
                 jpeg_quality: int) -> list[dict]:
    """Copy a cache at a smaller size, photographs as JPEG (cut-outs keep PNG for their alpha).

    Made for carrying the photographs to a machine that cannot collect them itself (a lent GPU
    machine takes 64 MiB): about 25 MB at 512 px and quality 90. Records keep their split.
    """
    manifest = json.loads((source / MANIFEST).read_text())
    destination.mkdir(parents=True, exist_ok=True)
    records = []
    for record in manifest['pictures']:
        with Image.open(source / record['file']) as image:
            picture = _shrink(np.asarray(image.convert('RGBA')), max_side)
        stored = Image.fromarray(picture if record['kind'] == 'cutout' else picture[..., :3])
        suffix = '.png' if record['kind'] == 'cutout' else '.jpg'
        file = str(Path(record['file']).with_suffix(suffix))
        (destination / file).parent.mkdir(parents=True, exist_ok=True)
        stored.save(destination / file, quality=jpeg_quality)
        records.append(record | {'file': file, 'width': picture.shape[1],
                                 'height': picture.shape[0]})
    shrunk = manifest | {'max_side': max_side, 'jpeg_quality': jpeg_quality,
                         'shrunk_from': str(source), 'pictures': records}
    write_text_atomic(destination / MANIFEST, json.dumps(shrunk, indent=1))
    return records
