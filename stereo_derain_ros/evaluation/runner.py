"""Score derainers on a stereo dataset: image quality per view and SGBM disparity downstream.

A derainer is any callable taking a rainy pair (H×W×3 uint8 RGB, as a camera delivers) and
returning the derained pair in the same form, so trained models (through `DerainEngine`), the
classical baseline and the untouched rainy input are scored identically. Outputs are uint8, as
users receive them, and are compared with the clean pair. SGBM runs on the clean, rainy and
derained pairs with one setting per sample (see `disparity`).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
import math

import numpy as np
import torch
from tqdm import tqdm

from stereo_derain_ros.evaluation.baseline import stereo_min_baseline
from stereo_derain_ros.evaluation.disparity import (
    num_disparities_for,
    score_disparity,
    sgbm_disparity,
)
from stereo_derain_ros.evaluation.metrics import image_metrics
from stereo_derain_ros.pixels import chw_unit_tensor, to_uint8, to_unit_float

Derainer = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
IMAGE_METRICS = ('psnr', 'ssim', 'psnr_y', 'ssim_y', 'shift')
DISPARITY_METRICS = ('epe', 'bad3', 'density')
CLEAN = 'clean pair'
RAINY = 'rainy input'
# A sample rendered with a known veil also carries its views under the veil alone; scored like a
# derainer, they show what removing every streak, and nothing else, would reach.
VEIL_ONLY = 'streaks removed, veil kept'


def to_uint8_image(tensor: torch.Tensor) -> np.ndarray:
    """Turn a 3×H×W float tensor in [0, 1] into an H×W×3 uint8 array."""
    return to_uint8(tensor.detach().float().permute(1, 2, 0).cpu().numpy())


def ground_truth_disparity(sample: dict) -> np.ndarray | None:
    disparity = sample.get('disparity')
    if disparity is None:
        return None
    array = disparity.detach().cpu().numpy() if torch.is_tensor(disparity) else np.asarray(
        disparity)
    return array.reshape(array.shape[-2:]).astype(np.float32)


@dataclass
class SampleFigure:
    """What the side-by-side figure of one sample shows (left views and left disparities)."""

    index: int
    rainy: np.ndarray
    derained: np.ndarray
    clean: np.ndarray
    disparity_rainy: np.ndarray
    disparity_derained: np.ndarray
    disparity_clean: np.ndarray
    num_disparities: int


@dataclass
class EvaluationResult:
    methods: list[str]
    samples: list[dict] = field(default_factory=list)
    figures: list[SampleFigure] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        """Return each method's mean over samples (and views) of every metric."""
        table = {}
        for method in [*self.methods, VEIL_ONLY, CLEAN]:
            rows = [sample[method] for sample in self.samples if method in sample]
            means = {}
            for metric in (*IMAGE_METRICS, *DISPARITY_METRICS):
                values = [row[metric] for row in rows
                          if metric in row and math.isfinite(row[metric])]
                if values:
                    means[metric] = float(np.mean(values))
            table[method] = means
        return table


def evaluate(derainers: dict[str, Derainer], dataset: Sequence[dict], *,
             figure_method: str | None = None, figure_count: int = 3,
             progress: bool = True) -> EvaluationResult:
    """Run every derainer on every sample and score it (see the module docstring)."""
    if not derainers:
        raise ValueError('nothing to evaluate: no derainer given')
    result = EvaluationResult(methods=list(derainers))
    for index in tqdm(range(len(dataset)), desc='evaluating', disable=not progress):
        sample = dataset[index]
        rainy = (to_uint8_image(sample['rainy_left']), to_uint8_image(sample['rainy_right']))
        clean = (sample['clean_left'], sample['clean_right'])
        clean_u8 = (to_uint8_image(clean[0]), to_uint8_image(clean[1]))
        truth = ground_truth_disparity(sample)
        num_disparities = num_disparities_for(truth)
        clean_disparity = sgbm_disparity(*clean_u8, num_disparities)
        row: dict[str, dict] = {'index': index}
        if truth is not None:
            row[CLEAN] = score_disparity(clean_disparity, truth, num_disparities).as_dict()
        outputs = {}
        methods = list(derainers.items())
        if 'veiled_left' in sample:
            veiled = tuple(to_uint8_image(sample[f'veiled_{view}']) for view in ('left', 'right'))
            methods.append((VEIL_ONLY, lambda left, right, pair=veiled: pair))
        for method, derain in methods:
            left, right = derain(*rainy)
            views = [image_metrics(chw_unit_tensor(out), reference)
                     for out, reference in ((left, clean[0]), (right, clean[1]))]
            scores = {metric: float(np.mean([view[metric] for view in views]))
                      for metric in IMAGE_METRICS}
            disparity = sgbm_disparity(left, right, num_disparities)
            if truth is not None:
                scores |= score_disparity(disparity, truth, num_disparities).as_dict()
            outputs[method] = (left, disparity)
            row[method] = scores
        result.samples.append(row)
        if figure_method is not None and len(result.figures) < figure_count:
            result.figures.append(SampleFigure(
                index=index, rainy=rainy[0], derained=outputs[figure_method][0],
                clean=clean_u8[0], disparity_rainy=outputs[RAINY][1]
                if RAINY in outputs else sgbm_disparity(*rainy, num_disparities),
                disparity_derained=outputs[figure_method][1], disparity_clean=clean_disparity,
                num_disparities=num_disparities))
    return result


def identity_derainer(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the rainy pair unchanged: the 'rainy input' row every table starts with."""
    return left, right


class StereoMinDerainer:
    """The classical baseline as a derainer on uint8 pairs, with a fixed SGBM search range."""

    def __init__(self, num_disparities: int):
        self.num_disparities = num_disparities

    def __call__(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = stereo_min_baseline(to_unit_float(left), to_unit_float(right),
                                  self.num_disparities)
        return tuple(to_uint8(view) for view in out)
