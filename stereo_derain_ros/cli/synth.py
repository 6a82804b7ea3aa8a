"""`stereo-derain synth`: write a synthetic stereo rain dataset in APANet's folder layout."""

import argparse
from pathlib import Path
import shlex
import sys

from stereo_derain_ros.cli.arguments import parse_size

PRESET_CHOICES = ('light', 'medium', 'heavy', 'torrential', 'random')
MODE_RENDERERS = {'particle': ('particles',), 'layered': ('layered',),
                  'mixed': ('layered', 'particles')}
SOURCE_CHOICES = ('mixed', 'photo-layers', 'dead-leaves', 'procedural', 'motorcycle')


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'synth', help='write a synthetic stereo rain dataset (APANet layout + disparity)',
        description='Render stereo-consistent rain into clean stereo scenes (photo layers, '
                    'dead leaves, procedural planes, the Middlebury motorcycle) and write '
                    'OUT/SPLIT/{rain_left,rain_right,gt_left,gt_right,disparity} plus '
                    'OUT/synth.json. Sample i of seed S is the same everywhere.')
    parser.add_argument('out', nargs='?', type=Path, help='output dataset folder')
    parser.add_argument('--count', type=int, help='number of stereo pairs to write')
    parser.add_argument('--preset', choices=PRESET_CHOICES, default='random',
                        help='rain preset, or random for training-style randomisation '
                             '(default: %(default)s)')
    parser.add_argument('--seed', type=int, default=None,
                        help='seed of the set (default: 0 for training, 1 for testing, so the '
                             'two splits never share a sample)')
    parser.add_argument('--size', type=parse_size, default=(512, 256), metavar='WxH',
                        help='size of each pair (default 512x256)')
    parser.add_argument('--split', choices=('testing', 'training'), default='testing',
                        help='which seeds to draw from (default: %(default)s)')
    parser.add_argument('--source', choices=SOURCE_CHOICES, default='mixed',
                        help='clean scenes: one source, or the training mix (default: '
                             '%(default)s)')
    parser.add_argument('--mode', choices=tuple(MODE_RENDERERS), default='mixed',
                        help='particle renderer, layered planes, or both in turn (default: '
                             '%(default)s)')
    parser.add_argument('--photos', type=Path, default=None,
                        help='photo cache (default: $STEREO_DERAIN_PHOTOS or '
                             "~/.cache/stereo_derain_ros/photos, else scikit-image's samples)")
    parser.add_argument('--disparity-format', choices=('npy', 'png'), default='npy',
                        help='npy: float32 px (+inf unknown); png: 16-bit x256, 0 unknown '
                             '(default: %(default)s)')
    parser.add_argument('--contact-sheet', type=Path, metavar='PNG',
                        help='instead, write a contact sheet of all presets to PNG')
    parser.add_argument('--training-sheet', type=Path, metavar='JPG',
                        help='instead, write 16 training samples (every scene source and '
                             'renderer, colour and mono) to JPG')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from stereo_derain_ros.cli import CommandError

    if args.contact_sheet is not None:
        from stereo_derain_ros.rain.contact_sheet import write_contact_sheet

        path = write_contact_sheet(args.contact_sheet, seed=args.seed or 0)
        print(f'wrote {path}')
        return 0
    if args.training_sheet is not None:
        from stereo_derain_ros.data.contact_sheet import write_training_sheet
        from stereo_derain_ros.data.photos.library import PhotoLibrary

        library = PhotoLibrary.open_or_builtin(args.photos, 'train')
        path = write_training_sheet(args.training_sheet, library, seed=args.seed or 0)
        print(f'wrote {path} (photos: {library.origin})')
        return 0
    if args.out is None or args.count is None:
        raise CommandError('synth needs OUT and --count N (or --contact-sheet PNG)')
    if args.count < 1:
        raise CommandError(f'--count must be >= 1, got {args.count}')
    width, height = args.size
    if width < 16 or height < 16:
        raise CommandError(f'--size must be at least 16x16, got {width}x{height}')
    split_dir = args.out / args.split
    if split_dir.exists() and any(split_dir.iterdir()):
        raise CommandError(f'{split_dir} already holds files; choose an empty OUT or another '
                           f'--split')
    return write_dataset(args, width, height)


def write_dataset(args: argparse.Namespace, width: int, height: int) -> int:
    import json

    import cv2
    from tqdm import tqdm

    from stereo_derain_ros.atomic import write_text_atomic
    from stereo_derain_ros.cli import CommandError
    from stereo_derain_ros.data.folders import LAYOUT_FOLDERS, write_disparity
    from stereo_derain_ros.data.photos.library import PhotoLibrary
    from stereo_derain_ros.data.scene_sources import TRAINING_MIX
    from stereo_derain_ros.data.synthetic import synthesize, SyntheticRainConfig

    cv2.setNumThreads(1)
    base_seed = args.seed if args.seed is not None else int(args.split == 'testing')
    try:
        config = SyntheticRainConfig(
            crop_height=height, crop_width=width,
            sources=tuple(TRAINING_MIX) if args.source == 'mixed' else (args.source,),
            presets=None if args.preset == 'random' else (args.preset,),
            renderers=MODE_RENDERERS[args.mode])
    except ValueError as error:
        raise CommandError(str(error)) from None
    library = PhotoLibrary.open_or_builtin(args.photos, 'train')
    split_dir = args.out / args.split
    folders = dict(zip(('rainy_left', 'rainy_right', 'clean_left', 'clean_right'),
                       LAYOUT_FOLDERS['apanet']))
    for folder in (*folders.values(), 'disparity'):
        (split_dir / folder).mkdir(parents=True, exist_ok=True)
    records = []
    for index in tqdm(range(args.count), desc='synth', unit='pair'):
        try:
            sample = synthesize(config, base_seed, index, library)
        except ValueError as error:
            raise CommandError(str(error)) from None
        name = f'{index:06d}'
        for role, folder in folders.items():
            image = getattr(sample, role)
            cv2.imwrite(str(split_dir / folder / f'{name}.png'),
                        cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        write_disparity(split_dir / 'disparity' / f'{name}.{args.disparity_format}',
                        sample.disparity_left)
        records.append({'name': name, 'index': index, 'scene': sample.scene_source,
                        'mode': sample.mode,
                        'params': sample.params.to_dict() if sample.params else 'broad'})
    split_record = {
        'command': shlex.join(['stereo-derain', *sys.argv[1:]]) if sys.argv else '',
        'layout': 'apanet', 'split': args.split, 'count': args.count,
        'size': [width, height], 'preset': args.preset, 'mode': args.mode,
        'source': args.source, 'seed': base_seed, 'photos': library.origin,
        'disparity': f'{args.split}/disparity/NAME.{args.disparity_format} (left view, px)',
        'samples': records,
    }
    # One manifest per dataset, one entry per split, so a training split can join a testing one.
    manifest_path = args.out / 'synth.json'
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest[args.split] = split_record
    write_text_atomic(manifest_path, json.dumps(manifest, indent=1) + '\n')
    print(f'wrote {args.count} pairs to {split_dir}')
    return 0
