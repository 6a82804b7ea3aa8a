"""`stereo-derain heldout`: write the fixed held-out benchmark to disk (APANet folder layout)."""

import argparse
from pathlib import Path

from stereo_derain_ros.cli import CommandError

FOLDERS = {'rainy_left': 'rain_left', 'rainy_right': 'rain_right', 'clean_left': 'gt_left',
           'clean_right': 'gt_right'}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'heldout', help='write the held-out benchmark (light, medium, heavy) as image folders',
        description='Render the fixed held-out benchmark (documented seeds, never used in '
                    'training) into OUT/PRESET/testing/{rain_left,rain_right,gt_left,gt_right,'
                    'disparity}. `stereo-derain eval M heldout:PRESET` renders the same samples '
                    'in memory, so writing them is only needed for other tools.')
    parser.add_argument('--out', type=Path, required=True, help='destination folder')
    parser.add_argument('--presets', default='light,medium,heavy',
                        help='comma-separated presets to write (default: %(default)s)')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from PIL import Image
    from tqdm import tqdm

    from stereo_derain_ros.data.folders import write_disparity
    from stereo_derain_ros.evaluation.heldout import HELDOUT_PRESETS, HeldoutSet
    from stereo_derain_ros.pixels import to_uint8

    presets = [name.strip() for name in args.presets.split(',') if name.strip()]
    unknown = sorted(set(presets) - set(HELDOUT_PRESETS))
    if unknown or not presets:
        raise CommandError(f'unknown presets {unknown or "(none)"}; expected some of '
                           f'{", ".join(HELDOUT_PRESETS)}')
    for preset in presets:
        dataset = HeldoutSet(preset)
        base = args.out / preset / 'testing'
        for folder in (*FOLDERS.values(), 'disparity'):
            (base / folder).mkdir(parents=True, exist_ok=True)
        for index in tqdm(range(len(dataset)), desc=f'held-out {preset}'):
            sample = dataset[index]
            name = f'{index:02d}_{dataset.scene_name(index)}'
            for key, folder in FOLDERS.items():
                image = to_uint8(sample[key].permute(1, 2, 0).numpy())
                Image.fromarray(image).save(base / folder / f'{name}.png')
            write_disparity(base / 'disparity' / f'{name}.npy', sample['disparity'][0].numpy())
    print(f'wrote {", ".join(presets)} under {args.out}')
    return 0
