"""Training loop: seeded, resumable to the exact same weights, single process or ``torchrun`` DDP.

A run lives in ``out_dir``: ``last.pt`` (the latest checkpoint, written atomically every
``ckpt_every`` steps and at the end), ``log.csv`` (one row per logged step) and ``config.json``.
``resume=True`` continues from ``last.pt``: model, optimiser, AMP scaler, RNG states and the position
inside the epoch's sample order are restored, so a killed and resumed run ends with the same weights as
an uninterrupted one (on deterministic kernels; CPU training is deterministic). A resumed run must use
the stored settings except :data:`RESUMABLE_FIELDS` (paths compare as the folders they name) and the
same number of processes; a new run refuses a folder that already holds ``last.pt`` unless
``overwrite=True``, which deletes that ``last.pt`` (and TensorBoard event files) before the new
``config.json`` and ``log.csv`` are written: the folder never pairs one run's checkpoint or events with
another's settings or log. A non-finite prediction, loss or gradient norm stops training with a
``FloatingPointError`` before the optimiser step, and non-finite weights (an overflowing step) before a
checkpoint is written, so no checkpoint ever holds NaN weights.

The sample order of epoch ``e`` is the ``DistributedSampler`` permutation seeded with ``seed`` and
``e``; each rank takes its share of it. Datasets are expected to be deterministic per index.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import os
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from sphsal._checks import check_integer, check_number
from sphsal.atomic import atomic_path, write_text
from sphsal.data.augment import augment_batch, check_audio_layout
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
TENSORBOARD_DIR = "tensorboard"
# The largest learning rate accepted: far above any useful one, and low enough for the optimisers to
# convert to float32 after dividing it by a bias correction (Adam's 1 - beta1 ** step, down to 1 - beta1;
# 3e38 overflowed there, a RuntimeError inside torch).
_LARGEST_LR = 1e30
_LOG_FIELDS = ("step", "epoch", "loss", "lr", "grad_norm", "seconds")
LR_SCHEDULES = ("constant", "cosine", "step")
#: The videos a run trains on when ``dataset_kwargs`` names no ``"split"`` (the CLI's ``--split`` default).
DEFAULT_SPLIT = "train"
#: Dataset adapter options that name a folder: compared on resume as the folder they resolve to.
_PATH_DATASET_OPTIONS = ("cache_dir",)
#: TrainConfig fields that may differ from the stored ones when resuming: they say how long to train and
#: how to run, not what is trained. Every other field (model and its options, data, batch size, seed,
#: loss, optimiser and schedule settings, gradient clipping) must match, and so must ``epochs`` under a
#: schedule other than ``"constant"`` (it sets the schedule's horizon).
_EPOCHS_FIXED = "; epochs only under a constant learning-rate schedule"
RESUMABLE_FIELDS = ("out_dir", "epochs", "max_steps", "ckpt_every", "log_every", "num_workers", "device",
                    "amp", "tensorboard", "progress", "overwrite")
#: Dataset options that may change on resume: what a run that stopped at a blank map or a short
#: soundtrack needs to go on (the items before the stop are the same either way).
_RESUMABLE_DATASET_OPTIONS = ("empty_truth", "short_audio")


def lr_factor(schedule: str, step: int, total: int, warmup_steps: int = 0) -> float:
    """Multiplier of the base learning rate for optimisation step ``step`` (0-based) of ``total``:
    a linear ramp over the first ``warmup_steps`` steps, then 1 (``"constant"``), a half cosine from
    1 down to 0 at the last step (``"cosine"``) or 1, 0.1 from half and 0.01 from three quarters of
    the steps after the warm-up (``"step"``, the decay of STAViS's released training, which came one
    epoch earlier: after 29 and 44 of its 60 epochs)."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        after, rest = step - warmup_steps, total - warmup_steps
        return 0.1 ** ((2 * after >= rest) + (4 * after >= 3 * rest))
    done = (step - warmup_steps) / max(1, total - 1 - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json`` in the run folder.

    ``lr`` and ``loss`` default to the model's own recipe (``model.default_optimizer``,
    ``model.default_loss``; a recipe's ``lr_scales`` keep their ratios to a given ``lr``, see
    :func:`build_optimizer`); ``loss`` is a spec such as ``"kld+0.5*cc"`` (see
    :func:`sphsal.models.losses.build_loss`). ``max_steps`` stops early (counted over all epochs).
    ``lr_schedule`` (:data:`LR_SCHEDULES`) and ``warmup_steps`` scale the learning rate by
    :func:`lr_factor` of the step over all ``epochs`` (``max_steps`` does not shorten it); a pure
    function of the step, so a resumed run follows it exactly. ``clip_grad``: the largest gradient norm
    (``None`` or 0: no clipping). ``overwrite``: a new run may replace a run folder's ``last.pt`` (by
    default that is refused: resume it or choose another ``out_dir``); the old ``last.pt`` and
    ``tensorboard/events.out.tfevents.*`` files are deleted when the new run starts, so an overwrite
    interrupted before its first checkpoint leaves nothing to resume (start it again).

    ``hflip`` (a probability) and ``random_yaw`` augment each training item: mirrored left-right, and
    turned about the polar axis by a random whole number of ERP columns, its ambisonics mirrored and
    turned to match (:mod:`sphsal.data.augment`; ``random_yaw`` only for ERP 360° data); drawn from
    the seed, the process and the step, so a resumed run draws the same. Audio that cannot be mirrored
    or turned is refused before the run starts. STAViS's released training mirrored with probability
    0.5.

    ``dataset_kwargs`` go to the dataset adapter; without a ``"split"`` the run trains on the
    ``"train"`` split as the adapter defines it (as ``sphsal train`` does: every fifth video held out
    for test, or the published folds for ``stavis``), and the config records it.

    Values are checked on construction (:meth:`validate`): ``ValueError`` naming the field.
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
    hflip: float = 0.0
    random_yaw: bool = False
    seed: int = 0
    amp: bool = True
    ckpt_every: int = 50
    log_every: int = 1
    num_workers: int = 0
    tensorboard: bool = False
    progress: bool = True
    device: str | None = None
    overwrite: bool = False

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Check every field (``ValueError`` naming it); paths become strings (``root`` absolute) and numpy
        numbers plain ones, so the config saves as JSON and in a checkpoint."""
        for name in ("model", "dataset", "out_dir"):
            setattr(self, name, _text_field(name, getattr(self, name)))
        if isinstance(self.device, torch.device):
            self.device = str(self.device)
        for name in ("root", "loss", "device"):
            setattr(self, name, _text_field(name, getattr(self, name), optional=True))
        if self.root is not None:  # recorded absolute: a resume from another folder reads the same data
            self.root = os.path.abspath(self.root)
        for name in ("model_kwargs", "dataset_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"TrainConfig.{name} must be a dict, got {getattr(self, name)!r}")
        self.dataset_kwargs = {"split": DEFAULT_SPLIT, **self.dataset_kwargs}
        for name in ("epochs", "batch_size", "ckpt_every", "log_every"):
            setattr(self, name, check_integer(getattr(self, name), f"TrainConfig.{name}"))
        self.max_steps = check_integer(self.max_steps, "TrainConfig.max_steps", optional=True)
        for name in ("warmup_steps", "num_workers", "seed"):
            setattr(self, name, check_integer(getattr(self, name), f"TrainConfig.{name}", minimum=0))
        self.lr = check_number(self.lr, "TrainConfig.lr", optional=True)
        if self.lr is not None and self.lr > _LARGEST_LR:  # the optimisers convert it to float32
            raise ValueError(f"TrainConfig.lr must be at most {_LARGEST_LR:g}, got {self.lr:g}")
        self.clip_grad = check_number(self.clip_grad, "TrainConfig.clip_grad", inclusive=True, optional=True)
        self.hflip = check_number(self.hflip, "TrainConfig.hflip", inclusive=True)
        if self.hflip > 1:
            raise ValueError(f"TrainConfig.hflip must be a probability in [0, 1], got {self.hflip!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"TrainConfig.lr_schedule must be one of {LR_SCHEDULES}, "
                             f"got {self.lr_schedule!r}")
        for name in ("amp", "tensorboard", "progress", "overwrite", "random_yaw"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TrainConfig.{name} must be True or False, got {getattr(self, name)!r}")


def _text_field(name: str, value, optional: bool = False) -> str | None:
    """A non-empty string (paths are converted), or None when ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"TrainConfig.{name} must be a non-empty string{' or None' if optional else ''}, "
                         f"got {value!r}")
    return value


def dataset_for_model(model, name: str, root, **options):
    """``create_dataset(name, root, **options)`` with what the model's inputs need: its clip length and
    target position in the clip (unless given) and the ground truth of the earlier frame a model reads
    (``prev_saliency``: its ``input_spec.prev_saliency_interval`` frames back; another given value is a
    ``ValueError``: the model would train on one interval and predict with another)."""
    from sphsal.data import create_dataset

    spec = model.input_spec
    options.setdefault("clip_len", spec.clip_len)
    options.setdefault("clip_mode", spec.clip_mode)
    if spec.needs_prev_saliency:
        start = options.setdefault("prev_saliency_start", spec.prev_saliency_start)
        if start != spec.prev_saliency_start:
            raise ValueError(f"{getattr(model, 'model_name', type(model).__name__)} starts a video with the "
                             f"{spec.prev_saliency_start!r} map, but the dataset option prev_saliency_start="
                             f"{start!r} gives another; leave it out and set the model's prev_start "
                             "(--model-arg prev_start=...) instead")
        given = options.setdefault("prev_saliency", spec.prev_saliency_interval)
        if isinstance(given, int) and int(given) != spec.prev_saliency_interval:
            name, interval = getattr(model, "model_name", type(model).__name__), spec.prev_saliency_interval
            raise ValueError(f"{name} reads the map of {interval} frame(s) earlier, but the dataset option "
                             f"prev_saliency={given!r} gives another; leave it out and set the model's "
                             "prev_interval (--model-arg prev_interval=N) instead")
    return create_dataset(name, root, **options)


def build_optimizer(model: torch.nn.Module, recipe: dict, lr: float | None = None) -> torch.optim.Optimizer:
    """The optimiser named by a model's recipe ``{"name": "adam"|"adamw"|"sgd", "lr": ..., ...}`` (``lr``,
    when given, replaces the recipe's). The recipe's optional ``"lr_scales"``, ``[[pattern, scale],
    ...]``, trains each parameter whose name matches a pattern (``fnmatch``, the first that matches) at
    ``scale`` times the learning rate, as published recipes fine-tune a pretrained backbone slower than
    new layers; one parameter group per scale, in the order of the parameters."""
    recipe = dict(recipe)
    name = recipe.pop("name", "adam").lower()
    scales = recipe.pop("lr_scales", ())
    if lr is not None:
        recipe["lr"] = lr
    for pattern, scale in scales:
        check_number(scale, f"the lr_scales scale of {pattern!r}", inclusive=True)
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for key, param in model.named_parameters():
        if param.requires_grad:
            scale = next((float(s) for pattern, s in scales if fnmatch.fnmatchcase(key, pattern)), 1.0)
            groups.setdefault(scale, []).append(param)
    if "lr" not in recipe:  # the optimiser's own default
        if scales:
            raise ValueError("a model recipe with lr_scales needs an lr to scale")
        params = [{"params": group} for group in groups.values()]
    else:
        params = [{"params": group, "lr": recipe["lr"] * scale} for scale, group in groups.items()]
    if not params:
        name_of_model = getattr(model, "model_name", None) or type(model).__name__
        raise ValueError(f"model {name_of_model!r} has no trainable parameters: there is nothing to train")
    classes = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    if name not in classes:
        raise ValueError(f"unknown optimizer {name!r} in the model recipe; expected one of {sorted(classes)}")
    return classes[name](params, **recipe)


def _require_tensorboard():
    """TensorBoard's ``SummaryWriter`` class; ``ImportError`` saying what to install without it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("TensorBoard logging needs: pip install 'sphsal[tensorboard]'") from err
    return SummaryWriter


def _remove_previous_run(out_dir: str) -> None:
    """Deletes ``out_dir``'s checkpoint and the TensorBoard event files in its ``tensorboard`` folder
    (other files there are kept), before a new run writes its ``config.json`` and ``log.csv``."""
    ckpt_path = os.path.join(out_dir, CHECKPOINT_NAME)
    if os.path.exists(ckpt_path):
        os.remove(ckpt_path)
    tb_dir = os.path.join(out_dir, TENSORBOARD_DIR)
    if os.path.isdir(tb_dir):
        for name in os.listdir(tb_dir):
            if name.startswith("events.out.tfevents."):
                os.remove(os.path.join(tb_dir, name))


class _LogWriter:
    """``log.csv`` (rows beyond a resumed checkpoint's step are dropped) and optional TensorBoard."""

    def __init__(self, out_dir: str, resume_step: int, tensorboard: bool):
        self.path = os.path.join(out_dir, LOG_NAME)
        rows = self._read(resume_step) if resume_step and os.path.exists(self.path) else []
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=_LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        self.tb = None
        if tensorboard:  # a resumed run's events logged after its checkpoint are dropped by TensorBoard
            self.tb = _require_tensorboard()(os.path.join(out_dir, TENSORBOARD_DIR),
                                             purge_step=resume_step + 1 if resume_step else None)

    def _read(self, resume_step: int) -> list[dict]:
        """The existing log's rows up to ``resume_step``; rows of later steps (logged after the checkpoint
        was written) are dropped without a further look. A log that is not UTF-8 text, does not start with
        the header or has a malformed row is a ``ValueError`` naming the file and the line, raised before
        the log is rewritten, so no row is lost."""
        with open(self.path, "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data.count(b"\n", 0, err.start) + 1
            raise self._damaged(line, f"byte 0x{data[err.start]:02x} is not UTF-8 text") from None
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        header = ",".join(_LOG_FIELDS)
        if text and lines[0] != header:
            raise self._damaged(1, f"{lines[0][:80]!r} is not the header {header!r}")
        rows = []
        for number, line in enumerate(lines[1:], 2):
            if not line:
                continue
            try:
                values = next(csv.reader([line]))
            except csv.Error as err:
                raise self._damaged(number, str(err).split(" - ")[0]) from None
            try:
                step = int(values[0])
            except ValueError:
                raise self._damaged(number, f"step {values[0][:80]!r} is not a whole number") from None
            if step <= resume_step:
                self._check_row(values, number)
                rows.append(dict(zip(_LOG_FIELDS, values)))
        return rows

    def _check_row(self, values: list[str], line: int) -> None:
        """``ValueError`` (:meth:`_damaged`) unless a row's ``values`` are one per field, with a
        whole-number epoch and numbers in the other fields."""
        if len(values) != len(_LOG_FIELDS):
            raise self._damaged(line, f"{len(values)} fields, expected {len(_LOG_FIELDS)}")
        for name, value in zip(_LOG_FIELDS[1:], values[1:]):
            try:
                (int if name == "epoch" else float)(value)
            except ValueError:
                kind = "a whole number" if name == "epoch" else "a number"
                raise self._damaged(line, f"{name} {value[:80]!r} is not {kind}") from None

    def _damaged(self, line: int, problem: str) -> ValueError:
        """The error for a log that cannot be resumed: the file, the line and what is wrong there."""
        return ValueError(f"training log {self.path} is damaged at line {line}: {problem}; repair it or move "
                          "it away to resume (the checkpoint is not affected)")

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=_LOG_FIELDS).writerow(row)
        if self.tb is not None:
            self.tb.add_scalar("train/loss", row["loss"], row["step"])
            self.tb.add_scalar("train/lr", row["lr"], row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _check_weights(model, step: int, ckpt_path: str) -> None:
    """``FloatingPointError`` naming the first parameters or buffers that are not finite after ``step``
    (an optimiser step with finite gradients can still overflow them), so that no checkpoint holds them;
    ``ckpt_path`` keeps the last finite state."""
    bad = [name for name, value in model.state_dict().items()
           if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if bad:
        names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise FloatingPointError(f"the weights {names} became non-finite (NaN or inf) at step {step}; "
                                 f"{ckpt_path} was not overwritten: lower the learning rate")


def _save(path: str, model, optimizer, scaler, progress: dict, config: TrainConfig, world_size: int,
          recipe: dict) -> None:
    """Write the training state to ``path`` atomically (what ``resume=True`` restores), with the number
    of processes (``world_size``) that trained it and the resolved ``recipe`` (:func:`_recipe`)."""
    from sphsal.models.checkpoints import plain_value

    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "progress": dict(progress),
        "rng": rng_state(),
        "config": plain_value(asdict(config), "TrainConfig"),
        "world_size": world_size,
        "recipe": recipe,
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


def _config_defaults() -> dict:
    """The default value of every :class:`TrainConfig` field that has one."""
    return {f.name: f.default if f.default is not MISSING else f.default_factory()
            for f in fields(TrainConfig) if f.default is not MISSING or f.default_factory is not MISSING}


def _same_folders(stored: dict, now: dict) -> dict:
    """``stored`` with ``root`` and the folder-valued dataset options (:data:`_PATH_DATASET_OPTIONS`) set
    to ``now``'s spelling where both name the same folder (``data``, ``data/``, ``/abs/data``, a
    symbolic link to it), so that only a real difference is reported, in the spelling given."""
    def same(a, b) -> bool:
        return isinstance(a, str) and isinstance(b, str) and os.path.realpath(a) == os.path.realpath(b)

    stored = dict(stored)
    if same(stored.get("root"), now.get("root")):
        stored["root"] = now["root"]
    if isinstance(stored.get("dataset_kwargs"), dict) and isinstance(now.get("dataset_kwargs"), dict):
        options = stored["dataset_kwargs"] = dict(stored["dataset_kwargs"])
        for key in _PATH_DATASET_OPTIONS:
            if same(options.get(key), now["dataset_kwargs"].get(key)):
                options[key] = now["dataset_kwargs"][key]
    return stored


def check_resumable(path: str, stored, config: TrainConfig) -> None:
    """``ValueError`` naming the checkpoint ``path`` and the differing settings (stored vs now) when
    ``config`` changes what the stored run trains; only :data:`RESUMABLE_FIELDS` may differ, and ``root``
    and folder-valued dataset options compare as the folders they resolve to; the dataset options
    ``empty_truth`` and ``short_audio`` may change too (a run that stopped at a blank map or a short
    soundtrack resumes with ``"next"`` / ``"silence"``: the items before it are the same either way).
    Fields an older checkpoint lacks count as their defaults, stored ``dataset_kwargs`` without a
    ``"split"`` as ``"all"`` (the adapters' default, which such a run trained on), and stored
    ``model_kwargs`` without an option whose default changed since as its earlier default
    (:func:`~sphsal.models.registry.stored_model_kwargs`; ``config``'s are compared as
    :func:`~sphsal.models.create_model` records them)."""
    from sphsal.models.checkpoints import format_differences, mapping_differences
    from sphsal.models.registry import recorded_model_kwargs, stored_model_kwargs

    if not isinstance(stored, dict):
        raise ValueError(f"training checkpoint {path} holds no 'config'; cannot check that resuming it "
                         "trains the same run")
    stored = {**_config_defaults(), **stored}
    if isinstance(stored["model_kwargs"], dict):  # as they built the stored model
        stored["model_kwargs"] = stored_model_kwargs(stored["model"], stored["model_kwargs"])
    if isinstance(stored["dataset_kwargs"], dict):
        stored["dataset_kwargs"] = {"split": "all", **stored["dataset_kwargs"]}
    now = asdict(config)
    if isinstance(now["model_kwargs"], dict):
        now["model_kwargs"] = recorded_model_kwargs(now["model"], now["model_kwargs"])
    for settings in (stored, now):
        if isinstance(settings["dataset_kwargs"], dict):
            settings["dataset_kwargs"] = {key: value for key, value in settings["dataset_kwargs"].items()
                                          if key not in _RESUMABLE_DATASET_OPTIONS}
    resumable = set(RESUMABLE_FIELDS) - ({"epochs"} if config.lr_schedule != "constant" else set())
    keys = [f.name for f in fields(TrainConfig) if f.name not in resumable]
    differences = mapping_differences(_same_folders(stored, now), now, keys)
    if differences:
        raise ValueError(f"cannot resume {path} with other settings than it was trained with: "
                         f"{format_differences(differences, 'checkpoint', 'now')}. Resume with the stored "
                         f"settings (only {', '.join(f for f in RESUMABLE_FIELDS if f in resumable)} may "
                         f"change{_EPOCHS_FIXED if 'epochs' not in resumable else ''}) or start a new run in "
                         "another output folder")


def _recipe(config: TrainConfig, model) -> dict:
    """The loss spec and optimiser recipe a run trains with: the config's, else the model's defaults
    (which a later sphsal version may change)."""
    from sphsal.models.checkpoints import plain_value

    recipe = {"loss": config.loss or model.default_loss, "optimizer": dict(model.default_optimizer)}
    return plain_value(recipe, "recipe")


def check_recipe(path: str, stored, recipe: dict) -> None:
    """``ValueError`` naming the checkpoint ``path`` when the loss or optimiser ``recipe`` a resumed run
    would train with differs from the stored one (a model's defaults changed since it was written);
    checkpoints written before the recipe was stored are not checked."""
    from sphsal.models.checkpoints import format_differences, mapping_differences

    differences = mapping_differences(stored, recipe) if isinstance(stored, dict) else {}
    if differences:
        raise ValueError(f"cannot resume {path}: the model's training recipe changed since it was written "
                         f"({format_differences(differences, 'checkpoint', 'now')}); resume it with the "
                         "sphsal version that wrote it or start a new run")


def check_world_size(path: str, state: dict, world_size: int) -> None:
    """``ValueError`` naming the checkpoint ``path`` when it was trained by another number of processes
    than ``world_size``: each process takes its share of an epoch's sample order, so another count
    replays or skips samples and changes the steps per epoch. A checkpoint written before the count was
    stored does not say it and is accepted (as before: refusing could block the correct resume of a
    multi-process run)."""
    stored = state.get("world_size")
    if stored is None or stored == world_size:
        return
    how = ("without torchrun (one process)" if stored == 1
           else f"under torchrun with {stored} processes (--nproc_per_node={stored})")
    raise ValueError(f"cannot resume {path} with {world_size} process(es): it was trained with {stored} "
                     "(the sample order of an epoch is shared among the processes, so another count would "
                     f"replay or skip samples); resume it {how}, or start a new run in another output folder")


def _check_fresh_run(ckpt_path: str, config: TrainConfig) -> None:
    """A new run must not silently replace a run folder's checkpoint (and log)."""
    if os.path.exists(ckpt_path) and not config.overwrite:
        raise ValueError(f"run folder {os.path.dirname(ckpt_path) or '.'} already holds {CHECKPOINT_NAME}: "
                         "continue that run with --resume (resume=True), start it over with --overwrite "
                         "(overwrite=True), or choose another output folder")


def _restore(path: str, state: dict, model, optimizer, scaler, progress: dict) -> None:
    """Load a training checkpoint's model, optimiser, AMP scaler, progress and RNG states."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (KeyError, RuntimeError, ValueError) as err:
        raise ValueError(f"training checkpoint {path} does not fit the model and optimiser built from its "
                         f"config: {err}") from err
    if state.get("scaler"):  # empty when saved without AMP (e.g. on the CPU): the scaler starts afresh
        scaler.load_state_dict(state["scaler"])
    progress.update(state["progress"])
    set_rng_state(state["rng"])


def train(config: TrainConfig, *, resume: bool = False, dataset: Dataset | None = None) -> dict:
    """Train ``config.model`` on ``config.dataset`` (or a ready ``dataset``); returns a summary dict
    with the final step, this process's last loss, the checkpoint path, the model and ``main`` (whether
    this is the process that writes the run folder: the only one, or rank 0 under ``torchrun``).

    ``resume=True`` continues the run in ``config.out_dir`` (``ValueError`` when its settings differ,
    see :func:`check_resumable`); otherwise a folder that already holds ``last.pt`` is refused unless
    ``config.overwrite``; a resumed run must have as many processes as the stored one
    (:func:`check_world_size`). ``FloatingPointError`` when the prediction, the loss or the gradient
    norm is not finite (with AMP, non-finite gradients are the scaler's business: it skips that step).
    """
    from sphsal.models import create_model
    from sphsal.models.losses import build_loss
    from sphsal.models.registry import recorded_model_kwargs

    config.validate()
    # stored as create_model records them: options whose default may change are always written down
    config = replace(config, model_kwargs=recorded_model_kwargs(config.model, config.model_kwargs))
    runtime = init_runtime(config.device)
    try:
        return _train(config, runtime, resume, dataset, create_model, build_loss)
    finally:
        shutdown_runtime(runtime)


def _augmented(config: TrainConfig, batch: dict, rank: int, step: int) -> dict:
    """``batch`` augmented as ``config`` asks (:func:`~sphsal.data.augment.augment_batch`), drawn from a
    generator seeded by the run's seed, the process's rank and the step (0-based): a resumed run draws
    the same, and DDP's processes draw independently."""
    if config.hflip == 0 and not config.random_yaw:
        return batch
    seed = int(np.random.SeedSequence([config.seed, rank, step]).generate_state(1, np.uint64)[0] >> 1)
    return augment_batch(batch, hflip=config.hflip, random_yaw=config.random_yaw,
                         generator=torch.Generator().manual_seed(seed))


def _optimizer_step(config, model, net, optimizer, scaler, loss_fn, batch: dict, device: torch.device,
                    step: int) -> tuple[float, float]:
    """One optimisation step on ``batch`` (``step`` counts from 1); returns ``(loss, grad_norm)``.
    Stops before changing the weights when the prediction, the loss or the gradient norm is not finite
    (with AMP the scaler skips steps with non-finite gradients itself)."""
    batch = to_device(batch, device)
    inputs = model.prepare_inputs(batch)
    with torch.autocast(device.type, enabled=scaler.is_enabled()):
        pred = net(**inputs)
    if not torch.isfinite(pred).all():  # diverged weights: the loss would only refuse its input
        raise FloatingPointError(f"the model's prediction became non-finite (NaN or inf) at step {step}; "
                                 "lower the learning rate or check the data")
    saliency, fixations = _target_maps(batch, tuple(pred.shape[-2:]))
    loss = loss_fn(pred.float(), saliency, fixations)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {loss.item()} at step {step}; "
                                 "lower the learning rate or check the data")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad or math.inf))
    if not math.isfinite(grad_norm) and not scaler.is_enabled():
        raise FloatingPointError(f"gradient norm became {grad_norm} at step {step} (loss "
                                 f"{float(loss.detach()):.6g}); the weights were not updated and nothing was "
                                 "saved: lower the learning rate or check the model and the data")
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach()), grad_norm


def _train(config, runtime: Runtime, resume, dataset, create_model, build_loss) -> dict:
    out_dir = config.out_dir
    ckpt_path = os.path.join(out_dir, CHECKPOINT_NAME)
    state = None
    if resume:
        if not os.path.exists(ckpt_path):
            raise FileNotFoundError(f"checkpoint not found: {ckpt_path}; the run in {out_dir} has no "
                                    "checkpoint to resume (it stopped before its first one, or an overwrite "
                                    "deleted the old one): start it again without resume")
        state = load_training_state(ckpt_path)
        check_resumable(ckpt_path, state.get("config"), config)
        check_world_size(ckpt_path, state, runtime.world_size)
    else:
        _check_fresh_run(ckpt_path, config)
    seed_everything(config.seed)
    model = create_model(config.model, **config.model_kwargs).to(runtime.device)
    # A model without trainable parameters is refused here, before the dataset is read.
    optimizer = build_optimizer(model, model.default_optimizer, config.lr)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    # the learning rate logged: the recipe's (its lr_scales multiply it for some parameters)
    recipe_lr = model.default_optimizer.get("lr", base_lrs[0]) if config.lr is None else config.lr
    recipe = _recipe(config, model)
    if state is not None:
        check_recipe(ckpt_path, state.get("recipe"), recipe)
    loss_fn = build_loss(recipe["loss"])
    if dataset is None:
        dataset = dataset_for_model(model, config.dataset, config.root, **config.dataset_kwargs)
    if len(dataset) < config.batch_size * runtime.world_size:
        raise ValueError(f"dataset has {len(dataset)} items, fewer than one batch "
                         f"({config.batch_size} x {runtime.world_size} processes)")
    # Before anything is written to the run folder: options that the items check only when they are
    # built (e.g. a dataset's sigma_deg) and TensorBoard's import fail here, not after config.json and
    # log.csv of an overwritten run were replaced.
    first = dataset[0]
    audio = first.get("audio") if isinstance(first, dict) else None
    if isinstance(audio, torch.Tensor) and audio.dim() == 2:  # the augmentations can move this audio
        check_audio_layout(audio.shape[0], hflip=config.hflip > 0, random_yaw=config.random_yaw)
    if config.tensorboard and runtime.is_main:
        _require_tensorboard()

    use_amp = config.amp and runtime.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    progress = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "last_loss": float("nan")}
    if state is not None:
        _restore(ckpt_path, state, model, optimizer, scaler, progress)
    if runtime.is_main:
        from sphsal.models.checkpoints import plain_value

        os.makedirs(out_dir, exist_ok=True)
        if state is None:  # overwrite: the old run's checkpoint and TensorBoard events go first, so they
            _remove_previous_run(out_dir)  # never pair with this run's config.json and log.csv
        write_text(os.path.join(out_dir, "config.json"),
                   json.dumps(plain_value(asdict(config), "TrainConfig"), indent=2))
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
            factor = lr_factor(config.lr_schedule, progress["step"], horizon, config.warmup_steps)
            for group, base_lr in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base_lr * factor
            batch = _augmented(config, batch, runtime.rank, progress["step"])
            loss, grad_norm = _optimizer_step(config, model, net, optimizer, scaler, loss_fn, batch,
                                              runtime.device, progress["step"] + 1)
            progress["step"] += 1
            progress["batch_in_epoch"] += 1
            progress["last_loss"] = loss
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if log is not None and progress["step"] % config.log_every == 0:
                log.write({"step": progress["step"], "epoch": progress["epoch"], "loss": loss,
                           "lr": recipe_lr * factor, "grad_norm": grad_norm,
                           "seconds": time.perf_counter() - t0})
            if progress["step"] >= total:
                done = True
                break
            if progress["step"] % config.ckpt_every == 0:
                _check_weights(model, progress["step"], ckpt_path)  # every rank: DDP's weights are equal
                if runtime.is_main:
                    _save(ckpt_path, model, optimizer, scaler, progress, config, runtime.world_size, recipe)
        else:
            progress["epoch"] += 1
            progress["batch_in_epoch"] = 0
    bar.close()
    _check_weights(model, progress["step"], ckpt_path)
    if runtime.is_main:
        _save(ckpt_path, model, optimizer, scaler, progress, config, runtime.world_size, recipe)
        log.close()
    if runtime.distributed:
        # Leave together: a rank that tore its process group down while the main one still saved
        # aborted now and then ("terminate called without an active exception").
        torch.distributed.barrier()
    return {"step": progress["step"], "epoch": progress["epoch"], "loss": progress["last_loss"],
            "checkpoint": ckpt_path, "model": model, "main": runtime.is_main}
