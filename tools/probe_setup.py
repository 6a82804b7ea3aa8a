"""What the held-out probes in tools/ share: the engine they measure, the views, the score.

Each probe measures the packaged default as `stereo-derain eval` does with `--threads 1`: fp32
on one CPU thread (OpenCV's SGBM and resizes on one thread too, so the other core's load does
not leak in), views as uint8 H×W×3, PSNR over both views with the evaluation's own formula.
Imported by the probes, which run as scripts from the repository root with `PYTHONPATH=.`.
"""

import cv2
import numpy as np
import torch

from stereo_derain_ros.engine import DerainEngine, EngineConfig
from stereo_derain_ros.evaluation.metrics import psnr
from stereo_derain_ros.pixels import to_uint8

VIEWS = ('left', 'right')


def single_thread_engine() -> DerainEngine:
    """Return the default engine in fp32 on one CPU thread, OpenCV held to one thread too."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    return DerainEngine(EngineConfig(device='cpu', precision='fp32', threads=1))


def sample_views(sample: dict[str, torch.Tensor], kind: str) -> list[np.ndarray]:
    """Return a held-out sample's `kind` views ('rainy', 'clean') as uint8 H×W×3 arrays."""
    return [to_uint8(sample[f'{kind}_{view}'].permute(1, 2, 0).numpy()) for view in VIEWS]


def views_psnr(views: list[np.ndarray], references: list[np.ndarray]) -> float:
    """Return the mean over views of the PSNR (dB) of uint8 views against their references."""
    def unit(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1) / 255.0

    return float(np.mean([float(psnr(unit(view), unit(reference)))
                          for view, reference in zip(views, references)]))
