"""The engine options of every command that runs the engine (derain, bag, eval, demo, bench).

One definition, so that a flag means the same thing, with the same default, everywhere; the
defaults come from `EngineConfig` and `EngineConfig.from_options` validates, so this module only
spells the flags and never checks a value itself.
"""

import argparse
from collections.abc import Iterable
import re
from typing import Any

from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.engine.config import (
    BACKENDS,
    DEFAULT_MODEL,
    default_of,
    DEVICE_CHOICES,
    EngineConfig,
    PRECISIONS,
    SELF_ENSEMBLE_PASSES,
)


def parse_tile(text: str) -> int | tuple[int, int]:
    """Parse N or HxW, e.g. 512 or 384x1248."""
    match = re.fullmatch(r'(\d+)(?:[xX](\d+))?', text)
    if not match or int(match[1]) == 0 or (match[2] is not None and int(match[2]) == 0):
        raise argparse.ArgumentTypeError(f'tile must be N or HxW in pixels, got {text!r}')
    return int(match[1]) if match[2] is None else (int(match[1]), int(match[2]))


# Option name (the argparse dest and the `EngineConfig.from_options` keyword) -> add_argument.
_OPTIONS: dict[str, dict[str, Any]] = {
    'model': {'metavar': 'NAME',
              'help': f"registry model name (default: the checkpoint's model, else "
                      f'{DEFAULT_MODEL})'},
    'weights': {'metavar': 'PATH',
                'help': 'checkpoint (.safetensors), or an .onnx file with --backend onnxruntime '
                        '(default: the packaged weights of the model)'},
    'untrained': {'action': 'store_true',
                  'help': 'run randomly initialised weights: tests the pipeline, not deraining'},
    'device': {'default': default_of('device'),
               'help': f'{", ".join(DEVICE_CHOICES)} (default: %(default)s)'},
    'precision': {'default': default_of('precision'),
                  'help': f'{", ".join(PRECISIONS)}; fp16 on CUDA, bf16 on CUDA and on CPUs '
                          'with AVX512-BF16 or AMX (default: %(default)s)'},
    'backend': {'default': default_of('backend'),
                'help': f'{", ".join(BACKENDS)}: the runtime of the network, see docs/deploy.md '
                        '(default: %(default)s)'},
    'max_disparity': {'type': int, 'metavar': 'PX',
                      'help': "largest disparity in pixels (default: the model's own band)"},
    'tile': {'type': parse_tile, 'metavar': 'N|HxW',
             'help': 'process in tiles of N or HxW pixels to bound memory (default: whole '
                     'images)'},
    'tile_overlap': {'type': int, 'default': default_of('tile_overlap'), 'metavar': 'PX',
                     'help': 'pixels over which neighbouring tiles are blended '
                             '(default: %(default)s)'},
    'threads': {'type': int, 'metavar': 'N',
                'help': 'CPU threads of torch and OpenCV (default: theirs, one per core)'},
    'self_ensemble': {'type': int, 'default': default_of('self_ensemble'),
                      'choices': SELF_ENSEMBLE_PASSES, 'metavar': 'PASSES',
                      'help': 'average the network over 1, 2 or 4 flips of the pair: better '
                              'images for that many times the compute (default: %(default)s)'},
    'refine': {'action': argparse.BooleanOptionalAction, 'default': default_of('refine'),
               'help': 'correct the fine detail the network leaves on streak pixels with the '
                       'small full-resolution refiner: better rainy and rain-free images '
                       '(docs/engine.md; default: on)'},
    'refiner': {'metavar': 'PATH',
                'help': 'with --refine: a refiner from stereo-derain train-refiner (default: '
                        'the packaged refiners)'},
    'view_fusion': {'action': 'store_true',
                    'help': 'match the derained pair with SGBM and correct each view from the '
                            'other where the network changed it: better rainy and rain-free '
                            'images for one CPU matching per pair (docs/engine.md)'},
    'view_fusion_disparity_range': {
        'type': int, 'default': default_of('view_fusion_disparity_range'), 'metavar': 'PX',
        'help': "with --view-fusion: SGBM's search range, a multiple of 16 (default: "
                '%(default)s)'},
    'view_fusion_gate': {'metavar': 'PATH',
                         'help': 'with --view-fusion: a gate from stereo-derain '
                                 'train-fusion-gate (default: the packaged gate)'},
}
ENGINE_OPTIONS = tuple(_OPTIONS)


def add_engine_arguments(parser: argparse.ArgumentParser,
                         options: Iterable[str] = ENGINE_OPTIONS, **helps: str) -> None:
    """Add the named engine options as one `engine` group.

    A command that passes only some options to the engine (e.g. a node in another process) adds
    only those; `helps` replaces the help of an option whose meaning the command narrows.
    """
    group = parser.add_argument_group('engine')
    for name in options:
        spec = dict(_OPTIONS[name])
        spec['help'] = helps.get(name, spec['help'])
        group.add_argument('--' + name.replace('_', '-'), dest=name, **spec)


def engine_config(args: argparse.Namespace, **overrides: Any) -> EngineConfig:
    """Return the `EngineConfig` for the engine options in `args`, or raise `CommandError`.

    `overrides` are settings the command fixes itself (e.g. the evaluated checkpoint).
    """
    options = {name: getattr(args, name) for name in ENGINE_OPTIONS if hasattr(args, name)}
    try:
        return EngineConfig.from_options(**(options | overrides))
    except ValueError as error:
        raise CommandError(str(error)) from None


def build_engine(args: argparse.Namespace, **overrides: Any):
    """Return a `DerainEngine` for the engine options, or raise `CommandError`."""
    from stereo_derain_ros.engine import (
        CheckpointError,
        DerainEngine,
        EngineError,
        MissingWeightsError,
    )

    config = engine_config(args, **overrides)
    try:
        return DerainEngine(config)
    except (CheckpointError, EngineError, MissingWeightsError, ValueError) as error:
        raise CommandError(str(error)) from None
