"""Time the steps after the network (refiner, second-view fusion) against one pass of it.

The engine derains a procedural medium-rain pair of each size (the package's own renderer, so
nothing needs carrying to a lent machine) at each precision asked for: the network alone
(`refine` off), as the engine runs by default (the refiner after the network), with
`view_fusion` as well, and with each `--refiner` in place of the packaged one; and, as the first
row, the issue-time bandnet (global pooling, NCHW, fp32: the baseline of the issue's CPU-time
target; untrained weights, since speed does not depend on them). Every setting runs once per
round, the rounds interleaved, so that all share whatever load the machine has; it prints the
best and median time of each and their ratios to the baseline and to the network alone at the
first precision. Then it splits the refiner's and the fusion's time into parts: the refiner
(both views in one batch) on the device, SGBM and the cue maps on the host, the gate on the
device, each in each precision. Used for the model card's "Refiner", "Second-view fusion",
"Deeper" and "Shallower" (cost); run from the repository root:

    PYTHONPATH=. .venv/bin/python tools/view_fusion_cost.py --device cpu --threads 1 \
        --precisions fp32,bf16
    PYTHONPATH=. python3 tools/view_fusion_cost.py --device cuda --precisions fp32,fp16 \
        --out $OUT/view_fusion_cost.json
"""

import argparse
from functools import partial
import json
from pathlib import Path
import statistics
import time

import numpy as np
import torch

from stereo_derain_ros.bench.machine import describe_machine
from stereo_derain_ros.engine import DerainEngine, EngineConfig
from stereo_derain_ros.engine.refinement import load_refiner, refine_views, views_are_grey
from stereo_derain_ros.engine.view_fusion import (
    gate_features,
    gate_shares,
    load_fusion_gate,
    match_disparity,
)
from stereo_derain_ros.pixels import to_unit_float
from stereo_derain_ros.rain.params import rain_params
from stereo_derain_ros.rain.procedural import procedural_scene
from stereo_derain_ros.rain.render import render_rain
from stereo_derain_ros.sgbm import warp_disparity_to_right

SCENE_SEED, RAIN_SEED = 3, 4
ISSUE_TIME = 'issue-time bandnet'
# Row name suffix -> the engine options of that row.
STEPS = {' network': {'refine': False}, '': {}, ' view_fusion': {'view_fusion': True}}


def rainy_pair(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    sample = render_rain(procedural_scene(SCENE_SEED, width, height), rain_params('medium'),
                         RAIN_SEED)
    return sample.rainy_left, sample.rainy_right


def timed(call, synchronize) -> float:
    synchronize()
    start = time.perf_counter()
    call()
    synchronize()
    return (time.perf_counter() - start) * 1e3


def summary(times: list[float]) -> dict[str, float]:
    return {'best_ms': round(min(times), 1), 'median_ms': round(statistics.median(times), 1)}


def step_parts(engine: DerainEngine, pair: tuple[np.ndarray, np.ndarray], rounds: int,
               synchronize) -> dict[str, dict[str, float]]:
    """Time the refiner, SGBM, both views' cue maps and the gate on one pair, `rounds` times."""
    rainy = [to_unit_float(view) for view in pair]
    rainy_tensors = [torch.from_numpy(view).permute(2, 0, 1)[None].to(engine.device)
                     for view in rainy]
    derained_uint8 = engine.derain(*pair)
    derained = [to_unit_float(view) for view in derained_uint8]
    disparity_range = engine.config.view_fusion_disparity_range
    disparity = match_disparity(*derained_uint8, disparity_range)
    disparities = (disparity, warp_disparity_to_right(disparity))

    def cues() -> np.ndarray:
        return np.stack([gate_features(rainy[own], derained[own], rainy[1 - own],
                                       derained[1 - own], disparities[own], view)[0]
                         for own, view in enumerate(('left', 'right'))])

    features = cues()
    gate = load_fusion_gate(engine.config.view_fusion_gate).to(engine.device)
    # The refiner the engine runs on this pair (the colour-pair one on a colour pair).
    grey = views_are_grey(*rainy_tensors)
    refiner = engine.refiner_for(grey) or load_refiner(engine.config.refiner)
    derained_tensors = [torch.from_numpy(view).permute(2, 0, 1)[None].to(engine.device)
                        for view in derained]
    parts = {'refiner_both_views': lambda: refine_views(refiner, *rainy_tensors,
                                                        *derained_tensors, engine.precision,
                                                        grey=grey),
             'sgbm': lambda: match_disparity(*derained_uint8, disparity_range),
             'cue_maps_both_views': cues,
             'gate_both_views': lambda: gate_shares(gate, features, engine.precision)}
    return {name: summary([timed(call, synchronize) for _ in range(rounds)])
            for name, call in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu', help='engine device (default: cpu)')
    parser.add_argument('--precisions', default='fp32',
                        help='comma-separated engine precisions, the first the baseline '
                             '(default: %(default)s)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--sizes', default='640x360,1280x720',
                        help='comma-separated WIDTHxHEIGHT (default: %(default)s)')
    parser.add_argument('--rounds', type=int, default=8,
                        help='interleaved rounds per size (default: %(default)s)')
    parser.add_argument('--refiner', type=Path, action='append', default=[],
                        help='also time the default steps with this refiner in place of the '
                             'packaged one, a row per precision (repeatable)')
    parser.add_argument('--out', type=Path, help='also write the results as JSON here')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    engines = {ISSUE_TIME: DerainEngine(EngineConfig(
        model='bandnet', allow_untrained=True, channels_last=False, device=args.device,
        threads=args.threads, precision='fp32'))}
    engines.update({f'{precision}{suffix}': DerainEngine(EngineConfig(
        device=args.device, threads=args.threads, precision=precision, **options))
        for precision in args.precisions.split(',') for suffix, options in STEPS.items()})
    engines.update({f'{precision} refiner {path.stem}': DerainEngine(EngineConfig(
        device=args.device, threads=args.threads, precision=precision, refiner=str(path)))
        for precision in args.precisions.split(',') for path in args.refiner})
    first_pass = args.precisions.split(',')[0] + ' network'
    device = engines[ISSUE_TIME].device

    def synchronize() -> None:
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    results = {'machine': describe_machine(), 'device': str(device), 'sizes': {}}
    for size in args.sizes.split(','):
        width, height = (int(value) for value in size.split('x'))
        pair = rainy_pair(width, height)
        times = {key: [] for key in engines}
        for engine in engines.values():
            engine.derain(*pair)  # warm-up at this size
        for _ in range(args.rounds):
            for key, engine in engines.items():
                times[key].append(timed(partial(engine.derain, *pair), synchronize))
        baseline, one_pass = (min(times[key]) for key in (ISSUE_TIME, first_pass))
        rows = {}
        print(f'{size} (ratios to the {ISSUE_TIME} and to the {first_pass} alone):')
        for key, engine in engines.items():
            row = summary(times[key])
            row.update(precision=engine.precision,
                       vs_issue_time=round(row['best_ms'] / baseline, 2),
                       vs_one_pass=round(row['best_ms'] / one_pass, 2))
            if engine.config.view_fusion:
                row['parts'] = step_parts(engine, pair, args.rounds, synchronize)
            rows[key] = row
            print(f'  {key} ({engine.precision}): best {row["best_ms"]} ms (median '
                  f'{row["median_ms"]}), {row["vs_issue_time"]}x, {row["vs_one_pass"]}x')
            for name, part in row.get('parts', {}).items():
                print(f'    {name}: best {part["best_ms"]} ms (median {part["median_ms"]})')
        results['sizes'][size] = rows
    print(f'device {device}; machine: {json.dumps(results["machine"])}')
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + '\n')


if __name__ == '__main__':
    main()
