"""Model checkpoints: safe to load (``torch.load(..., weights_only=True)``), written atomically.

A sphsal model checkpoint is a dict of tensors and plain values::

    {"format": "sphsal-model", "version": 1, "model_name": str | None, "model_kwargs": dict,
     "state_dict": {...}, "step": int | None, "optimizer": {...} (optional), "extra": {...}}

:func:`load_checkpoint` also reads the engine's training checkpoints (``{"model": state_dict,
"config": {"model": name, "model_kwargs": ...}, ...}``). :func:`load_original_checkpoint` maps a
checkpoint released with a published model onto a sphsal model through the model's
``map_original_state_dict`` method.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from sphsal.atomic import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "load_original_checkpoint"]

FORMAT = "sphsal-model"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *,
                    optimizer: torch.optim.Optimizer | None = None, step: int | None = None,
                    extra: Mapping | None = None) -> None:
    """Write ``model``'s weights (and optionally the optimiser state, a step count and ``extra``
    plain values: numbers, strings, lists, dicts, tensors) to ``path`` atomically (temp file + rename).
    The model's registry name and keyword arguments (set by :func:`sphsal.models.create_model`) are
    stored so :func:`load_checkpoint` can rebuild it."""
    state = {
        "format": FORMAT,
        "version": VERSION,
        "model_name": getattr(model, "model_name", None),
        "model_kwargs": dict(getattr(model, "model_kwargs", {})),
        "state_dict": model.state_dict(),
        "step": step,
        "extra": dict(extra or {}),
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint file with ``weights_only=True`` onto the CPU; ``FileNotFoundError`` /
    ``ValueError`` naming the file when it is missing or not a loadable checkpoint."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise ValueError(f"cannot read checkpoint {path} (weights_only=True): {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    return state


def _model_entries(state: dict, path: str) -> tuple[dict, str | None, dict]:
    """``(state_dict, model_name, model_kwargs)`` of a sphsal model or training checkpoint."""
    if state.get("format") == FORMAT:
        return state["state_dict"], state.get("model_name"), dict(state.get("model_kwargs") or {})
    if isinstance(state.get("model"), dict) and isinstance(state.get("config"), dict):
        config = state["config"]
        return state["model"], config.get("model"), dict(config.get("model_kwargs") or {})
    raise ValueError(f"{path} is not a sphsal checkpoint (no 'format': {FORMAT!r} and no training-state "
                     f"'model' + 'config'); for a published model's weights use load_original_checkpoint")


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, *,
                    optimizer: torch.optim.Optimizer | None = None, strict: bool = True) -> nn.Module:
    """Load a sphsal checkpoint into ``model`` (or, when ``model`` is None, into a new model built
    with :func:`sphsal.models.create_model` from the stored name and keyword arguments) and return it.

    ``optimizer``, when given, gets the stored optimiser state (``ValueError`` if there is none).
    Weights load with ``weights_only=True``; a model of another architecture gives a ``ValueError``
    listing the mismatched names.
    """
    path = os.fspath(path)
    state = read_checkpoint(path)
    weights, name, kwargs = _model_entries(state, path)
    if model is None:
        if not name:
            raise ValueError(f"checkpoint {path} does not name its model; pass the model to load into")
        from sphsal.models.registry import create_model

        model = create_model(name, **kwargs)
    try:
        model.load_state_dict(weights, strict=strict)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not fit the model "
                         f"{getattr(model, 'model_name', type(model).__name__)}: {err}") from err
    if optimizer is not None:
        if "optimizer" not in state:
            raise ValueError(f"checkpoint {path} holds no optimizer state")
        optimizer.load_state_dict(state["optimizer"])
    return model


def _unwrap_original(state: dict) -> dict:
    """The parameter dict of a released checkpoint: inside ``state_dict`` / ``model`` if nested,
    without the ``module.`` prefix that ``DataParallel`` adds."""
    for key in ("state_dict", "model", "net"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("the checkpoint's weights are not a flat dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def load_original_checkpoint(model: nn.Module, path_or_state_dict) -> list[str]:
    """Load a published model's released weights into ``model``.

    ``path_or_state_dict`` is a file (read with ``weights_only=True``) or a dict; nested
    ``state_dict`` and ``module.`` prefixes are handled. The model's ``map_original_state_dict``
    renames the entries (e.g. :meth:`sphsal.models.avs360.AVS360.map_original_state_dict`). Every
    parameter and buffer of the model must be covered (BatchNorm ``num_batches_tracked`` counters,
    which old checkpoints lack, excepted) and shapes must match; otherwise ``ValueError`` lists the
    problems. Returns the released keys that were not used.
    """
    mapper = getattr(model, "map_original_state_dict", None)
    if mapper is None:
        raise ValueError(f"no published checkpoint layout is known for {type(model).__name__}")
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        state = read_checkpoint(path_or_state_dict)
    elif isinstance(path_or_state_dict, Mapping):
        state = dict(path_or_state_dict)
    else:
        raise ValueError("path_or_state_dict must be a path or a dict, got "
                         f"{type(path_or_state_dict).__name__}")
    mapped, ignored = mapper(_unwrap_original(state))
    own = model.state_dict()
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    wrong = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in mapped.items()
             if tuple(v.shape) != tuple(own[k].shape)]
    if missing or wrong:
        raise ValueError(f"published checkpoint does not fit {type(model).__name__}: missing {missing[:8]}"
                         f"{' ...' if len(missing) > 8 else ''}; shape mismatches {wrong[:8]}")
    model.load_state_dict({**own, **mapped})
    return ignored
