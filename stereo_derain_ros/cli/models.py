"""`stereo-derain models`: list the registered networks with their size and cost."""

import argparse

from stereo_derain_ros.cli.arguments import parse_size


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'models', help='list the deraining models with parameters and MACs per stereo pair',
        description='List every registered model with its parameter count, its multiply-'
                    'accumulates for one left + right pair (counted, not timed) and what it is '
                    'for. Only models with packaged weights derain without --weights.')
    parser.add_argument('--size', type=parse_size, default=(128, 128), metavar='WxH',
                        help='image size for the MAC count of one left + right pair '
                             '(default: 128x128, the size papers report)')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    width, height = args.size
    import torch

    from stereo_derain_ros.models import (
        available_models,
        build_model,
        count_macs,
        count_parameters,
        model_description,
    )

    print(f'{"model":<14} {"params":>9} {f"GMACs@{width}x{height}":>16}  description')
    for name in available_models():
        # The meta device gives shapes without memory: any size is counted in a moment.
        with torch.device('meta'):
            model = build_model(name).eval()
        multiple = model.pad_multiple
        padded_w, padded_h = (-(-width // multiple) * multiple, -(-height // multiple) * multiple)
        macs = count_macs(model, padded_h, padded_w)
        print(f'{name:<14} {count_parameters(model) / 1e6:>8.2f}M {macs / 1e9:>16.2f}  '
              f'{model_description(name)}')
    print('MACs count one left + right pair (torch FLOP counter / 2), the size padded to each '
          "model's multiple, at each model's default disparity band.")
    return 0
