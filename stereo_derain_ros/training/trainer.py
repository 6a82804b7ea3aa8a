"""The training loop: schedule, validation, curves, checkpoint and exact resume, DDP, AMP.

Everything that shapes the result (model, data, crops, batch, optimiser, loss, seed, steps) is the
`TrainConfig`, stored as the recipe in every checkpoint; `--resume` rebuilds the run from that
recipe, so a run cut into several chunks trains exactly like one uninterrupted run: the learning
rate and crop size are functions of the step, the batches depend only on (seed, rank, step), and
the optimiser moments are restored from `optimizer.safetensors`.

With `ema` > 0 the checkpoint holds an exponential moving average of the weights (what is
evaluated and shipped: it averages out the last steps' noise) and `raw.safetensors` the weights
the optimiser works on, which a resume continues from.
"""

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
import time

from safetensors import safe_open
from safetensors.torch import load_file, save_file
import torch
from tqdm import tqdm

from stereo_derain_ros.data.compose import CompositionConfig
from stereo_derain_ros.data.pools import DATA_VERSION
from stereo_derain_ros.engine.checkpoint import load_checkpoint, save_checkpoint
from stereo_derain_ros.engine.devices import resolve_device
from stereo_derain_ros.engine.errors import CheckpointError
from stereo_derain_ros.engine.precision import autocast, resolve_precision
from stereo_derain_ros.evaluation.metrics import psnr, ssim
from stereo_derain_ros.models import build_model
from stereo_derain_ros.training.batches import step_batches, StepBatches
from stereo_derain_ros.training.curves import CsvLog, plot_curves
from stereo_derain_ros.training.distributed import (
    close_distributed,
    DistributedContext,
    init_distributed,
    pick_device,
)
from stereo_derain_ros.training.losses import StereoLoss
from stereo_derain_ros.training.pool import PairPool
from stereo_derain_ros.training.schedule import cosine_lr, CropSchedule

CHECKPOINT_NAME = 'last.safetensors'
RAW_WEIGHTS_NAME = 'raw.safetensors'
OPTIMIZER_NAME = 'optimizer.safetensors'
LOSS_FIELDS = ['step', 'loss', 'lr', 'crop', 'pairs_per_s', 'data_s', 'l1', 'mse', 'charbonnier',
               'ssim', 'rain_l1', 'lowpass', 'log_l1', 'log_mse']
VAL_FIELDS = ['step', 'psnr', 'ssim', 'psnr_rainy', 'ssim_rainy', 'psnr_raw']
# Validation PSNR per image is capped here: a rain-free pair scores its rainy input against
# itself at about 200 dB, and a few such pairs made the mean reference read 56 dB for inputs
# that average 30 dB. 60 dB is beyond what 8-bit images can tell apart.
VAL_PSNR_CAP_DB = 60.0
# Models and batches train in NHWC, as the engine runs them: on the CPU bandnet trains 1.17-1.2x
# faster than in NCHW (no layout copies around the per-pixel LayerNorm and 1x1 convolutions).
LAYOUT = torch.channels_last
OPTIMIZERS = ('adamw', 'adam')


@dataclass
class TrainConfig:
    """The recipe: every field that changes what the trained weights become."""

    model: str
    steps: int = 4000
    batch: int = 8
    crop_schedule: str = '96'
    lr: float = 1e-3
    lr_min: float = 1e-6
    warmup: int = 100
    weight_decay: float = 1e-4
    optimizer: str = 'adamw'
    loss: str = 'l1=1,ssim=0.2'
    grad_clip: float = 1.0
    data: str = 'synthetic'
    pool_size: int = 192
    val_every: int = 500
    val_samples: int = 6
    val_crop: int = 128
    checkpoint_every: int = 200
    log_every: int = 10
    seed: int = 0
    amp: bool = False
    # Decay of the moving average of the weights; 0 trains without one.
    ema: float = 0.0
    model_args: dict = field(default_factory=dict)
    # Shares of the synthetic training composition that differ from CompositionConfig's.
    composition: dict = field(default_factory=dict)
    # [step, old total, new total] for every resume that changed the total number of steps.
    steps_changes: list = field(default_factory=list)
    # Checkpoint whose weights start the run (fine-tuning), and that checkpoint's own recipe.
    init: str | None = None
    init_recipe: dict | None = None
    # Start from the tensors of `init` whose names and shapes match (another model's weights).
    init_partial: bool = False
    # Module names (prefixes of parameter names) whose parameters train; the rest stay as
    # loaded. Empty: everything trains.
    train_only: list = field(default_factory=list)

    def validate(self) -> None:
        if self.steps <= 0 or self.batch <= 0:
            raise ValueError(f'steps and batch must be positive, got {self.steps}, {self.batch}')
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f'unknown optimizer {self.optimizer!r}; expected one of '
                             f'{", ".join(OPTIMIZERS)}')
        if not self.lr > 0 or self.lr_min < 0:
            raise ValueError(f'lr must be > 0 and lr_min >= 0, got {self.lr}, {self.lr_min}')
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f'ema must be in [0, 1), got {self.ema}')
        CropSchedule.parse(self.crop_schedule)
        StereoLoss.from_spec(self.loss)
        CompositionConfig().overridden(self.composition)
        if self.train_only:
            trainable(build_model(self.model, **self.model_args), self.train_only)

    @classmethod
    def from_recipe(cls, recipe: dict) -> 'TrainConfig':
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in recipe.items() if key in known})


@dataclass
class Runtime:
    """How this process runs, which does not change the result: not part of the recipe."""

    out: Path
    device: str = 'auto'
    threads: int | None = None
    progress: bool = True
    stop_after_minutes: float | None = None
    stop_at_step: int | None = None
    # Worker processes composing batches ahead of the step (training.batches); 0: in-process.
    data_workers: int = 0


@dataclass
class TrainResult:
    model: torch.nn.Module
    step: int
    finished: bool
    checkpoint: Path | None


def recipe_of_run(checkpoint: Path) -> dict:
    """Return the recipe stored in a run's checkpoint (raises CheckpointError when unreadable)."""
    _, metadata = load_checkpoint(checkpoint)
    recipe = metadata.get('recipe')
    if not isinstance(recipe, dict) or 'model' not in recipe:
        raise CheckpointError(f'{checkpoint} carries no training recipe')
    return recipe


def _save_optimizer(path: Path, optimizer: torch.optim.Optimizer, step: int) -> None:
    tensors = {}
    for index, state in optimizer.state_dict()['state'].items():
        for key, value in state.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(float(value))
            tensors[f'{index}.{key}'] = tensor.detach().to('cpu').contiguous()
    temporary = path.with_suffix('.tmp')
    save_file(tensors, str(temporary), metadata={'step': str(step)})
    temporary.replace(path)


def _load_optimizer(path: Path, optimizer: torch.optim.Optimizer, step: int) -> None:
    if not path.exists():
        raise CheckpointError(f'cannot resume: {path} is missing')
    with safe_open(str(path), 'pt') as handle:
        saved_step = (handle.metadata() or {}).get('step')
    if saved_step is not None and saved_step != str(step):
        raise CheckpointError(f'cannot resume: {path} holds the optimiser of step {saved_step}, '
                              f'the checkpoint is at step {step} (a run stopped while saving)')
    tensors = load_file(str(path))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        index, key = name.split('.', 1)
        state.setdefault(int(index), {})[key] = tensor
    current = optimizer.state_dict()
    optimizer.load_state_dict({'state': state, 'param_groups': current['param_groups']})


def _make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [param for param in model.parameters() if param.requires_grad]
    if config.optimizer == 'adam':
        return torch.optim.Adam(params, lr=config.lr)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _center_windows(pool: PairPool, size: int, multiple: int) -> dict[str, torch.Tensor]:
    """Return the validation pairs as one batch of centred windows, 1:2 wide for parallax."""
    height, width = pool.min_size()
    crop_h = max(multiple, min(size, height) // multiple * multiple)
    crop_w = max(multiple, min(2 * size, width) // multiple * multiple)
    windows = {}
    for view, images in pool.images.items():
        crops = []
        for image in images:
            top = (image.shape[1] - crop_h) // 2
            left = (image.shape[2] - crop_w) // 2
            crops.append(image[:, top:top + crop_h, left:left + crop_w])
        windows[view] = torch.stack(crops).float() / 255.0
    return windows


@torch.no_grad()
def validate(model: torch.nn.Module, windows: dict[str, torch.Tensor], device: torch.device,
             chunk: int = 2) -> dict[str, float]:
    """Return mean PSNR/SSIM over both views of the validation windows, and the rainy input's.

    PSNR is capped per image at VAL_PSNR_CAP_DB, so that rain-free pairs do not swamp the mean.
    """
    was_training = model.training
    model.eval()
    scores = {'psnr': [], 'ssim': [], 'psnr_rainy': [], 'ssim_rainy': []}
    for start in range(0, windows['rainy_left'].shape[0], chunk):
        part = {view: tensor[start:start + chunk] for view, tensor in windows.items()}
        left, right = model(part['rainy_left'].to(device), part['rainy_right'].to(device))
        for output, rainy, clean in ((left, part['rainy_left'], part['clean_left']),
                                     (right, part['rainy_right'], part['clean_right'])):
            output = output.float().clamp(0, 1).cpu()
            scores['psnr'] += psnr(output, clean).clamp_max(VAL_PSNR_CAP_DB).tolist()
            scores['ssim'] += ssim(output, clean).tolist()
            scores['psnr_rainy'] += psnr(rainy, clean).clamp_max(VAL_PSNR_CAP_DB).tolist()
            scores['ssim_rainy'] += ssim(rainy, clean).tolist()
    model.train(was_training)
    return {key: sum(values) / len(values) for key, values in scores.items()}


def train(config: TrainConfig, runtime: Runtime, train_pool, val_pool: PairPool,
          *, resume: bool = False) -> TrainResult:
    """Train per `config`, writing checkpoints, CSV and PNG curves into `runtime.out`.

    `train_pool` is anything with `batch(size, crop, generator)` and `min_size()`: a
    `PairPool` read from a folder or the data layer's `ComposedRainSource`. `data_s` in
    loss.csv is the mean time per step spent waiting for the batch.
    """
    config.validate()
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    context = init_distributed(resolve_device(runtime.device).type)
    try:
        return _train(config, runtime, train_pool, val_pool, resume, context)
    finally:
        close_distributed(context)


@dataclass
class _RunState:
    """What the loop needs besides the config: model, optimiser, where to start, the logs."""

    model: torch.nn.Module
    network: torch.nn.Module
    average: 'WeightAverage | None'
    optimizer: torch.optim.Optimizer
    device: torch.device
    precision: str
    start_step: int
    wall_before: float
    loss_log: CsvLog | None
    val_log: CsvLog | None
    windows: dict[str, torch.Tensor] | None


def _check_crops(config: TrainConfig, multiple: int) -> CropSchedule:
    schedule = CropSchedule.parse(config.crop_schedule)
    for crop, _ in schedule.phases:
        if crop[0] % multiple or crop[1] % multiple:
            raise ValueError(f"crop {crop[0]}x{crop[1]} is not a multiple of {config.model}'s "
                             f'pad multiple {multiple}')
    return schedule


def _prepare(config: TrainConfig, runtime: Runtime, val_pool: PairPool, resume: bool,
             context: DistributedContext) -> _RunState:
    """Build the model and optimiser, restore a resumed run, open the logs."""
    device = pick_device(runtime.device, context)
    out = Path(runtime.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = build_model(config.model, **config.model_args)
    if config.init and not resume:
        _load_init(model, config)
    if config.train_only:
        chosen = trainable(model, config.train_only)
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name in chosen)
    optimizer = _make_optimizer(config, model)
    start_step, wall_before = 0, 0.0
    average_weights = None
    if resume:
        state_dict, metadata = load_checkpoint(out / CHECKPOINT_NAME)
        if config.ema:
            average_weights = state_dict
            state_dict, _ = load_checkpoint(out / RAW_WEIGHTS_NAME)
        model.load_state_dict(state_dict)
        start_step = int(metadata['recipe']['step'])
        wall_before = float(metadata['recipe'].get('wall_s', 0.0))
        model.to(device, memory_format=LAYOUT)
        _load_optimizer(out / OPTIMIZER_NAME, optimizer, start_step)
    model.to(device, memory_format=LAYOUT).train()
    average = WeightAverage(model, config.ema, average_weights) if config.ema else None
    network = model
    if context.enabled:
        network = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None)
    multiple = int(getattr(model, 'pad_multiple', 1))
    _check_crops(config, multiple)
    logs = (None, None, None)
    if context.is_main:
        resumed = start_step if resume else None
        logs = (CsvLog(out / 'loss.csv', LOSS_FIELDS, resumed),
                CsvLog(out / 'validation.csv', VAL_FIELDS, resumed),
                _center_windows(val_pool, config.val_crop, multiple))
    precision = resolve_precision('bf16' if config.amp else 'fp32', device)
    return _RunState(model, network, average, optimizer, device, precision, start_step,
                     wall_before, *logs)


def trainable(model: torch.nn.Module, modules: list[str]) -> set[str]:
    """Return the names of the parameters under these modules; each must hold one.

    Training a part (a new head on fixed weights, the decoder on a user's own data) costs a
    fraction of a full step: no gradient flows through the modules that stay fixed before it.
    """
    names = [name for name, _ in model.named_parameters()]
    chosen = set()
    for module in modules:
        under = {name for name in names if name == module or name.startswith(f'{module}.')}
        if not under:
            tops = sorted({name.split('.')[0] for name in names})
            raise ValueError(f'--train-only {module!r} names no parameters of this model; '
                             f'expected one of its modules, {", ".join(tops)}, or a part of '
                             'one such as decoders.0')
        chosen |= under
    return chosen


def _load_init(model: torch.nn.Module, config: TrainConfig) -> None:
    """Load `config.init` into `model`; with `init_partial`, only the tensors that fit."""
    state_dict, metadata = load_checkpoint(config.init)
    if not config.init_partial:
        if metadata['model'] != config.model:
            raise ValueError(f'--init {config.init} holds model {metadata["model"]!r}, not '
                             f'{config.model!r} (--init-partial loads the tensors that fit)')
        model.load_state_dict(state_dict)
        return
    own = model.state_dict()
    fitting = {name: tensor for name, tensor in state_dict.items()
               if name in own and own[name].shape == tensor.shape}
    if not fitting:
        raise ValueError(f'--init {config.init} has no tensor that fits {config.model!r}')
    model.load_state_dict(fitting, strict=False)


class WeightAverage:
    """An exponential moving average of a model's weights, kept in a copy of the model.

    The decay ramps up as min(decay, (1 + step) / (10 + step)), so the first steps of a run are
    not averaged with the initial weights for thousands of steps.
    """

    def __init__(self, model: torch.nn.Module, decay: float,
                 state_dict: dict[str, torch.Tensor] | None = None) -> None:
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        if state_dict is not None:
            self.model.load_state_dict(state_dict)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        decay = min(self.decay, (1.0 + step) / (10.0 + step))
        for average, current in zip(self.model.state_dict().values(),
                                    model.state_dict().values()):
            if average.is_floating_point():
                average.lerp_(current, 1.0 - decay)
            else:
                average.copy_(current)


def _optimise(config: TrainConfig, state: _RunState, criterion: StereoLoss,
              batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    batch = {view: tensor.to(state.device, non_blocking=True, memory_format=LAYOUT)
             for view, tensor in batch.items()}
    with autocast(state.device, state.precision):
        outputs = state.network(batch['rainy_left'], batch['rainy_right'])
    loss, parts = criterion(outputs, (batch['clean_left'], batch['clean_right']),
                            (batch['rainy_left'], batch['rainy_right']))
    if not torch.isfinite(loss.detach()):
        raise FloatingPointError(f'training loss became {float(loss)}; lower --lr or check the '
                                 'data')
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), config.grad_clip)
    state.optimizer.step()
    return loss, parts


def _out_of_budget(runtime: Runtime, started: float, step: int) -> bool:
    if runtime.stop_after_minutes is not None and \
            time.monotonic() - started > runtime.stop_after_minutes * 60.0:
        return True
    return runtime.stop_at_step is not None and step >= runtime.stop_at_step


def _save_run(config: TrainConfig, state: _RunState, context: DistributedContext, out: Path,
              step: int, wall: float, metrics: dict | None) -> None:
    """Write the checkpoint (the average when there is one), raw weights, optimiser, curves."""
    # The data version says which renderers drew synthetic pools (a rerun on newer code would
    # train on other rain); it is recorded, not a knob, so a resume never reads it back.
    recipe = asdict(config) | {'step': step, 'wall_s': round(wall, 1),
                               'device': str(state.device), 'world_size': context.world_size,
                               'threads': torch.get_num_threads(), 'data_version': DATA_VERSION}
    if state.average is not None:
        save_checkpoint(out / RAW_WEIGHTS_NAME, state.model, recipe=recipe)
    save_checkpoint(out / CHECKPOINT_NAME, state.average.model if state.average else state.model,
                    recipe=recipe, metrics=metrics)
    _save_optimizer(out / OPTIMIZER_NAME, state.optimizer, step)
    plot_curves(out / 'loss.csv', out / 'validation.csv', out / 'curves.png')


def _step(config: TrainConfig, state: _RunState, criterion: StereoLoss,
          batches: Iterator[dict[str, torch.Tensor]], step: int, meter: '_Meter'
          ) -> tuple[torch.Tensor, dict, float]:
    """Run optimiser step `step` on the next batch; return loss, its terms and the lr."""
    lr = cosine_lr(step, config.steps, config.lr, config.lr_min, config.warmup)
    for group in state.optimizer.param_groups:
        group['lr'] = lr
    waited = time.monotonic()
    batch = next(batches)
    meter.data_s += time.monotonic() - waited
    loss, parts = _optimise(config, state, criterion, batch)
    if state.average is not None:
        state.average.update(state.model, step)
    return loss, parts, lr


def _due(every: int, done: int, config: TrainConfig) -> bool:
    return done % every == 0 or done == config.steps


def _train(config: TrainConfig, runtime: Runtime, train_pool, val_pool: PairPool,
           resume: bool, context: DistributedContext) -> TrainResult:
    schedule = CropSchedule.parse(config.crop_schedule)
    step_pool = StepBatches(train_pool, config.batch, schedule, config.seed, context.rank)
    state = _prepare(config, runtime, val_pool, resume, context)
    out = Path(runtime.out)
    criterion = StereoLoss.from_spec(config.loss)
    started = time.monotonic()
    meter = _Meter(config, context)
    last_metrics, step, finished = None, state.start_step, True
    bar = tqdm(total=config.steps, initial=state.start_step, desc=f'train {config.model}',
               disable=not (runtime.progress and context.is_main), dynamic_ncols=True)
    steps = range(state.start_step, config.steps)
    with step_batches(step_pool, steps, runtime.data_workers,
                      pin_memory=state.device.type == 'cuda') as batches:
        for step in steps:
            if _out_of_budget(runtime, started, step):
                finished = False
                break
            crop = schedule.crop_at(step)
            loss, parts, lr = _step(config, state, criterion, batches, step, meter)
            done = step + 1
            bar.update(1)
            if not context.is_main:
                continue
            if _due(config.log_every, done, config):
                row = meter.row(done, loss, lr, crop, parts)
                state.loss_log.append(row)
                bar.set_postfix(loss=row['loss'], lr=row['lr'], crop=row['crop'],
                                pairs_s=row['pairs_per_s'], data_s=row['data_s'])
            if _due(config.val_every, done, config):
                last_metrics = _validate_run(state)
                state.val_log.append({'step': done, **{key: f'{value:.5f}'
                                                       for key, value in last_metrics.items()}})
                bar.write(f'step {done}: val PSNR {last_metrics["psnr"]:.2f} dB (rainy '
                          f'{last_metrics["psnr_rainy"]:.2f}), SSIM {last_metrics["ssim"]:.4f}')
            if _due(config.checkpoint_every, done, config):
                _save_run(config, state, context, out, done,
                          state.wall_before + time.monotonic() - started, last_metrics)
        else:
            step = config.steps
    bar.close()
    if not finished and context.is_main:
        _save_run(config, state, context, out, step,
                  state.wall_before + time.monotonic() - started, last_metrics)
    if context.enabled:
        torch.distributed.barrier()
    return TrainResult(model=state.model, step=step, finished=finished,
                       checkpoint=out / CHECKPOINT_NAME if context.is_main else None)


def _validate_run(state: _RunState) -> dict[str, float]:
    """Validate the weights that are saved; with an average, also report the raw weights."""
    if state.average is None:
        return validate(state.model, state.windows, state.device)
    metrics = validate(state.average.model, state.windows, state.device)
    return metrics | {'psnr_raw': validate(state.model, state.windows, state.device)['psnr']}


class _Meter:
    """Throughput and data-wait time between two log rows."""

    def __init__(self, config: TrainConfig, context: DistributedContext) -> None:
        self.config, self.context = config, context
        self.tick = time.monotonic()
        self.data_s = 0.0

    def row(self, done: int, loss: torch.Tensor, lr: float, crop: tuple[int, int],
            parts: dict) -> dict:
        now = time.monotonic()
        steps = self.config.log_every
        pairs_per_s = steps * self.config.batch * self.context.world_size / (now - self.tick)
        row = {'step': done, 'loss': f'{loss.item():.6f}', 'lr': f'{lr:.3e}',
               'crop': f'{crop[0]}x{crop[1]}', 'pairs_per_s': f'{pairs_per_s:.2f}',
               'data_s': f'{self.data_s / steps:.4f}',
               **{key: f'{value:.6f}' for key, value in parts.items()}}
        self.tick, self.data_s = now, 0.0
        return row
