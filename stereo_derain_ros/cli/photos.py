"""`stereo-derain photos`: collect the photographs that training scenes are built from."""

import argparse
from pathlib import Path

from stereo_derain_ros.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    from stereo_derain_ros.data.photos.sources import PHOTO_SOURCES

    parser = subparsers.add_parser(
        'photos', help='collect photographs from Debian packages into a local cache',
        description='Download the Debian packages that ship photographs (apt-get download and '
                    'dpkg-deb -x into a temporary folder: nothing is installed), keep the '
                    'photographs and photographed cut-outs, and write them with a licence '
                    'manifest (manifest.json: package, version, licence, original file, sha256, '
                    'split) into the cache. About 270 MB is downloaded and 590 pictures kept.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--cache', type=Path, default=None,
                        help='cache folder (default: $STEREO_DERAIN_PHOTOS or '
                             '~/.cache/stereo_derain_ros/photos)')
    parser.add_argument('--sources', default=','.join(PHOTO_SOURCES),
                        help='comma-separated sources to collect (default: %(default)s)')
    parser.add_argument('--max-side', type=int, default=1024,
                        help='longer side of a stored picture in px (default: %(default)s)')
    parser.add_argument('--shrink-from', type=Path, default=None, metavar='CACHE',
                        help='instead of downloading, copy CACHE at --max-side with photographs '
                             'as JPEG (e.g. 512 px, about 25 MB, to carry to a GPU machine)')
    parser.add_argument('--jpeg-quality', type=int, default=90,
                        help='JPEG quality of photographs with --shrink-from '
                             '(default: %(default)s)')
    parser.add_argument('--reserved', action='store_true',
                        help='instead of photographs, collect the real stereo pairs reserved for '
                             'independent evaluation into CACHE/reserved (Aloe from Debian '
                             'opencv-doc, twelve OAK-D pairs from PyPI stereodemo; about 100 MB '
                             'downloaded): heldout:real-* evaluates on them, training never '
                             'reads them')
    parser.add_argument('--list', action='store_true',
                        help='print the manifest of an existing cache instead of collecting')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bars')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import collections
    import json

    from stereo_derain_ros.data.photos.collect import (
        collect_photos,
        MANIFEST,
        PhotoCollectionError,
        shrink_cache,
    )
    from stereo_derain_ros.data.photos.library import default_cache

    cache = args.cache or default_cache()
    if args.reserved:
        return _collect_reserved(cache)
    if args.list:
        if not (cache / MANIFEST).exists():
            raise CommandError(f'no photo cache at {cache}; run `stereo-derain photos` first')
        records = json.loads((cache / MANIFEST).read_text())['pictures']
    elif args.max_side < 64:
        raise CommandError(f'--max-side must be at least 64, got {args.max_side}')
    elif args.shrink_from is not None:
        if not (args.shrink_from / MANIFEST).exists():
            raise CommandError(f'no photo cache at {args.shrink_from} (no {MANIFEST})')
        records = shrink_cache(args.shrink_from, cache, args.max_side, args.jpeg_quality)
    else:
        sources = [name.strip() for name in args.sources.split(',') if name.strip()]
        try:
            records = [record.__dict__ for record in collect_photos(
                cache, sources, args.max_side, progress=not args.no_progress)]
        except PhotoCollectionError as error:
            raise CommandError(str(error)) from None
    counts = collections.Counter((record['source'], record['kind'], record['split'])
                                 for record in records)
    for (source, kind, split), count in sorted(counts.items()):
        print(f'{source:26s} {kind:7s} {split:8s} {count:4d}')
    print(f'{len(records)} pictures in {cache}')
    return 0


def _collect_reserved(cache) -> int:
    from stereo_derain_ros.data.photos.collect import PhotoCollectionError
    from stereo_derain_ros.data.reserved_pairs import collect_reserved_pairs

    try:
        pairs = collect_reserved_pairs(cache)
    except PhotoCollectionError as error:
        raise CommandError(str(error)) from None
    for pair in pairs:
        kind = 'mono' if pair.mono else 'colour'
        truth = 'ground truth' if pair.disparity else 'SGBM disparity'
        print(f'{pair.name:26s} {kind:7s} {truth:15s} {pair.package} {pair.version}')
    print(f'{len(pairs)} reserved pairs in {cache / "reserved"} (evaluation only)')
    return 0
