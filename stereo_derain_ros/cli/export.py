"""`stereo-derain export`: write a model as an ONNX graph for ONNX Runtime or TensorRT."""

import argparse
from pathlib import Path
import time

from stereo_derain_ros.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'export', help='export a model or checkpoint to ONNX (dynamic height and width)',
        description='Export to ONNX (opset 18): inputs left/right and outputs left_out/right_out '
                    "are 1x3xHxW float RGB in [0, 1], H and W multiples of the model's padding; "
                    'metadata_props name the model, recipe, band and padding. See docs/deploy.md.')
    parser.add_argument('source', metavar='MODEL_OR_CHECKPOINT',
                        help='a registered model name (its packaged weights) or a .safetensors '
                             'checkpoint')
    parser.add_argument('--onnx', required=True, type=Path, metavar='OUT.onnx',
                        help='file to write (atomically)')
    parser.add_argument('--max-disparity', type=int, metavar='PX',
                        help="disparity band baked into the graph (default: the model's own)")
    parser.add_argument('--untrained', action='store_true',
                        help='export randomly initialised weights (for testing the tool chain)')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from stereo_derain_ros.engine import (
        CheckpointError,
        EngineConfig,
        EngineError,
        load_checkpoint,
        MissingWeightsError,
    )
    from stereo_derain_ros.engine.backend import prepared_model
    from stereo_derain_ros.engine.onnx_export import export_onnx
    from stereo_derain_ros.models import available_models

    if args.onnx.suffix != '.onnx':
        raise CommandError(f'--onnx must name a .onnx file, got {args.onnx}')
    is_file = Path(args.source).is_file()
    if not is_file and args.source not in available_models():
        raise CommandError(
            f'{args.source!r} is neither a checkpoint file nor a registered model; expected a '
            f'.safetensors path or one of {", ".join(available_models())}')
    try:
        config = EngineConfig.from_options(model=None if is_file else args.source,
                                           weights=args.source if is_file else None,
                                           untrained=args.untrained,
                                           max_disparity=args.max_disparity)
        model, info = prepared_model(config, None)
        recipe = None if info.weights_file is None else load_checkpoint(info.weights_file)[1][
            'recipe']
        started = time.perf_counter()
        path = export_onnx(model, args.onnx, max_disparity=info.max_disparity, recipe=recipe)
    except (CheckpointError, EngineError, MissingWeightsError, ValueError) as error:
        raise CommandError(str(error)) from None
    print(f'wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {info.name} from '
          f'{info.weights_source}, max_disparity {info.max_disparity}, H and W multiples of '
          f'{info.pad_multiple}, in {time.perf_counter() - started:.0f} s')
    return 0
