"""What `train-fusion-gate` and `train-refiner` share: each fits a small net behind a derainer.

Both draw pairs from the photo library's training split, derain them with the engine options
given, and fit on patches; so their output file, photo cache, pair count, seed, step count,
learning rate and progress switch mean the same thing and are checked the same way.
"""

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
import time

from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.cli.engine_options import add_engine_arguments, build_engine

ENGINE_ARGUMENTS = ('model', 'weights', 'untrained', 'device', 'precision', 'threads')
# Lines a fit prints with the bars hidden: fits run for tens of minutes, often in the background
# with their output in a log, which should still say how far they are.
HIDDEN_PROGRESS_LINES = 10


def add_fit_arguments(parser: argparse.ArgumentParser, defaults, what: str,
                      engine_arguments: tuple[str, ...] = ENGINE_ARGUMENTS) -> None:
    """Add the shared options; `defaults` is the training config, `what` names the net."""
    parser.add_argument('--out', type=Path, required=True, metavar='OUT.safetensors',
                        help=f'{what} checkpoint to write (atomically)')
    parser.add_argument('--photos', type=Path, default=None,
                        help='photo cache (default: $STEREO_DERAIN_PHOTOS or '
                             '~/.cache/stereo_derain_ros/photos; without one, the built-in '
                             'photographs)')
    parser.add_argument('--pairs', type=int, default=defaults.pairs,
                        help='training pairs to draw (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=defaults.seed,
                        help='seed of the pairs, the patches and the fit (default: %(default)s)')
    parser.add_argument('--steps', type=int, default=defaults.steps,
                        help='optimiser steps (default: %(default)s)')
    parser.add_argument('--lr', dest='learning_rate', type=float, default=defaults.learning_rate,
                        help="Adam's highest rate, from which it decays along a cosine to zero by "
                             'the last step (default: %(default)s)')
    parser.add_argument('--no-progress', action='store_true',
                        help='hide the progress bars; the fit then prints a line every tenth '
                             'of its steps')
    add_engine_arguments(parser, engine_arguments,
                         weights=f'derainer checkpoint the {what} will follow (default: the '
                                 'packaged weights of the model)')
    parser.set_defaults(precision='fp32')


def derainer_and_library(args: argparse.Namespace, counts: tuple[str, ...] = (),
                         **engine_overrides):
    """Check the shared options; return the engine, its uint8 RGB derain call and the library.

    `counts` names further options that must be at least 1.
    """
    from stereo_derain_ros.data.photos.library import default_cache, PhotoLibrary

    if args.out.suffix != '.safetensors':
        raise CommandError(f'--out must name a .safetensors file, got {args.out}')
    for name in ('pairs', 'steps', *counts):
        if getattr(args, name) < 1:
            raise CommandError(f'--{name} must be at least 1, got {getattr(args, name)}')
    if not args.learning_rate > 0:
        raise CommandError(f'--lr must be above 0, got {args.learning_rate}')
    engine = build_engine(args, **engine_overrides)
    library = PhotoLibrary.open_or_builtin(args.photos or default_cache(), 'train')

    def derain(left, right):
        return engine.derain(left, right, 'rgb')

    return engine, derain, library


@contextmanager
def fit_progress(steps: int, hidden: bool, figure: str,
                 spec: str) -> Iterator[Callable[[int, float], None]]:
    """Yield `show(step, value)`, called after every step of a fit of `steps` steps.

    It moves a bar that shows `value` (formatted by `spec`) as `figure`; with the bars hidden it
    prints `HIDDEN_PROGRESS_LINES` lines instead, each with the step, the value and the minutes.
    """
    from tqdm import tqdm

    every = max(1, steps // HIDDEN_PROGRESS_LINES)
    start = time.monotonic()
    with tqdm(total=steps, desc='fit', disable=hidden) as bar:
        def show(step: int, value: float) -> None:
            bar.update(1)
            if step % 100 == 0:
                bar.set_postfix({figure: format(value, spec)})
            if hidden and (step % every == 0 or step == steps):
                minutes = (time.monotonic() - start) / 60.0
                print(f'fit: step {step} of {steps}, {figure} {format(value, spec)}, '
                      f'{minutes:.1f} min', flush=True)
        yield show
