"""`stereo-derain bench models|report`: measure and publish the package's performance numbers."""

import argparse
from pathlib import Path

from stereo_derain_ros.bench.results import DOCS_RESULTS_DIR, RESULTS_DIR, results_dir
from stereo_derain_ros.cli import CommandError
from stereo_derain_ros.cli.arguments import parse_sizes
from stereo_derain_ros.cli.engine_options import add_engine_arguments, engine_config
from stereo_derain_ros.engine.config import DEFAULT_MODEL

# What `bench node` and `bench bag` pass on to the engine (untrained follows from --weights).
BENCH_ENGINE_OPTIONS = ('model', 'weights', 'device', 'precision', 'threads')
QUICK_THREADS_HELP = ('torch intra-op CPU threads (default: torch default; quick 1, which is '
                      'steadier on shared cores)')


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(',') if name.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'bench', help='benchmark models, the node and bag processing; write results and README',
        description='Measure the numbers the README quotes, on this machine: `models` (cost of '
                    'every model), `node` (the real node over DDS), `bag` (offline bag '
                    'deraining), and `report` (rewrite the README performance section from '
                    'the committed results). Each result records the machine it came from.')
    parser.set_defaults(run=lambda args: parser.print_help() or 2)
    commands = parser.add_subparsers(title='benchmarks', metavar='BENCHMARK')
    _register_models(commands)
    _register_node(commands)
    _register_bag(commands)
    _register_data(commands)
    _register_report(commands)


def _add_output(parser: argparse.ArgumentParser) -> None:
    output = parser.add_mutually_exclusive_group()
    output.add_argument('--out-dir', type=Path,
                        help=f'folder for the JSON and markdown results (default: {RESULTS_DIR}, '
                             'git-ignored)')
    output.add_argument('--update-docs', action='store_true',
                        help=f'write the committed results in {DOCS_RESULTS_DIR} instead (then '
                             'run `bench report`)')
    parser.add_argument('--quick', action='store_true',
                        help='fewer sizes and repeats: finishes in a few minutes on 2 CPU cores')


def _register_models(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        'models', help='parameters, MACs, time and peak memory of every model, side by side',
        description='Time every model (forward pass of one stereo pair) at several sizes, with '
                    'and without a disparity band, and record parameters, MACs and peak memory; '
                    'rows that do not fit the memory limit are reported as such.')
    _add_output(parser)
    parser.add_argument('--models', type=_names,
                        help='comma-separated registry names (default: all registered)')
    parser.add_argument('--sizes', type=parse_sizes,
                        help='comma-separated WIDTHxHEIGHT (default: 640x360,1280x360,1242x375,'
                             '1280x720; --quick: 128x64,256x64)')
    parser.add_argument('--attention', type=_names, default=['banded', 'unbanded'],
                        help='attention modes for cross-view models (default: banded,unbanded)')
    parser.add_argument('--max-disparity', type=int,
                        help='band width in input pixels for banded rows (default 192, the '
                             "models' own; quick 24, the same fraction of the narrow images)")
    parser.add_argument('--dtypes', type=_names,
                        help='comma-separated fp32,fp16,bf16 (default: fp32 on CPU, all on CUDA; '
                             'bf16 runs on CPUs with AVX512-BF16 or AMX)')
    parser.add_argument('--compile', choices=('off', 'on', 'both'),
                        help='torch.compile the model (default: off on CPU, both on CUDA)')
    parser.add_argument('--backends', type=_names, default=['torch'],
                        help='torch and/or onnxruntime (fp32, uncompiled; default: torch)')
    parser.add_argument('--warmup', type=int, help='untimed runs per row (default 2; quick 1)')
    parser.add_argument('--repeats', type=int, help='timed runs per row (default 5; quick 2)')
    add_engine_arguments(parser, ('device', 'threads'), threads=QUICK_THREADS_HELP)
    parser.add_argument('--memory-limit-gb', type=float,
                        help='address-space cap per CPU row; a row above it "does not fit" '
                             '(default: 60%% of the memory available at start)')
    parser.set_defaults(run=run_models)


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    """Add the engine options that `bench node` and `bench bag` share."""
    parser.add_argument('--size', type=parse_sizes,
                        help='WIDTHxHEIGHT of the stereo images (default 1280x720; quick 320x180)')
    add_engine_arguments(
        parser, BENCH_ENGINE_OPTIONS,
        weights='checkpoint (default: untrained weights: speed does not depend on them)',
        threads=QUICK_THREADS_HELP)


def _engine_settings(args: argparse.Namespace) -> dict:
    """Return the bench config's engine fields, validated by the one engine contract."""
    weights = args.weights or ''
    config = engine_config(args, untrained=not weights,
                           threads=args.threads or (1 if args.quick else None))
    return {'model': config.model or DEFAULT_MODEL, 'weights': weights, 'device': config.device,
            'precision': config.precision, 'threads': config.threads}


def _register_node(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        'node', help='latency, transport loss, throughput and memory of the real node over DDS',
        description='Start stereo_derain_node as its own process (default QoS, the shipped Fast '
                    'DDS profile) and a plain relay, and publish stereo sets to them over DDS: '
                    'latency, inference and overhead per size (--size takes a comma-separated '
                    'list; default 640x360,1280x720), images lost in transport at --rate Hz, '
                    'then a memory soak at 3x the processing rate.')
    _add_output(parser)
    _add_engine_options(parser)
    parser.add_argument('--pings', type=int,
                        help='sets sent one at a time per size for latency (default 10; '
                             'quick 3)')
    parser.add_argument('--rate', type=float, default=10.0,
                        help='publish rate of the transport run at the largest size '
                             '(default: %(default)s Hz)')
    parser.add_argument('--duration', type=float,
                        help='seconds of the transport run (default 60; quick 4)')
    parser.add_argument('--soak', type=float,
                        help='seconds of the memory soak at 3x the processing rate '
                             '(default 60; quick 8)')
    parser.set_defaults(run=run_node)


def _register_data(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        'data', help='scene and rain rendering per pair, composition per batch, training wait',
        description='Time how fast the data layer feeds training: scenes and rain rendered per '
                    'pair into the pools (paid once, before training), composition per batch '
                    '(paid at every step), and, given a training run, the data wait per step '
                    'that the trainer logged.')
    _add_output(parser)
    parser.add_argument('--photos', type=Path, default=None,
                        help='photo cache (default: $STEREO_DERAIN_PHOTOS or '
                             "~/.cache/stereo_derain_ros/photos, else scikit-image's samples)")
    parser.add_argument('--training-run', type=Path, default=None, metavar='RUN',
                        help='a training run folder whose loss.csv gives the data wait per step')
    parser.add_argument('--repeats', type=int, default=None,
                        help='samples per stage (default 6; quick 2)')
    parser.set_defaults(run=run_data)


def run_data(args: argparse.Namespace) -> int:
    import torch

    from stereo_derain_ros.bench.data_bench import data_markdown, DataBenchConfig, run_data_bench
    from stereo_derain_ros.bench.machine import describe_machine

    torch.set_num_threads(1)  # before the machine is described, so its record says 1 thread

    repeats = args.repeats or (2 if args.quick else 6)
    if repeats < 1:
        raise CommandError(f'--repeats {repeats}: must be at least 1')
    config = DataBenchConfig(size=(128, 64) if args.quick else (512, 256), repeats=repeats,
                             crop=(32, 64) if args.quick else (128, 256), photos=args.photos,
                             run=args.training_run)
    result = run_data_bench(config, describe_machine())
    _write(args, result, data_markdown(result), 'data')
    return 0


def _register_bag(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        'bag', help='offline bag deraining throughput against the engine alone (same frames)',
        description='Render a rainy bag, then alternate passes of the engine alone and of '
                    '`stereo-derain bag` over the same frames, and report their throughput '
                    'ratio (reading, decoding and writing overhead).')
    _add_output(parser)
    _add_engine_options(parser)
    parser.add_argument('--pairs', type=int, help='stereo pairs in the bag (default 20; quick 12)')
    parser.add_argument('--batch-size', type=int, default=4,
                        help='pairs per engine call, as `stereo-derain bag` '
                             '(default: %(default)s)')
    parser.add_argument('--repeats', type=int,
                        help='alternating engine/bag passes (default 3; quick 2)')
    parser.set_defaults(run=run_bag)


def _register_report(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        'report', help="regenerate the README's performance section from committed results",
        description='Rewrite the performance section of the README between its markers from '
                    'the JSON results, or check (--check) that it is up to date.')
    parser.add_argument('--results-dir', type=Path, default=DOCS_RESULTS_DIR,
                        help='folder holding models.json, node.json, bag.json '
                             '(default: %(default)s)')
    parser.add_argument('--readme', type=Path, default=Path('README.md'),
                        help='file with the perf markers to rewrite (default: %(default)s)')
    parser.add_argument('--check', action='store_true',
                        help='only check that the README section is up to date (exit 1 if not)')
    parser.add_argument('--print', dest='print_only', action='store_true',
                        help='print the generated section instead of writing the README')
    parser.set_defaults(run=run_report)


def _model_config(args: argparse.Namespace):
    import psutil
    import torch

    from stereo_derain_ros.bench.model_bench import (
        FULL_SIZES,
        GPU_DTYPES,
        ModelBenchConfig,
        QUICK_SIZES,
    )
    from stereo_derain_ros.bench.timing import TORCH_DTYPES
    from stereo_derain_ros.engine.config import check_model_name
    from stereo_derain_ros.engine.devices import resolve_device
    from stereo_derain_ros.engine.errors import EngineError
    from stereo_derain_ros.engine.precision import cpu_has_native_bf16
    from stereo_derain_ros.models import available_models

    gpu = torch.cuda.is_available()
    try:
        device = resolve_device(args.device).type
        models = [check_model_name(name) for name in args.models or available_models()]
    except (EngineError, ValueError) as error:
        raise CommandError(f'bench models: {error}') from None
    dtypes = args.dtypes or (list(GPU_DTYPES) if device == 'cuda' else ['fp32'])
    if any(dtype not in TORCH_DTYPES for dtype in dtypes):
        raise CommandError(f'--dtypes {",".join(dtypes)}: expected some of '
                           f'{", ".join(TORCH_DTYPES)}')
    cpu_dtypes = ['fp32', 'bf16'] if cpu_has_native_bf16() else ['fp32']
    if device == 'cpu' and set(dtypes) - set(cpu_dtypes):
        raise CommandError(f'--dtypes {",".join(dtypes)}: half-precision rows run the engine\'s '
                           f'autocast path, which on this CPU runs {" and ".join(cpu_dtypes)} '
                           '(bf16 needs AVX512-BF16 or AMX; fp16 runs on CUDA)')
    if not args.backends or set(args.backends) - {'torch', 'onnxruntime'}:
        raise CommandError(f'--backends {",".join(args.backends)}: expected torch, onnxruntime '
                           'or torch,onnxruntime')
    bad_modes = [mode for mode in args.attention if mode not in ('banded', 'unbanded')]
    if bad_modes or not args.attention:
        raise CommandError('--attention: expected banded, unbanded or banded,unbanded')
    compile_choice = args.compile or ('both' if device == 'cuda' else 'off')
    compile_modes = {'off': [False], 'on': [True], 'both': [False, True]}[compile_choice]
    memory_limit_gb = args.memory_limit_gb
    if memory_limit_gb is None:
        memory_limit_gb = round(0.6 * psutil.virtual_memory().available / 2**30, 1)
    if memory_limit_gb < 1.5:
        raise CommandError(f'--memory-limit-gb {memory_limit_gb}: need at least 1.5 GB for '
                           'Python and torch alone')
    for name in ('warmup', 'repeats', 'threads'):
        value = getattr(args, name)
        if value is not None and value < (1 if name != 'warmup' else 0):
            raise CommandError(f'--{name} {value}: must be positive')
    return ModelBenchConfig(
        models=models,
        sizes=args.sizes or list(QUICK_SIZES if args.quick else FULL_SIZES),
        attention=args.attention,
        max_disparity=args.max_disparity or (24 if args.quick else 192), device=device,
        dtypes=dtypes, compile_modes=compile_modes,
        warmup=args.warmup if args.warmup is not None else (1 if args.quick else 2),
        repeats=args.repeats or (2 if args.quick else 5),
        threads=args.threads or (1 if args.quick and device == 'cpu' else None),
        memory_limit_gb=memory_limit_gb, gpu_available=gpu, backends=args.backends)


def run_models(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from stereo_derain_ros.bench.machine import describe_machine
    from stereo_derain_ros.bench.model_bench import models_markdown, plan_rows, run_model_bench

    config = _model_config(args)
    machine = describe_machine()
    with tqdm(total=len(plan_rows(config)), desc='bench models', unit='row') as progress:
        def on_row(row: dict) -> None:
            progress.set_postfix_str(f"{row['model']} {row['attention']} {row['size']}: "
                                     f"{row['status']}")
            progress.update()

        result = run_model_bench(config, machine, on_row)
    _write(args, result, models_markdown(result), 'models')
    return 0


def run_node(args: argparse.Namespace) -> int:
    from stereo_derain_ros.bench.machine import describe_machine
    from stereo_derain_ros.bench.node_bench import (
        NodeBenchConfig,
        NodeBenchError,
        run_node_bench,
    )
    from stereo_derain_ros.bench.node_report import node_markdown

    config = NodeBenchConfig(
        sizes=args.size or ([(64, 32)] if args.quick else [(640, 360), (1280, 720)]),
        pings=args.pings or (3 if args.quick else 10), transport_rate_hz=args.rate,
        transport_s=args.duration or (4.0 if args.quick else 60.0),
        soak_s=args.soak or (8.0 if args.quick else 60.0),
        **{**_engine_settings(args), 'threads': args.threads or 1})
    machine = describe_machine()
    try:
        result = run_node_bench(config, machine, lambda text: print(f'bench node: {text}',
                                                                    flush=True))
    except NodeBenchError as error:
        raise CommandError(str(error)) from None
    except ValueError as error:
        raise CommandError(f'bench node: {error}') from None
    _write(args, result, node_markdown(result), 'node')
    return 0


def run_bag(args: argparse.Namespace) -> int:
    from stereo_derain_ros.bagio import BagError
    from stereo_derain_ros.bench.bag_bench import bag_markdown, BagBenchConfig, run_bag_bench
    from stereo_derain_ros.bench.machine import describe_machine

    (width, height), = args.size or [(320, 180) if args.quick else (1280, 720)]
    for name in ('pairs', 'repeats', 'batch_size'):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CommandError(f"--{name.replace('_', '-')} {value}: must be at least 1")
    config = BagBenchConfig(
        width=width, height=height, pairs=args.pairs or (12 if args.quick else 20),
        batch_size=args.batch_size, repeats=args.repeats or (2 if args.quick else 3),
        **_engine_settings(args))
    machine = describe_machine()
    try:
        result = run_bag_bench(config, machine, lambda text: print(f'bench bag: {text}',
                                                                   flush=True))
    except (BagError, ValueError) as error:
        raise CommandError(f'bench bag: {error}') from None
    _write(args, result, bag_markdown(result), 'bag')
    return 0


def _write(args: argparse.Namespace, result: dict, markdown: str, name: str) -> None:
    from stereo_derain_ros.bench.results import write_results

    out_dir = results_dir(args.out_dir, args.update_docs)
    json_path, markdown_path = write_results(result, markdown, out_dir, name)
    print(f'wrote {json_path} and {markdown_path}')


def run_report(args: argparse.Namespace) -> int:
    from stereo_derain_ros.atomic import write_text_atomic
    from stereo_derain_ros.bench.readme_section import (
        generate_section,
        ReadmeSectionError,
        replace_section,
    )

    try:
        section = generate_section(args.results_dir)
        if args.print_only:
            print(section)
            return 0
        if not args.readme.is_file():
            raise CommandError(f'{args.readme} not found; pass --readme PATH')
        text = args.readme.read_text()
        updated = replace_section(text, section)
    except (ReadmeSectionError, ValueError) as error:
        raise CommandError(str(error)) from None
    if args.check:
        if updated != text:
            print(f'{args.readme}: performance section is out of date; run '
                  '`stereo-derain bench report`')
            return 1
        print(f'{args.readme}: performance section is up to date')
        return 0
    write_text_atomic(args.readme, updated)
    print(f'rewrote the performance section of {args.readme}')
    return 0
