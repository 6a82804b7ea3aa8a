"""`stereo-derain train`: train a registry model on synthetic rain or a stereo dataset folder."""

import argparse
from pathlib import Path

from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.cli.engine_options import add_engine_arguments, engine_config

DEFAULT_STEPS = 4000
DEFAULT_CROP = '96'


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'train', help='train a deraining model (single process, or DDP under torchrun)',
        description='Train a registry model. Launch under `torchrun --nproc_per_node N` for '
                    'DistributedDataParallel (--batch is per process). --resume continues a run '
                    'directory with the recipe stored in its checkpoint.')
    parser.add_argument('--model', help='registry model name (see `stereo-derain models`); '
                        'required unless --resume')
    parser.add_argument('--out', required=True, type=Path,
                        help='run directory: checkpoint, optimizer state, CSV and PNG curves')
    _add_recipe_arguments(parser)
    _add_start_arguments(parser)
    _add_run_arguments(parser)
    parser.set_defaults(run=run)


def _add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options stored in the recipe: they decide what is trained and how."""
    parser.add_argument('--steps', type=int, default=None,
                        help=f'total optimiser steps (default: {DEFAULT_STEPS}); with --resume '
                             'it changes the total of the run, which re-times the remaining '
                             'cosine schedule and is recorded in the recipe')
    parser.add_argument('--batch', type=int, default=8,
                        help='pairs per step and process (default: %(default)s)')
    parser.add_argument('--crop', default=None,
                        help='one crop for the whole run: SIZE or HEIGHTxWIDTH (e.g. 64x160) '
                             f'(default: {DEFAULT_CROP})')
    parser.add_argument('--crop-schedule', default=None,
                        help='progressive crops CROP:UNTIL_STEP,... e.g. 64:1000,96x192:3000,128'
                             ' (overrides --crop)')
    parser.add_argument('--lr', type=float, default=1e-3,
                        help='peak learning rate (default: %(default)s)')
    parser.add_argument('--lr-min', type=float, default=1e-6,
                        help='final cosine learning rate (default: %(default)s)')
    parser.add_argument('--warmup', type=int, default=100,
                        help='linear warm-up steps (default: %(default)s)')
    parser.add_argument('--weight-decay', type=float, default=1e-4,
                        help='AdamW weight decay (default: %(default)s)')
    parser.add_argument('--optimizer', choices=('adamw', 'adam'), default='adamw',
                        help='(default: %(default)s)')
    parser.add_argument('--loss', default='l1=1,ssim=0.2',
                        help='weighted terms NAME=W,... from l1, charbonnier, mse, ssim (1-SSIM), '
                             'rain_l1 (L1 weighted towards rainy pixels), lowpass (L1 of 8-px '
                             'means: brightness and colour shifts), log_l1 and log_mse (the '
                             'mean over pairs of the log error, as PSNR averages pairs) '
                             '(default: %(default)s)')
    parser.add_argument('--data', default='synthetic',
                        help='"synthetic" (rendered rain, randomised light..heavy) or a dataset '
                             'folder (RainKITTI or StereoCityscapes layout, see docs/training.md) '
                             '(default: %(default)s)')
    parser.add_argument('--pool', type=int, default=192,
                        help='scenes and rain samples rendered into the pools (synthetic data; '
                             'composed afresh at every step), or pairs read from a folder '
                             '(default: %(default)s)')
    parser.add_argument('--val-every', type=int, default=500,
                        help='validate every N steps (default: %(default)s)')
    parser.add_argument('--val-samples', type=int, default=6,
                        help='validation pairs (default: %(default)s)')
    parser.add_argument('--checkpoint-every', type=int, default=200,
                        help='write the checkpoint every N steps (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of data, crops and initial weights (default: %(default)s)')
    parser.add_argument('--amp', action='store_true',
                        help='bf16 mixed precision on CUDA and on CPUs with AVX512-BF16 or AMX '
                             '(1.2-1.4x faster per step there); other CPUs train fp32, with a '
                             'warning')
    parser.add_argument('--ema', type=float, default=0.0,
                        help='decay of a moving average of the weights, which the checkpoint '
                             'then holds, e.g. 0.999 (default: %(default)s, none)')


def _add_start_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the recipe options that change the model or data of a run from their defaults."""
    parser.add_argument('--model-arg', action='append', default=[], metavar='KEY=JSON',
                        help='model config override, e.g. width=16 (repeatable)')
    parser.add_argument('--composition', action='append', default=[], metavar='KEY=SHARE',
                        help='share of a synthetic training draw, e.g. rain_free=0.25 (a field '
                             'of CompositionConfig; repeatable; validation keeps the defaults)')
    parser.add_argument('--init', default=None, metavar='CHECKPOINT',
                        help="start from these weights (fine-tuning) and their model config "
                             "(--model-arg overrides it); the checkpoint's own recipe is kept "
                             'in the new recipe as init_recipe')
    parser.add_argument('--init-partial', action='store_true',
                        help='with --init: load only the tensors whose names and shapes fit the '
                             'model (e.g. bandnet weights into bandnet_mono)')
    parser.add_argument('--train-only', action='append', default=[], metavar='MODULE',
                        help='train only the parameters under this module, e.g. exit or '
                             'decoders.0 (repeatable); the rest keep their loaded weights '
                             '(default: train everything)')


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of this process only: they do not change the result."""
    parser.add_argument('--resume', action='store_true',
                        help='continue the run in --out from its last checkpoint')
    add_engine_arguments(parser, ('device', 'threads'))
    parser.add_argument('--stop-after-minutes', type=float, default=None,
                        help='checkpoint and stop after this long (resume later with --resume)')
    parser.add_argument('--stop-at-step', type=int, default=None,
                        help='checkpoint and stop at this step (resume later with --resume)')
    parser.add_argument('--data-cache', type=Path, default=None,
                        help='folder keeping the rendered scene and rain pools under names '
                             'derived from their recipe, so later runs (another model, a resume) '
                             'reuse them (default: render in memory only)')
    parser.add_argument('--photos', type=Path, default=None,
                        help='photo cache made by `stereo-derain photos` (default: '
                             '$STEREO_DERAIN_PHOTOS or ~/.cache/stereo_derain_ros/photos; '
                             "scikit-image's samples when there is none)")
    parser.add_argument('--jobs', type=int, default=1,
                        help='processes that render the pools (default: %(default)s)')
    parser.add_argument('--data-workers', type=int, default=0, metavar='N',
                        help='processes that compose batches ahead of the step, the same batches '
                             'as without them; on a GPU use most of the CPU cores (default: '
                             '%(default)s, composed by the training process)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def _model_args(items: list[str]) -> dict:
    import json

    overrides = {}
    for key, value in _key_values('--model-arg', items):
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _composition(items: list[str]) -> dict:
    overrides = {}
    for key, value in _key_values('--composition', items):
        try:
            overrides[key] = float(value)
        except ValueError:
            raise CommandError(f'--composition {key}={value}: {value!r} is not a number; '
                               'expected a share in [0, 1]') from None
    return overrides


def _key_values(option: str, items: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise CommandError(f'{option} {item!r} must look like KEY=VALUE')
        pairs.append((key, value))
    return pairs


def _resumed_config(args: argparse.Namespace):
    """Return the recipe stored in the run's checkpoint, with a changed total of steps."""
    from stereo_derain_ros.engine.errors import CheckpointError
    from stereo_derain_ros.training.trainer import CHECKPOINT_NAME, recipe_of_run, TrainConfig

    try:
        recipe = recipe_of_run(args.out / CHECKPOINT_NAME)
    except CheckpointError as error:
        raise CommandError(f'cannot resume: {error}') from None
    config = TrainConfig.from_recipe(recipe)
    if args.steps is not None and args.steps != config.steps:
        step = int(recipe['step'])
        if args.steps <= step:
            raise CommandError(f"--steps {args.steps} is not beyond the checkpoint's step {step}")
        config.steps_changes = [*config.steps_changes, [step, config.steps, args.steps]]
        config.steps = args.steps
    print(f'resuming {args.out}: model {config.model}, {config.steps} steps, recipe from the '
          'checkpoint (other recipe options are ignored)')
    return config


def _inherited_model_args(args: argparse.Namespace) -> dict:
    """Return the --init checkpoint's model config, which --model-arg then overrides.

    Fine-tuning keeps the architecture it starts from: a config option without weights (such
    as bandnet's `pool_window`) would otherwise fall back to its default unnoticed.
    """
    from stereo_derain_ros.engine.checkpoint import load_checkpoint

    if not args.init or args.init_partial:
        return {}
    _, metadata = load_checkpoint(args.init)
    return dict(metadata.get('config') or {}) if metadata['model'] == args.model else {}


def _new_config(args: argparse.Namespace):
    """Return the recipe of a new run from the command line."""
    from stereo_derain_ros.engine.errors import CheckpointError
    from stereo_derain_ros.training.trainer import CHECKPOINT_NAME, recipe_of_run, TrainConfig

    if not args.model:
        raise CommandError('--model is required (or --resume an existing run)')
    if (args.out / CHECKPOINT_NAME).exists():
        raise CommandError(f'{args.out} already holds a run; pass --resume to continue it '
                           'or choose another --out')
    try:
        init_recipe = recipe_of_run(Path(args.init)) if args.init else None
        model_args = _inherited_model_args(args) | _model_args(args.model_arg)
    except CheckpointError as error:
        raise CommandError(f'cannot start from --init: {error}') from None
    return TrainConfig(
        model=args.model, steps=args.steps or DEFAULT_STEPS, batch=args.batch,
        crop_schedule=args.crop_schedule or args.crop or DEFAULT_CROP, lr=args.lr,
        lr_min=args.lr_min, warmup=args.warmup, weight_decay=args.weight_decay,
        optimizer=args.optimizer, loss=args.loss, data=args.data, pool_size=args.pool,
        val_every=args.val_every, val_samples=args.val_samples,
        checkpoint_every=args.checkpoint_every, seed=args.seed, amp=args.amp, ema=args.ema,
        model_args=model_args, composition=_composition(args.composition), init=args.init,
        init_recipe=init_recipe, init_partial=args.init_partial, train_only=args.train_only)


def run(args: argparse.Namespace) -> int:
    from stereo_derain_ros.engine.config import check_model_name
    from stereo_derain_ros.engine.errors import EngineError
    from stereo_derain_ros.training.data import DataError, training_pools
    from stereo_derain_ros.training.trainer import Runtime, train

    # The one validator checks --model, --device and --threads now, not after the pools rendered.
    engine_config(args)
    if args.data_workers < 0:
        raise CommandError(f'--data-workers must be 0 or more, got {args.data_workers}')
    config = _resumed_config(args) if args.resume else _new_config(args)
    try:
        config.validate()
        check_model_name(config.model)
        train_pool, val_pool = training_pools(config.data, seed=config.seed,
                                              count=config.pool_size,
                                              val_count=config.val_samples,
                                              progress=not args.no_progress,
                                              cache=args.data_cache, photos=args.photos,
                                              jobs=args.jobs,
                                              composition=config.composition)
        runtime = Runtime(out=args.out, device=args.device, threads=args.threads,
                          progress=not args.no_progress,
                          stop_after_minutes=args.stop_after_minutes,
                          stop_at_step=args.stop_at_step, data_workers=args.data_workers)
        result = train(config, runtime, train_pool, val_pool, resume=args.resume)
    except (ValueError, DataError, EngineError) as error:
        raise CommandError(str(error)) from None
    if result.checkpoint is not None:
        state = 'finished' if result.finished else 'stopped (continue with --resume)'
        print(f'{state} at step {result.step}/{config.steps}: {result.checkpoint}')
    return 0
