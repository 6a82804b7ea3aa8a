"""`stereo-derain heldout`: write the fixed held-out benchmark to disk (APANet folder layout)."""

import argparse
from pathlib import Path

from stereo_derain_ros.cli import CommandError

FOLDERS = {'rainy_left': 'rain_left', 'rainy_right': 'rain_right', 'clean_left': 'gt_left',
           'clean_right': 'gt_right'}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'heldout', help='write held-out sets (presets, held-out photos, clean) as image folders',
        description='Render fixed held-out sets (seeds of their own, never used in training) '
                    'into OUT/SET/testing/{rain_left,rain_right,gt_left,gt_right,disparity}. '
                    '`stereo-derain eval M heldout:SET` renders the same samples in memory, so '
                    'writing them is only needed for other tools.')
    parser.add_argument('--out', type=Path, required=True, help='destination folder')
    parser.add_argument('--presets', '--sets', dest='sets', default='light,medium,heavy',
                        help='comma-separated held-out sets to write (default: %(default)s)')
    parser.add_argument('--photos', type=Path, default=None,
                        help='photo cache for the photo sets (default: $STEREO_DERAIN_PHOTOS '
                             'or ~/.cache/stereo_derain_ros/photos)')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from PIL import Image
    from tqdm import tqdm

    from stereo_derain_ros.data.folders import write_disparity
    from stereo_derain_ros.data.heldout import heldout_set, HELDOUT_SETS
    from stereo_derain_ros.pixels import to_uint8

    presets = [name.strip() for name in args.sets.split(',') if name.strip()]
    unknown = sorted(set(presets) - set(HELDOUT_SETS))
    if unknown or not presets:
        raise CommandError(f'unknown held-out sets {unknown or "(none)"}; expected some of '
                           f'{", ".join(HELDOUT_SETS)}')
    for preset in presets:
        dataset = heldout_set(preset, args.photos)
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
