"""Scores of the recorded run: image metrics and SGBM through the evaluation, and node timing.

The evaluation runner scores "derainers"; the node's recording becomes one by looking its output
up by the rainy input it was given, so the node and the untouched rainy input are scored by the
very code the training evaluation uses.
"""

import hashlib
import math

import numpy as np

from stereo_derain_ros.demo.frames import DemoFrame, Pair, sample_indices
from stereo_derain_ros.demo.live import LiveRun
from stereo_derain_ros.evaluation.runner import (
    evaluate,
    EvaluationResult,
    identity_derainer,
    RAINY,
)
from stereo_derain_ros.node_stats import latency_summary_ms
from stereo_derain_ros.pixels import chw_unit_tensor

NODE = 'stereo_derain_node'
DIAGNOSTIC_KEYS = ('inference_latency_mean_ms', 'inference_latency_p95_ms',
                   'end_to_end_latency_mean_ms', 'end_to_end_latency_p95_ms', 'input_rate_hz',
                   'output_rate_hz', 'published_sets', 'superseded_sets', 'rejected_sets',
                   'device', 'model', 'precision')


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class RecordedDerainer:
    """A derainer that answers with what the node published for the same rainy pair."""

    def __init__(self, frames: list[DemoFrame]) -> None:
        self._outputs = {_key(frame.rainy[0]): frame.derained for frame in frames
                         if frame.derained is not None}

    def __call__(self, left: np.ndarray, right: np.ndarray) -> Pair:
        return self._outputs[_key(left)]


def frames_to_score(frames: list[DemoFrame], most: int) -> list[DemoFrame]:
    """Return up to `most` derained frames spread over the sequence.

    Full-resolution SSIM and SGBM cost about a second per frame on a 2-core CPU, so a spread
    sample keeps the demo short while still covering the whole sequence.
    """
    derained = [frame for frame in frames if frame.derained is not None]
    return [derained[index] for index in sample_indices(len(derained), most)]


def score_frames(scored: list[DemoFrame], ground_truth: np.ndarray | None,
                 figure_count: int) -> EvaluationResult:
    """Score derained frames and their rainy inputs against the clean pair."""
    dataset = []
    for frame in scored:
        sample = {f'{kind}_{side}': chw_unit_tensor(image)
                  for kind, pair in (('rainy', frame.rainy), ('clean', frame.clean))
                  for side, image in zip(('left', 'right'), pair)}
        if ground_truth is not None:
            sample['disparity'] = ground_truth
        dataset.append(sample)
    return evaluate({RAINY: identity_derainer, NODE: RecordedDerainer(scored)}, dataset,
                    figure_method=NODE, figure_count=figure_count)


def _rate(times: list[float]) -> float:
    times = sorted(times)
    if len(times) < 2 or times[-1] <= times[0]:
        return math.nan
    return (len(times) - 1) / (times[-1] - times[0])


def timing_summary(run: LiveRun) -> dict:
    """Return latency (input on the wire -> both outputs received) and throughput of a run."""
    latencies = [run.received[stamp] - sent for stamp, sent in run.sent.items()
                 if stamp in run.received]
    diagnostics = run.diagnostics[-1] if run.diagnostics else {}
    return {
        'sets_sent': len(run.sent),
        'sets_derained': len(latencies),
        'sets_dropped': len(run.sent) - len(latencies),
        'replay_rate': run.replay_rate,
        'input_rate_hz': _rate(list(run.sent.values())),
        'output_rate_hz': _rate([run.received[s] for s in run.sent if s in run.received]),
        'latency_ms': latency_summary_ms(latencies),
        'node_ready_s': run.node_ready_s,
        'node_seconds_per_set': run.node_seconds_per_set,
        'node_diagnostics': {key: diagnostics[key] for key in DIAGNOSTIC_KEYS
                             if key in diagnostics},
    }
