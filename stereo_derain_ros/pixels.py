"""The one conversion between 8-bit images and the [0, 1] floats that models and metrics use.

Works on numpy arrays and torch tensors alike (without importing torch for numpy input), so data,
evaluation, training and the demo scale, round and clip pixels identically.
"""

import numpy as np

MAX_UINT8 = 255.0


def to_unit_float(image):
    """Return an 8-bit image (array or tensor) as float32 in [0, 1]."""
    if isinstance(image, np.ndarray):
        return image.astype(np.float32) / MAX_UINT8
    return image.float() / MAX_UINT8


def to_uint8(image):
    """Return a [0, 1] float image (array or tensor) as uint8, clipped and rounded to nearest."""
    if isinstance(image, np.ndarray):
        return (np.clip(image, 0.0, 1.0) * MAX_UINT8 + 0.5).astype(np.uint8)
    import torch

    return (image.clamp(0.0, 1.0) * MAX_UINT8 + 0.5).to(torch.uint8)


def as_uint8(image: np.ndarray) -> np.ndarray:
    """Return an H×W(×C) array as uint8: 8-bit input as it is, [0, 1] floats by `to_uint8`."""
    return image if image.dtype == np.uint8 else to_uint8(image)


def chw_unit_tensor(image: np.ndarray):
    """Return an HxWxC 8-bit numpy image as a CxHxW float32 torch tensor in [0, 1]."""
    import torch

    return to_unit_float(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
