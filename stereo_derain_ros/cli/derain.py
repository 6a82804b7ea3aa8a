"""`stereo-derain derain`: derain a stereo pair of image files, or two folders of them."""

import argparse
from pathlib import Path
import re

from stereo_derain_ros.cli import CommandError

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm', '.pgm', '.webp')


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'derain', help='derain a rectified stereo pair of images (or two folders of pairs)',
        description='Derain LEFT and RIGHT into OUT_DIR/left.png and OUT_DIR/right.png, or every '
                    'pair of --left-dir/--right-dir (paired by file name) into OUT_DIR/left/ and '
                    'OUT_DIR/right/. Outputs keep the size, channels and bit depth of the inputs.')
    parser.add_argument('left', nargs='?', type=Path, help='left image file')
    parser.add_argument('right', nargs='?', type=Path, help='right image file')
    parser.add_argument('--left-dir', type=Path, help='folder of left images')
    parser.add_argument('--right-dir', type=Path, help='folder of right images (same names)')
    parser.add_argument('--out-dir', type=Path, required=True, help='where outputs are written')
    parser.add_argument('--model', help="model name (default: the checkpoint's, else bandnet)")
    parser.add_argument('--weights', type=Path,
                        help='checkpoint (.safetensors); default: the packaged weights')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--precision', default='auto', help='auto, fp32, fp16 or bf16')
    parser.add_argument('--max-disparity', type=int,
                        help="largest disparity in pixels (default: the model's)")
    parser.add_argument('--tile', type=parse_tile,
                        help='process in tiles of N or HxW pixels to bound memory')
    parser.add_argument('--tile-overlap', type=int, default=32,
                        help='pixels over which neighbouring tiles are blended (default 32)')
    parser.add_argument('--untrained', action='store_true',
                        help='run untrained weights (testing only)')
    parser.set_defaults(run=run)


def parse_tile(text: str) -> int | tuple[int, int]:
    """Parse N or HxW, e.g. 512 or 384x1248."""
    match = re.fullmatch(r'(\d+)(?:[xX](\d+))?', text)
    if not match or int(match[1]) == 0 or (match[2] is not None and int(match[2]) == 0):
        raise argparse.ArgumentTypeError(f'tile must be N or HxW in pixels, got {text!r}')
    return int(match[1]) if match[2] is None else (int(match[1]), int(match[2]))


def run(args: argparse.Namespace) -> int:
    pairs = _pairs(args)
    engine = _build_engine(args)
    from tqdm import tqdm

    single = args.left is not None
    for left_path, right_path in tqdm(pairs, desc='derain', unit='pair', disable=single):
        left, right = _read(left_path), _read(right_path)
        try:
            left_out, right_out = _derain(engine, left, right)
        except ValueError as error:
            raise CommandError(f'{left_path} / {right_path}: {error}') from error
        if single:
            _write(args.out_dir / 'left.png', left_out)
            _write(args.out_dir / 'right.png', right_out)
        else:
            _write(args.out_dir / 'left' / left_path.name, left_out)
            _write(args.out_dir / 'right' / right_path.name, right_out)
    print(f'derained {len(pairs)} pair(s) into {args.out_dir}')
    return 0


def _pairs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """Return the (left, right) files to process; folders pair up by identical file names."""
    files_given = args.left is not None or args.right is not None
    dirs_given = args.left_dir is not None or args.right_dir is not None
    if files_given == dirs_given or (files_given and args.right is None) or (
            dirs_given and (args.left_dir is None or args.right_dir is None)):
        raise CommandError('give either LEFT and RIGHT image files, or --left-dir and --right-dir')
    if files_given:
        for path in (args.left, args.right):
            if not path.is_file():
                raise CommandError(f'image not found: {path}')
        return [(args.left, args.right)]
    names = {}
    for side, folder in (('left', args.left_dir), ('right', args.right_dir)):
        if not folder.is_dir():
            raise CommandError(f'{side} folder not found: {folder}')
        names[side] = sorted(path.name for path in folder.iterdir()
                             if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    for side, other, folder in (('left', 'right', args.right_dir),
                                ('right', 'left', args.left_dir)):
        missing = sorted(set(names[side]) - set(names[other]))
        if missing:
            raise CommandError(f'{side} image {missing[0]} has no partner {folder / missing[0]}')
    if not names['left']:
        raise CommandError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {args.left_dir}')
    return [(args.left_dir / name, args.right_dir / name) for name in names['left']]


def _build_engine(args: argparse.Namespace):
    from stereo_derain_ros.engine import (
        CheckpointError,
        DerainEngine,
        EngineConfig,
        EngineError,
        MissingWeightsError,
    )

    try:
        config = EngineConfig(
            model=args.model, weights=None if args.weights is None else str(args.weights),
            allow_untrained=args.untrained, device=args.device, precision=args.precision,
            max_disparity=args.max_disparity, tile=args.tile,
            tile_overlap=args.tile_overlap)
        return DerainEngine(config)
    except (CheckpointError, EngineError, MissingWeightsError, ValueError) as error:
        raise CommandError(str(error)) from error


def _derain(engine, left, right):
    """Derain as BGR (OpenCV's order); alpha channels pass through untouched."""
    import numpy as np

    if left.ndim == 3 and left.shape[2] == 4 and right.shape == left.shape:
        left_out, right_out = engine.derain(left[..., :3], right[..., :3], 'bgr')
        return (np.dstack([left_out, left[..., 3]]), np.dstack([right_out, right[..., 3]]))
    order = 'bgr' if left.ndim == 3 and left.shape[2] == 3 else None
    return engine.derain(left, right, order)


def _read(path: Path):
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise CommandError(f'cannot read image {path}')
    return image


def _write(path: Path, image) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise CommandError(f'cannot write image {path}')
