"""Readers for the published stereo deraining folder layouts, yielding the synthetic sample dict.

Layouts (all paired by file stem, disparity read from a `disparity` folder beside the images
when present, as `stereo-derain synth` writes it: NAME.npy float32 px, or NAME.png 16-bit x256
with 0 = unknown as KITTI does):

- apanet:   SPLIT/{rain_left, rain_right, gt_left, gt_right}, SPLIT = training | testing
- prrnet:   [SPLIT/]{image_2_3_rain50, image_3_2_rain50, image_2_3_norain, image_3_2_norain}
            (image_2_3 is the left view, image_3_2 the right)
- generic:  [SPLIT/]{rain, norain}/{left, right} (StereoCityscapes-style)
- unpaired: [SPLIT/]{left, right}, rainy only (StereoRealRain-style train/{left, right})
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
import torch
from torch.utils.data import Dataset

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm')
SPLITS = ('training', 'testing', 'train', 'test', 'val')

# Layout name -> folders (relative to the split folder) of rainy L, rainy R, clean L, clean R.
LAYOUT_FOLDERS: dict[str, tuple[str, str, str | None, str | None]] = {
    'apanet': ('rain_left', 'rain_right', 'gt_left', 'gt_right'),
    'prrnet': ('image_2_3_rain50', 'image_3_2_rain50', 'image_2_3_norain', 'image_3_2_norain'),
    'generic': ('rain/left', 'rain/right', 'norain/left', 'norain/right'),
    'unpaired': ('left', 'right', None, None),
}
LAYOUTS = tuple(LAYOUT_FOLDERS)


class DatasetLayoutError(ValueError):
    """A folder that does not hold a readable stereo deraining dataset; says what is wrong."""


@dataclass(frozen=True)
class FolderLayout:
    """Where one split of a dataset keeps each kind of image."""

    name: str
    base: Path
    rainy_left: Path
    rainy_right: Path
    clean_left: Path | None
    clean_right: Path | None
    disparity: Path | None


def _layout_at(base: Path, name: str) -> FolderLayout:
    folders = [base / sub if sub else None for sub in LAYOUT_FOLDERS[name]]
    disparity = base / 'disparity'
    return FolderLayout(name, base, *folders, disparity if disparity.is_dir() else None)


def _matches(base: Path, name: str) -> bool:
    return all((base / sub).is_dir() for sub in LAYOUT_FOLDERS[name] if sub)


def find_layout(root: str | Path, layout: str = 'auto', split: str | None = None) -> FolderLayout:
    """Return the layout of a dataset folder, detected or as named, for one split."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f'dataset folder {root} does not exist')
    if layout != 'auto' and layout not in LAYOUT_FOLDERS:
        raise DatasetLayoutError(f'unknown layout {layout!r}; expected auto or one of '
                                 f'{list(LAYOUTS)}')
    names = LAYOUTS if layout == 'auto' else (layout,)
    if split is not None:
        bases = [root / split]
        if not bases[0].is_dir():
            raise DatasetLayoutError(f'split folder {bases[0]} does not exist')
    else:
        bases = [root] + [root / s for s in SPLITS if (root / s).is_dir()]
    found = [(base, name) for base in bases for name in names if _matches(base, name)]
    if not found:
        expected = '; '.join(f'{name}: {", ".join(s for s in LAYOUT_FOLDERS[name] if s)}'
                             for name in names)
        raise DatasetLayoutError(f'{root} holds no known stereo rain layout (looked in '
                                 f'{", ".join(str(b) for b in bases)}); expected folders '
                                 f'{expected}')
    splits = sorted({base for base, _ in found})
    if len(splits) > 1:
        listing = ', '.join(base.name for base in splits)
        raise DatasetLayoutError(f'{root} holds several splits ({listing}); choose one with '
                                 f'split=')
    # A paired layout wins over the unpaired one when both match the same folder.
    base, name = found[0]
    return _layout_at(base, name)


def _images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetLayoutError(f'folder {folder} does not exist')
    files = {path.stem: path for path in sorted(folder.iterdir())
             if path.suffix.lower() in IMAGE_SUFFIXES}
    if not files:
        raise DatasetLayoutError(f'folder {folder} holds no images ({", ".join(IMAGE_SUFFIXES)})')
    return files


def _disparity_files(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(folder.iterdir())
            if path.suffix.lower() in ('.npy', '.png')}


def _pair(reference: dict[str, Path], other: dict[str, Path], folder: Path,
          reference_folder: Path) -> None:
    missing = sorted(set(reference) - set(other))
    extra = sorted(set(other) - set(reference))
    if missing or extra:
        details = []
        if missing:
            details.append(f'no partner in {folder} for {_listing(reference, missing)}')
        if extra:
            details.append(f'no partner in {reference_folder} for {_listing(other, extra)}')
        raise DatasetLayoutError('; '.join(details))


def _listing(files: dict[str, Path], stems: list[str], limit: int = 5) -> str:
    names = [files[stem].name for stem in stems[:limit]]
    more = f' and {len(stems) - limit} more' if len(stems) > limit else ''
    return ', '.join(names) + more


def read_image(path: Path) -> np.ndarray:
    """Return an RGB float32 H x W x 3 image in [0, 1] (grey, 16-bit and RGBA accepted)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetLayoutError(f'cannot read image {path}')
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    else:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
    return image.astype(np.float32) / scale


def read_disparity(path: Path) -> np.ndarray:
    """Return float32 disparity in px, +inf where unknown, from .npy or 16-bit PNG (x256)."""
    if path.suffix.lower() == '.npy':
        return np.load(path).astype(np.float32)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise DatasetLayoutError(f'disparity {path} must be a single-channel 16-bit PNG')
    return np.where(raw > 0, raw.astype(np.float32) / 256.0, np.inf).astype(np.float32)


def write_disparity(path: Path, disparity: np.ndarray) -> None:
    """Write disparity as .npy float32 (exact) or KITTI-style 16-bit PNG (x256, 0 = unknown)."""
    if path.suffix.lower() == '.npy':
        np.save(path, disparity.astype(np.float32))
        return
    valid = np.isfinite(disparity) & (disparity > 0)
    encoded = np.where(valid, np.clip(np.rint(disparity * 256.0), 1, 65535), 0)
    cv2.imwrite(str(path), encoded.astype(np.uint16))


class StereoFolderDataset(Dataset):
    """A published-layout stereo rain dataset with the synthetic dataset's sample dict.

    Items: rainy_left, rainy_right (+ clean_left, clean_right for paired layouts) as float32
    3 x H x W in [0, 1], and disparity 1 x H x W when a disparity folder is present.
    """

    def __init__(self, root: str | Path, layout: str = 'auto', split: str | None = None):
        self.layout = find_layout(root, layout, split)
        roles = {'rainy_left': self.layout.rainy_left, 'rainy_right': self.layout.rainy_right,
                 'clean_left': self.layout.clean_left, 'clean_right': self.layout.clean_right}
        self.roles = {role: folder for role, folder in roles.items() if folder is not None}
        reference = _images(self.layout.rainy_left)
        self.files = {'rainy_left': reference}
        for role, folder in self.roles.items():
            if role != 'rainy_left':
                self.files[role] = _images(folder)
                _pair(reference, self.files[role], folder, self.layout.rainy_left)
        if self.layout.disparity is not None:
            disparity = _disparity_files(self.layout.disparity)
            _pair(reference, disparity, self.layout.disparity, self.layout.rainy_left)
            self.files['disparity'] = disparity
        self.names = sorted(reference)
        self._check_sizes()

    def _check_sizes(self) -> None:
        for stem in self.names:
            sizes = {role: Image.open(files[stem]).size for role, files in self.files.items()
                     if role != 'disparity'}
            if len(set(sizes.values())) > 1:
                listing = ', '.join(f'{self.files[role][stem]} is {w}x{h}'
                                    for role, (w, h) in sizes.items())
                raise DatasetLayoutError(f'images of {stem!r} differ in size: {listing}')

    @property
    def paired(self) -> bool:
        """Whether clean ground truth exists (False for rainy-only real data)."""
        return 'clean_left' in self.files

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        stem = self.names[index]
        item = {}
        for role in ('rainy_left', 'rainy_right', 'clean_left', 'clean_right'):
            if role in self.files:
                image = read_image(self.files[role][stem])
                item[role] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if 'disparity' in self.files:
            path = self.files['disparity'][stem]
            disparity = read_disparity(path)
            height, width = item['rainy_left'].shape[1:]
            if disparity.shape != (height, width):
                raise DatasetLayoutError(f'disparity {path} is {disparity.shape[1]}x'
                                         f'{disparity.shape[0]}, its images are {width}x{height}')
            item['disparity'] = torch.from_numpy(disparity[None])
        return item
