"""Open a data spec for evaluation: `heldout:NAME` or a dataset folder in a supported layout."""

from pathlib import Path

from stereo_derain_ros.data.folders import DatasetLayoutError, StereoFolderDataset
from stereo_derain_ros.data.heldout import heldout_set, HeldoutError


class DataError(Exception):
    """A data spec that cannot be opened; the message says what is expected."""


def open_dataset(spec: str, photos: Path | None = None):
    """Return an indexable dataset of sample dicts for evaluation."""
    if spec.startswith('heldout:'):
        try:
            return heldout_set(spec.split(':', 1)[1], photos)
        except HeldoutError as error:
            raise DataError(str(error)) from None
    return open_folder(Path(spec))


def open_folder(path: Path) -> StereoFolderDataset:
    """Open a paired stereo deraining folder (apanet, prrnet or generic layout)."""
    try:
        dataset = StereoFolderDataset(path)
    except DatasetLayoutError as error:
        raise DataError(str(error)) from None
    if not dataset.paired:
        raise DataError(f'{path} holds rainy images only ({dataset.layout.name} layout); '
                        'training and evaluation need clean ground truth (rain_left/gt_left, '
                        'rain/norain or image_2_3_rain50/image_2_3_norain folders)')
    if len(dataset) == 0:
        raise DataError(f'{path} holds no image pairs')
    return dataset
