"""The engine options shared by every command that derains (`derain`, `bag`).

One definition, so that a flag means the same thing, with the same default, everywhere.
"""

import argparse
import re

from stereo_derain_ros.cli import CommandError


def parse_tile(text: str) -> int | tuple[int, int]:
    """Parse N or HxW, e.g. 512 or 384x1248."""
    match = re.fullmatch(r'(\d+)(?:[xX](\d+))?', text)
    if not match or int(match[1]) == 0 or (match[2] is not None and int(match[2]) == 0):
        raise argparse.ArgumentTypeError(f'tile must be N or HxW in pixels, got {text!r}')
    return int(match[1]) if match[2] is None else (int(match[1]), int(match[2]))


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that build a `DerainEngine`."""
    engine = parser.add_argument_group('engine')
    engine.add_argument('--model', help="model name (default: the checkpoint's, else bandnet)")
    engine.add_argument('--weights', metavar='PATH',
                        help='checkpoint (.safetensors, or .onnx with --backend onnxruntime); '
                             'default: the packaged weights')
    engine.add_argument('--untrained', action='store_true',
                        help='run untrained weights (for testing the pipeline only)')
    engine.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    engine.add_argument('--precision', default='auto', help='auto, fp32, fp16 or bf16')
    engine.add_argument('--backend', default='torch',
                        help='torch or onnxruntime (default torch); onnxruntime also takes an '
                             '.onnx file from `stereo-derain export` as --weights')
    engine.add_argument('--max-disparity', type=int, metavar='PX',
                        help="largest disparity in pixels (default: the model's)")
    engine.add_argument('--tile', type=parse_tile, metavar='N|HxW',
                        help='process in tiles of N or HxW pixels to bound memory')
    engine.add_argument('--tile-overlap', type=int, default=32, metavar='PX',
                        help='pixels over which neighbouring tiles are blended (default 32)')


def build_engine(args: argparse.Namespace):
    """Return a `DerainEngine` for the engine options, or raise `CommandError`."""
    from stereo_derain_ros.engine import (
        CheckpointError,
        DerainEngine,
        EngineConfig,
        EngineError,
        MissingWeightsError,
    )

    try:
        return DerainEngine(EngineConfig(
            model=args.model, weights=None if args.weights is None else str(args.weights),
            allow_untrained=args.untrained, device=args.device, precision=args.precision,
            backend=args.backend, max_disparity=args.max_disparity, tile=args.tile,
            tile_overlap=args.tile_overlap))
    except (CheckpointError, EngineError, MissingWeightsError, ValueError) as error:
        raise CommandError(str(error)) from None
