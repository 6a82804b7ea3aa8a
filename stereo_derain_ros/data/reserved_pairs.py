"""Real stereo camera pairs reserved for independent evaluation: never trained on or tuned against.

Every other held-out set is pseudo-stereo (photographs painted onto planes), and every training
stage was chosen on them, so they are no longer independent of the shipped weights. These pairs
are real rectified camera pairs that no training command can read:
- `aloe`: the Middlebury 2006 Aloe pair with its ground-truth disparity (colour), from Debian's
  `opencv-doc` examples, used at half resolution (641 x 555).
- `oak-d-*`: the twelve rectified OAK-D pairs that PyPI `stereodemo` ships (monochrome
  global-shutter sensors, 640 x 480, cropped to the valid rectified window). They have no ground
  truth, so the disparity that places rain behind and in front of their surfaces is the
  evaluation's own SGBM on the clean pair; downstream bad-3px on them measures how far a pair's
  matching departs from the clean pair's, not an error against the truth.
Rain is rendered as on the photo sets: the package's canonical rig (focal length = image width,
12 cm baseline) turns each pair's disparity into depth, so a preset means the same on both.

They live in `reserved/` inside the photo cache, with a manifest of their own that the photo
library never reads, and are collected by `stereo-derain photos --reserved`.
"""

from collections.abc import Iterator
from dataclasses import asdict, dataclass
import functools
import hashlib
import json
from pathlib import Path
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
from PIL import Image

from stereo_derain_ros.atomic import write_text_atomic
from stereo_derain_ros.data.photos.collect import PhotoCollectionError, unpack_package
from stereo_derain_ros.data.photos.debian_copyright import license_of, parse_copyright
from stereo_derain_ros.data.pseudo_stereo import BASELINE_M
from stereo_derain_ros.rain.scene import StereoScene
from stereo_derain_ros.sgbm import sgbm_disparity, warp_disparity_to_right

RESERVED_FOLDER = 'reserved'
MANIFEST = 'manifest.json'
OPENCV_DOC = 'opencv-doc'
OPENCV_DOC_DATA = 'usr/share/doc/opencv-doc/examples/data'
OPENCV_DOC_COPYRIGHT = 'usr/share/doc/opencv-doc/copyright'
ALOE_SCALE = 0.5
STEREODEMO = 'stereodemo==0.7'
STEREODEMO_DATA = 'stereodemo/datasets/oak-d/'
STEREODEMO_LICENCE = 'MIT (stereodemo, Nicolas Burrus)'
# The left view's valid rectified window in stereodemo's calibration (x0, y0, x1, y1, normalised).
OAKD_VALID_WINDOW = (0.0, 0.0417, 0.9547, 1.0)
OAKD_NUM_DISPARITIES = 64  # the rig's 1-5 m depth range is 7-34 px at 640 px


class ReservedPairsError(RuntimeError):
    """No usable reserved-pair cache; the message says how to make one."""


@dataclass(frozen=True)
class ReservedPair:
    """One stored pair: its files in the cache and where they came from."""

    name: str
    mono: bool
    left: str
    right: str
    disparity: str | None  # ground truth (pixel value = disparity at full size), if any
    package: str
    version: str
    licence: str
    original: str
    sha256: str  # of the left original's bytes


def _reserved_folder(photos: Path) -> Path:
    return photos / RESERVED_FOLDER


def _store(folder: Path, file: str, data: bytes) -> str:
    path = folder / file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return file


def _aloe(folder: Path, workdir: Path) -> ReservedPair:
    root, version = unpack_package(OPENCV_DOC, workdir)
    data = root / OPENCV_DOC_DATA
    licences = parse_copyright((root / OPENCV_DOC_COPYRIGHT).read_text(errors='replace'))
    left = (data / 'aloeL.jpg').read_bytes()
    return ReservedPair(
        name='aloe', mono=False,
        left=_store(folder, 'aloe/left.jpg', left),
        right=_store(folder, 'aloe/right.jpg', (data / 'aloeR.jpg').read_bytes()),
        disparity=_store(folder, 'aloe/disparity.png', (data / 'aloeGT.png').read_bytes()),
        package=OPENCV_DOC, version=version,
        licence=license_of(licences, 'samples/data/aloeL.jpg'),
        original='samples/data/aloe{L,R}.jpg, aloeGT.png', sha256=hashlib.sha256(left).hexdigest())


def _download_wheel(requirement: str, workdir: Path) -> Path:
    command = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary', ':all:',
               '--dest', str(workdir), requirement]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(workdir.glob('*.whl'))
    if result.returncode != 0 or not wheels:
        last = (result.stderr.strip().splitlines() or ['no message'])[-1]
        raise PhotoCollectionError(f'pip download {requirement} failed: {last}')
    return wheels[0]


def _oak_d(folder: Path, workdir: Path) -> Iterator[ReservedPair]:
    wheel = _download_wheel(STEREODEMO, workdir)
    version = STEREODEMO.split('==')[1]
    with zipfile.ZipFile(wheel) as archive:
        lefts = sorted(name for name in archive.namelist()
                       if name.startswith(STEREODEMO_DATA) and name.endswith('_left.png'))
        for left_name in lefts:
            scene = Path(left_name).name.removesuffix('_left.png')
            left = archive.read(left_name)
            right = archive.read(left_name.replace('_left.png', '_right.png'))
            name = f'oak-d-{scene.replace("_", "-")}'
            yield ReservedPair(
                name=name, mono=True, left=_store(folder, f'{name}/left.png', left),
                right=_store(folder, f'{name}/right.png', right), disparity=None,
                package='stereodemo (PyPI)', version=version, licence=STEREODEMO_LICENCE,
                original=left_name, sha256=hashlib.sha256(left).hexdigest())


def collect_reserved_pairs(photos: Path) -> list[ReservedPair]:
    """Download the reserved pairs into `photos/reserved`; the manifest is written last."""
    folder = _reserved_folder(photos)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix='stereo-derain-reserved-') as temporary:
        aloe_dir, wheel_dir = Path(temporary) / 'deb', Path(temporary) / 'wheel'
        aloe_dir.mkdir()
        wheel_dir.mkdir()
        pairs = [_aloe(folder, aloe_dir), *_oak_d(folder, wheel_dir)]
    write_text_atomic(folder / MANIFEST, json.dumps(
        {'purpose': 'independent evaluation only; never train on or tune against these',
         'pairs': [asdict(pair) for pair in pairs]}, indent=1))
    return pairs


def reserved_pairs(photos: Path) -> list[ReservedPair]:
    """Return the pairs of a collected cache, or say how to collect them."""
    manifest = _reserved_folder(photos) / MANIFEST
    if not manifest.exists():
        raise ReservedPairsError(
            f'no reserved real pairs at {manifest.parent}; run `stereo-derain photos --reserved '
            f'--cache {photos}` (downloads opencv-doc from Debian and stereodemo from PyPI)')
    return [ReservedPair(**record) for record in json.loads(manifest.read_text())['pairs']]


def _read(folder: Path, file: str) -> np.ndarray:
    with Image.open(folder / file) as image:
        return np.asarray(image.convert('RGB'))


def _ground_truth_scene(name: str, left: np.ndarray, right: np.ndarray,
                        disparity: np.ndarray) -> StereoScene:
    full = np.where(disparity > 0, disparity.astype(np.float32), np.inf)
    scene = StereoScene(left=left, right=right, disparity_left=full,
                        disparity_right=warp_disparity_to_right(full),
                        focal_px=float(left.shape[1]), baseline_m=BASELINE_M, source=name)
    return scene.resized(ALOE_SCALE)


def _oak_d_scene(name: str, left: np.ndarray, right: np.ndarray) -> StereoScene:
    height, width = left.shape[:2]
    x0, y0, x1, y1 = OAKD_VALID_WINDOW
    window = (slice(round(y0 * height), round(y1 * height)),
              slice(round(x0 * width), round(x1 * width)))
    left, right = left[window].copy(), right[window].copy()
    disparity = sgbm_disparity(left, right, OAKD_NUM_DISPARITIES)
    disparity = np.where(np.isfinite(disparity) & (disparity > 0), disparity,
                         np.inf).astype(np.float32)
    return StereoScene(left=left, right=right, disparity_left=disparity,
                       disparity_right=warp_disparity_to_right(disparity),
                       focal_px=float(left.shape[1]), baseline_m=BASELINE_M, source=name)


@functools.lru_cache(maxsize=32)
def _cached_scene(folder: Path, pair: ReservedPair) -> StereoScene:
    left, right = _read(folder, pair.left), _read(folder, pair.right)
    if pair.disparity is not None:
        with Image.open(folder / pair.disparity) as image:
            return _ground_truth_scene(pair.name, left, right,
                                       np.asarray(image.convert('L')))
    return _oak_d_scene(pair.name, left, right)


def reserved_scene(photos: Path, pair: ReservedPair) -> StereoScene:
    """Return the clean scene of one pair (its disparity: ground truth, else SGBM)."""
    return _cached_scene(_reserved_folder(photos), pair)
