"""`stereo-derain eval`: score a model (and baselines) on a dataset, write markdown/JSON/figure."""

import argparse
from pathlib import Path

from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.cli.engine_options import (
    add_engine_arguments,
    build_engine,
    ENGINE_OPTIONS,
)

# The positional MODEL_OR_CHECKPOINT (and each --compare) names the model and its weights.
SPEC_OPTIONS = ('model', 'weights')


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'eval', help='evaluate a model or checkpoint: PSNR/SSIM and SGBM disparity downstream',
        description='Evaluate MODEL_OR_CHECKPOINT (a registry name, using its packaged weights, '
                    'or a .safetensors checkpoint) on DATASET (a folder in a supported layout, '
                    'or heldout:SET with SET one of light, medium, heavy, photos-light, '
                    'photos-medium, photos-heavy, their -mono variants, clean, clean-mono, or '
                    'real-light, real-medium, real-heavy, real-clean: the real camera pairs '
                    'reserved for independent evaluation, see `stereo-derain photos --reserved`). '
                    'The table always includes the rainy input.')
    parser.add_argument('model', metavar='MODEL_OR_CHECKPOINT',
                        help='registry model name or .safetensors checkpoint to evaluate')
    parser.add_argument('dataset', metavar='DATASET',
                        help='dataset folder, or heldout:SET for a packaged held-out set')
    parser.add_argument('--out', type=Path, default=Path('eval_out'),
                        help='folder for report.md, report.json and figure.png '
                             '(default: %(default)s)')
    parser.add_argument('--compare', action='append', default=[], metavar='MODEL_OR_CHECKPOINT',
                        help='another model or checkpoint for the same table (repeatable)')
    parser.add_argument('--baseline', action='store_true',
                        help='add the classical stereo baseline (min of a view and the other '
                             'view warped by SGBM disparity)')
    parser.add_argument('--limit', type=int, default=None,
                        help='evaluate the first N samples (default: all)')
    parser.add_argument('--photos', type=Path, default=None,
                        help='photo cache for heldout:photos-*, heldout:clean* and heldout:real-* '
                             '(default: $STEREO_DERAIN_PHOTOS or '
                             '~/.cache/stereo_derain_ros/photos)')
    parser.add_argument('--figures', type=int, default=3,
                        help='samples shown in figure.png, 0 for no figure (default: %(default)s)')
    parser.add_argument('--self-paired', action='store_true',
                        help='add a row per model with each view fed as both views: what the '
                             'second view is worth to a stereo model (without --view-fusion, '
                             'which needs a second view)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    add_engine_arguments(parser, [name for name in ENGINE_OPTIONS if name not in SPEC_OPTIONS],
                         untrained='allow a model name without packaged weights (random init; '
                                   'testing)')
    # Scores compare methods, so they are taken at full precision unless asked otherwise.
    parser.set_defaults(run=run, precision='fp32')


def _is_checkpoint(spec: str) -> bool:
    return spec.endswith('.safetensors') or Path(spec).is_file()


def _engine_derainer(spec: str, args: argparse.Namespace, **overrides):
    if _is_checkpoint(spec):
        engine = build_engine(args, model=None, weights=spec, untrained=False, **overrides)
    else:
        engine = build_engine(args, model=spec, weights=None, **overrides)

    def derain(left, right):
        return engine.derain(left, right, 'rgb')

    label = engine.model_name
    if _is_checkpoint(spec):
        label += f' ({spec})'
    elif args.untrained:
        label += ' (untrained)'
    return label, derain


def _self_paired(derain):
    """Derain each view with a copy of itself as the other view, so no stereo cue exists."""

    def derain_each_alone(left, right):
        return derain(left, left)[0], derain(right, right)[1]

    return derain_each_alone


def run(args: argparse.Namespace) -> int:
    from stereo_derain_ros.data.specs import DataError, open_dataset
    from stereo_derain_ros.evaluation.report import markdown_table, per_pair_table, write_report
    from stereo_derain_ros.evaluation.runner import (
        evaluate,
        identity_derainer,
        RAINY,
        StereoMinDerainer,
    )

    # Engines first: a bad model, checkpoint or device fails before any data is read.
    derainers = {RAINY: identity_derainer}
    labels = []
    for spec in [args.model, *args.compare]:
        label, derain = _engine_derainer(spec, args)
        derainers[label] = derain
        labels.append(label)
        if args.self_paired:
            # The fusion is a stereo-only step: with a view as its own match it would take
            # everything the network darkened for scene, so the row runs the network alone.
            alone = (_engine_derainer(spec, args, view_fusion=False)[1] if args.view_fusion
                     else derain)
            derainers[f'{label}, each view paired with itself'] = _self_paired(alone)
    try:
        dataset = open_dataset(args.dataset, args.photos)
    except DataError as error:
        raise CommandError(str(error)) from None
    if args.limit is not None:
        dataset = [dataset[index] for index in range(min(args.limit, len(dataset)))]
    if args.baseline:
        from stereo_derain_ros.evaluation.disparity import num_disparities_for
        from stereo_derain_ros.evaluation.runner import ground_truth_disparity

        derainers['stereo min baseline'] = StereoMinDerainer(
            num_disparities_for(ground_truth_disparity(dataset[0])))
    result = evaluate(derainers, dataset, figure_method=labels[0],
                      figure_count=args.figures, progress=not args.no_progress)
    details = {'model': args.model, 'dataset': args.dataset, 'samples': len(dataset),
               'device': args.device}
    paths = write_report(result, args.out, title=f'Evaluation of {labels[0]} on {args.dataset}',
                         details=details)
    print(markdown_table(result.summary()))
    print(per_pair_table(result))
    print('wrote ' + ', '.join(str(path) for path in paths.values()))
    return 0
