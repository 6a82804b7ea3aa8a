"""`stereo-derain derain`: derain a stereo pair of image files, or two folders of them."""

import argparse
from pathlib import Path

from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.cli.engine_options import add_engine_arguments, build_engine

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
    add_engine_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    pairs = _pairs(args)
    _prepare(args.out_dir)
    first = _read(pairs[0][0]), _read(pairs[0][1])  # bad input fails before the engine is built
    engine = build_engine(args)
    from tqdm import tqdm

    from stereo_derain_ros.engine import EngineError

    single = args.left is not None
    for index, (left_path, right_path) in enumerate(tqdm(pairs, desc='derain', unit='pair',
                                                         disable=single)):
        left, right = first if index == 0 else (_read(left_path), _read(right_path))
        try:
            left_out, right_out = _derain(engine, left, right)
        except (EngineError, ValueError) as error:
            raise CommandError(f'{left_path} / {right_path}: {error}') from None
        if single:
            _write(args.out_dir / 'left.png', left_out)
            _write(args.out_dir / 'right.png', right_out)
        else:
            _write(args.out_dir / 'left' / left_path.name, left_out)
            _write(args.out_dir / 'right' / right_path.name, right_out)
    print(f'derained {len(pairs)} pair(s) into {args.out_dir}')
    return 0


def _prepare(out_dir: Path) -> None:
    """Create the output folder now, so an unusable one fails before any work is done."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandError(f'cannot create the output folder {out_dir}: {error.strerror}; '
                           'expected a writable folder path') from None


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


def _derain(engine, left, right):
    """Derain as BGR (OpenCV's order); alpha channels pass through untouched."""
    import numpy as np

    if left.ndim == 3 and left.shape[2] == 4 and right.shape == left.shape:
        left_out, right_out = engine.derain(left[..., :3], right[..., :3], 'bgr')
        return (np.dstack([left_out, left[..., 3]]), np.dstack([right_out, right[..., 3]]))
    order = 'bgr' if left.ndim == 3 and left.shape[2] == 3 else None
    return engine.derain(left, right, order)


def _read(path: Path):
    """Decode an image file whole, refusing damaged files that OpenCV would half-decode."""
    import cv2
    import numpy as np

    from stereo_derain_ros.image_codec import check_complete_jpeg, ImageCodecError

    try:
        data = path.read_bytes()
        check_complete_jpeg(data, f'image {path}')
    except OSError as error:
        raise CommandError(f'cannot read image {path}: {error.strerror}') from None
    except ImageCodecError as error:
        raise CommandError(str(error)) from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if image is None:
        raise CommandError(f'cannot read image {path}: not a complete image file in a format '
                           f'OpenCV decodes ({", ".join(IMAGE_SUFFIXES)})')
    return image


def _write(path: Path, image) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise CommandError(f'cannot write image {path}')
