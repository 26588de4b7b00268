"""Training loop: seeded, resumable to the exact same weights, single process or ``torchrun`` DDP.

A run lives in ``out_dir``: ``last.pt`` (the latest checkpoint, written atomically every
``ckpt_every`` steps and at the end), ``log.csv`` (one row per logged step) and ``config.json``.
``resume=True`` continues from ``last.pt``: model, optimiser, AMP scaler, RNG states and the position
inside the epoch's sample order are restored, so a killed and resumed run ends with the same weights as
an uninterrupted one (on deterministic kernels; CPU training is deterministic).

The sample order of epoch ``e`` is the ``DistributedSampler`` permutation seeded with ``seed`` and
``e``; each rank takes its share of it. Datasets are expected to be deterministic per index.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from sphsal.atomic import atomic_path, write_text
from sphsal.engine.runtime import (
    Runtime,
    collate_items,
    init_runtime,
    resize_target,
    rng_state,
    seed_everything,
    set_rng_state,
    shutdown_runtime,
    to_device,
)

CHECKPOINT_NAME = "last.pt"
LOG_NAME = "log.csv"
_LOG_FIELDS = ("step", "epoch", "loss", "lr", "grad_norm", "seconds")
LR_SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, total: int, warmup_steps: int = 0) -> float:
    """Multiplier of the base learning rate for optimisation step ``step`` (0-based) of ``total``:
    a linear ramp over the first ``warmup_steps`` steps, then 1 (``"constant"``) or a half cosine from
    1 down to 0 at the last step (``"cosine"``)."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    done = (step - warmup_steps) / max(1, total - 1 - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json`` in the run folder.

    ``lr`` and ``loss`` default to the model's own recipe (``model.default_optimizer``,
    ``model.default_loss``); ``loss`` is a spec such as ``"kld+0.5*cc"`` (see
    :func:`sphsal.models.losses.build_loss`). ``max_steps`` stops early (counted over all epochs).
    ``lr_schedule`` (:data:`LR_SCHEDULES`) and ``warmup_steps`` scale the learning rate by
    :func:`lr_factor` of the step over all ``epochs`` (``max_steps`` does not shorten it); a pure
    function of the step, so a resumed run follows it exactly.
    """

    model: str
    dataset: str = "360av-hm"
    root: str | None = None
    out_dir: str = "runs/train"
    model_kwargs: dict = field(default_factory=dict)
    dataset_kwargs: dict = field(default_factory=dict)
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 2
    lr: float | None = None
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    loss: str | None = None
    clip_grad: float | None = 5.0
    seed: int = 0
    amp: bool = True
    ckpt_every: int = 50
    log_every: int = 1
    num_workers: int = 0
    tensorboard: bool = False
    progress: bool = True
    device: str | None = None


def dataset_for_model(model, name: str, root, **options):
    """``create_dataset(name, root, **options)`` with what the model's inputs need: its clip length and
    target position in the clip (unless given) and the previous frame's ground truth for models that
    read it."""
    from sphsal.data import create_dataset

    spec = model.input_spec
    options.setdefault("clip_len", spec.clip_len)
    options.setdefault("clip_mode", spec.clip_mode)
    if spec.needs_prev_saliency:
        options.setdefault("prev_saliency", True)
    return create_dataset(name, root, **options)


def build_optimizer(model: torch.nn.Module, recipe: dict, lr: float | None = None) -> torch.optim.Optimizer:
    """The optimiser named by a model's recipe ``{"name": "adam"|"adamw"|"sgd", "lr": ..., ...}``."""
    recipe = dict(recipe)
    name = recipe.pop("name", "adam").lower()
    if lr is not None:
        recipe["lr"] = lr
    params = [p for p in model.parameters() if p.requires_grad]
    classes = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    if name not in classes:
        raise ValueError(f"unknown optimizer {name!r} in the model recipe; expected one of {sorted(classes)}")
    return classes[name](params, **recipe)


class _LogWriter:
    """``log.csv`` (rows beyond a resumed checkpoint's step are dropped) and optional TensorBoard."""

    def __init__(self, out_dir: str, resume_step: int, tensorboard: bool):
        self.path = os.path.join(out_dir, LOG_NAME)
        rows = []
        if resume_step and os.path.exists(self.path):
            with open(self.path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=_LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError("TensorBoard logging needs: pip install 'sphsal[tensorboard]'") from err
            self.tb = SummaryWriter(os.path.join(out_dir, "tensorboard"))

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=_LOG_FIELDS).writerow(row)
        if self.tb is not None:
            self.tb.add_scalar("train/loss", row["loss"], row["step"])
            self.tb.add_scalar("train/lr", row["lr"], row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _save(path: str, model, optimizer, scaler, progress: dict, config: TrainConfig) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "progress": dict(progress),
        "rng": rng_state(),
        "config": asdict(config),
        "sphsal_checkpoint": 1,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_training_state(path: str) -> dict:
    """Read a training checkpoint (``weights_only=True``); clear errors for missing or corrupt files."""
    from sphsal.models.checkpoints import read_checkpoint

    state = read_checkpoint(path)
    if "model" not in state or "progress" not in state:
        raise ValueError(f"{path} is not a sphsal training checkpoint")
    return state


def _epoch_batches(sampler: DistributedSampler, epoch: int, batch_size: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def _target_maps(batch: dict, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None]:
    saliency = resize_target(batch["saliency"], size)
    fixations = batch.get("fixations")
    if fixations is not None:
        fixations = resize_target(fixations, size, binary=True)
    return saliency, fixations


def train(config: TrainConfig, *, resume: bool = False, dataset: Dataset | None = None) -> dict:
    """Train ``config.model`` on ``config.dataset`` (or a ready ``dataset``); returns a summary dict
    with the final step, the last loss and the checkpoint path."""
    from sphsal.models import create_model
    from sphsal.models.losses import build_loss

    if config.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {config.batch_size}")
    runtime = init_runtime(config.device)
    try:
        return _train(config, runtime, resume, dataset, create_model, build_loss)
    finally:
        shutdown_runtime(runtime)


def _train(config, runtime: Runtime, resume, dataset, create_model, build_loss) -> dict:
    out_dir = config.out_dir
    ckpt_path = os.path.join(out_dir, CHECKPOINT_NAME)
    if runtime.is_main:
        os.makedirs(out_dir, exist_ok=True)
    seed_everything(config.seed)
    model = create_model(config.model, **config.model_kwargs).to(runtime.device)
    if dataset is None:
        dataset = dataset_for_model(model, config.dataset, config.root, **config.dataset_kwargs)
    if len(dataset) < config.batch_size * runtime.world_size:
        raise ValueError(f"dataset has {len(dataset)} items, fewer than one batch "
                         f"({config.batch_size} x {runtime.world_size} processes)")

    optimizer = build_optimizer(model, model.default_optimizer, config.lr)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    lr_factor(config.lr_schedule, 0, 1)  # a bad schedule name fails before any work
    loss_fn = build_loss(config.loss or model.default_loss)
    use_amp = config.amp and runtime.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    progress = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "last_loss": float("nan")}
    if resume:
        state = load_training_state(ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        progress.update(state["progress"])
        set_rng_state(state["rng"])
    if runtime.is_main:
        write_text(os.path.join(out_dir, "config.json"), json.dumps(asdict(config), indent=2))
    log = _LogWriter(out_dir, progress["step"], config.tensorboard) if runtime.is_main else None

    net = model
    if runtime.distributed:
        device_ids = [runtime.device] if runtime.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=device_ids)
    sampler = DistributedSampler(dataset, num_replicas=runtime.world_size, rank=runtime.rank, shuffle=True,
                                 seed=config.seed, drop_last=True)
    steps_per_epoch = len(sampler) // config.batch_size
    total = horizon = config.epochs * steps_per_epoch  # the schedule spans every epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    bar = tqdm(total=total, initial=progress["step"], disable=not (config.progress and runtime.is_main),
               desc=f"train {config.model}", unit="step")
    model.train()
    done = progress["step"] >= total
    while not done and progress["epoch"] < config.epochs:
        batches = _epoch_batches(sampler, progress["epoch"], config.batch_size)[progress["batch_in_epoch"]:]
        # A private generator: creating the loader must not draw from the global RNG (resume exactness).
        # Workers start from a fork server: a plain fork after numba's parallel kernels have run in this
        # process (metrics, densities) deadlocks the children's own numba kernels.
        loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate_items,
                            num_workers=config.num_workers,
                            multiprocessing_context="forkserver" if config.num_workers > 0 else None,
                            generator=torch.Generator().manual_seed(config.seed + progress["epoch"]))
        for batch in loader:
            t0 = time.perf_counter()
            batch = to_device(batch, runtime.device)
            inputs = model.prepare_inputs(batch)
            with torch.autocast(runtime.device.type, enabled=use_amp):
                pred = net(**inputs)
            saliency, fixations = _target_maps(batch, tuple(pred.shape[-2:]))
            loss = loss_fn(pred.float(), saliency, fixations)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {progress['step'] + 1}; "
                                         "lower the learning rate or check the data")
            optimizer.zero_grad(set_to_none=True)
            factor = lr_factor(config.lr_schedule, progress["step"], horizon, config.warmup_steps)
            for group, base_lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base_lr * factor
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad or math.inf)
            scaler.step(optimizer)
            scaler.update()
            progress["step"] += 1
            progress["batch_in_epoch"] += 1
            progress["last_loss"] = float(loss.detach())
            bar.update(1)
            bar.set_postfix(loss=f"{progress['last_loss']:.4f}")
            if log is not None and progress["step"] % config.log_every == 0:
                log.write({"step": progress["step"], "epoch": progress["epoch"],
                           "loss": progress["last_loss"], "lr": optimizer.param_groups[0]["lr"],
                           "grad_norm": float(grad_norm), "seconds": time.perf_counter() - t0})
            if progress["step"] >= total:
                done = True
                break
            if runtime.is_main and progress["step"] % config.ckpt_every == 0:
                _save(ckpt_path, model, optimizer, scaler, progress, config)
        else:
            progress["epoch"] += 1
            progress["batch_in_epoch"] = 0
    bar.close()
    if runtime.is_main:
        _save(ckpt_path, model, optimizer, scaler, progress, config)
        log.close()
    return {"step": progress["step"], "epoch": progress["epoch"], "loss": progress["last_loss"],
            "checkpoint": ckpt_path, "model": model}
