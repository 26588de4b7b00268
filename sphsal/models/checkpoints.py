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
import re
import warnings
import zipfile
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from sphsal._checks import check_input_file
from sphsal.atomic import atomic_path
from sphsal.models.registry import stored_model_kwargs

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "load_original_checkpoint",
           "plain_value", "mapping_differences", "format_differences"]

FORMAT = "sphsal-model"
VERSION = 1

#: Leaf types ``torch.load(..., weights_only=True)`` reads back (exact types: subclasses such as
#: ``np.float64`` or an ``IntEnum`` are pickled as their own class and cannot be read).
_PLAIN_LEAVES = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.Size)

#: How the files ``torch.save`` writes begin: a zip archive, or (the format before PyTorch 1.6) a pickle
#: whose first value is this magic number (little-endian in the pickle's first bytes).
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def plain_value(value, name: str = "value"):
    """``value`` as ``torch.load(..., weights_only=True)`` can read it back: numpy scalars become Python
    numbers, paths strings, dicts / lists / tuples / sets are converted item by item; tensors and plain
    numbers and strings are kept. Anything else (a numpy array, an arbitrary object) is a ``ValueError``
    naming ``name`` (e.g. ``extra['best']``) and its type."""
    if isinstance(value, torch.Tensor) or type(value) in _PLAIN_LEAVES:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {plain_value(k, f"a key of {name}"): plain_value(v, f"{name}[{k!r}]")
                for k, v in value.items()}
    if isinstance(value, set):
        return {plain_value(v, f"an item of {name}") for v in value}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):  # a namedtuple is a class
        return (list if isinstance(value, list) else tuple)(plain_value(v, f"{name}[{i}]")
                                                            for i, v in enumerate(value))
    hint = " (store torch.as_tensor(x) or x.tolist())" if isinstance(value, np.ndarray) else ""
    raise ValueError(f"{name} is a {type(value).__module__}.{type(value).__qualname__}, which a checkpoint "
                     "loaded with weights_only=True cannot hold; use tensors, numbers, strings, bools, None "
                     f"and dicts / lists / tuples of them{hint}")


def _comparable(value):
    """``value`` with tuples as lists and numpy scalars / paths as plain values, for equality tests (a
    checkpoint keeps tuples where JSON and the command line give lists)."""
    if isinstance(value, Mapping):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


#: Shown by :func:`mapping_differences` for a key one side does not have.
MISSING = "<not set>"


def mapping_differences(old: Mapping, new: Mapping, keys=None) -> dict:
    """``{key: (old value, new value)}`` for the ``keys`` (default: those of either mapping) whose values
    differ; tuples and lists with equal items are equal, a key absent on one side shows as
    :data:`MISSING`."""
    keys = list(dict.fromkeys([*old, *new])) if keys is None else keys
    return {k: (old.get(k, MISSING), new.get(k, MISSING)) for k in keys
            if _comparable(old.get(k, MISSING)) != _comparable(new.get(k, MISSING))}


def format_differences(differences: Mapping, old: str = "old", new: str = "new") -> str:
    """``"key: old_value (old) vs new_value (new); ..."`` for :func:`mapping_differences`' result."""
    return "; ".join(f"{k}: {a!r} ({old}) vs {b!r} ({new})" for k, (a, b) in differences.items())


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *,
                    optimizer: torch.optim.Optimizer | None = None, step: int | None = None,
                    extra: Mapping | None = None) -> None:
    """Write ``model``'s weights (and optionally the optimiser state, a step count and ``extra``
    plain values: numbers, strings, lists, dicts, tensors) to ``path`` atomically (temp file + rename,
    fsync-ed). The model's registry name and keyword arguments (set by
    :func:`sphsal.models.create_model`) are stored so :func:`load_checkpoint` can rebuild it.

    ``extra`` and the model's keyword arguments go through :func:`plain_value` (numpy scalars become
    numbers, paths strings); a value ``weights_only=True`` loading could not read is a ``ValueError``
    raised before ``path`` is touched, so a previous checkpoint there stays intact.
    """
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, np.integer))):
        raise ValueError(f"step must be an int or None, got {step!r}")
    state = {
        "format": FORMAT,
        "version": VERSION,
        "model_name": getattr(model, "model_name", None),
        "model_kwargs": plain_value(dict(getattr(model, "model_kwargs", {})), "model.model_kwargs"),
        "state_dict": model.state_dict(),
        "step": None if step is None else int(step),
        "extra": plain_value(dict(extra or {}), "extra"),
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _why_unreadable(path: str, err: Exception) -> str:
    """Why ``torch.load(path, weights_only=True)`` raised ``err``, in one line, from a look at the file:
    empty, not a PyTorch file, truncated or corrupt, or holding objects a weights-only load refuses.
    torch's advice to retry with ``weights_only=False`` (which runs any code a corrupt or hostile file
    holds) is left out."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as os_err:
        return os_err.strerror or str(os_err)
    if not head:
        return "it is empty (an interrupted write or copy?)"
    if not head.startswith(_ZIP_MAGIC) and _LEGACY_MAGIC not in head:
        return "it is not a PyTorch checkpoint (corrupt, or another kind of file?)"
    if head.startswith(_ZIP_MAGIC) and not zipfile.is_zipfile(path):
        return "it is truncated: its zip archive has no end (an interrupted write or copy?)"
    text = str(err)
    refused = re.search(r"GLOBAL (\S+) was not an allowed global", text)
    if refused:
        return (f"it holds a {refused[1]} object, which loading with weights_only=True refuses (a checkpoint "
                "may hold only tensors, numbers, strings and containers of them)")
    unpickler = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
    # torch's words up to the end of its first sentence: what follows is advice (weights_only=False among it).
    detail = unpickler[1] if unpickler else re.split(r"\.\s+(?=[A-Z])", text.strip().split("\n")[0])[0]
    detail = detail.strip()
    if "weights_only" in detail:
        return f"loading with weights_only=True refuses it ({detail})"
    if len(detail) > 160:
        detail = detail[:157] + "..."
    return f"it is corrupt or truncated ({type(err).__name__}{': ' + detail if detail else ''})"


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint file with ``weights_only=True`` onto the CPU; ``FileNotFoundError`` /
    ``ValueError`` naming the file when it is missing or not a loadable checkpoint (saying whether it is
    empty, not a PyTorch file, truncated or corrupt, or holds objects such a load refuses)."""
    path = check_input_file(path, "checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise ValueError(f"cannot read checkpoint {path}: {_why_unreadable(path, err)}") from None
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    return state


def _model_entries(state: dict, path: str) -> tuple[dict, str | None, dict]:
    """``(state_dict, model_name, model_kwargs)`` of a sphsal model or training checkpoint, checked:
    ``ValueError`` naming the file when an entry is missing or of the wrong type. Keyword arguments an
    older sphsal stored without an option whose default changed since get its earlier default
    (:func:`~sphsal.models.registry.stored_model_kwargs`)."""
    if state.get("format") == FORMAT:
        if "state_dict" not in state:
            raise ValueError(f"checkpoint {path} has no 'state_dict' entry (the model weights)")
        weights, name, kwargs = state["state_dict"], state.get("model_name"), state.get("model_kwargs")
    elif "model" in state and isinstance(state.get("config"), dict):
        config = state["config"]
        weights, name, kwargs = state["model"], config.get("model"), config.get("model_kwargs")
    else:
        raise ValueError(f"{path} is not a sphsal checkpoint (no 'format': {FORMAT!r} and no training-state "
                         f"'model' + 'config'); for a published model's weights use load_original_checkpoint")
    if not isinstance(weights, Mapping) or not all(
            isinstance(k, str) and (isinstance(v, torch.Tensor) or k.endswith("_extra_state"))
            for k, v in weights.items()):
        raise ValueError(f"checkpoint {path}: the model weights are not a dict of tensors "
                         f"(got {type(weights).__name__})")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"checkpoint {path}: the model name is a {type(name).__name__}, expected a string")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ValueError(f"checkpoint {path}: the model keyword arguments are a {type(kwargs).__name__}, "
                         "expected a dict")
    return dict(weights), name, stored_model_kwargs(name, dict(kwargs or {}))


def checkpoint_model(path: str | os.PathLike) -> tuple[str | None, dict]:
    """The registry name (None when not recorded) and keyword arguments of the model a sphsal checkpoint
    holds; errors as :func:`load_checkpoint`."""
    path = os.fspath(path)
    _, name, kwargs = _model_entries(read_checkpoint(path), path)
    return name, kwargs


def _optimizer_entry(state: dict, path: str, optimizer: torch.optim.Optimizer) -> dict:
    """The stored optimiser state, checked against ``optimizer`` (parameter groups and their sizes)
    without changing it; ``ValueError`` naming the file otherwise."""
    saved = state.get("optimizer")
    if saved is None:
        raise ValueError(f"checkpoint {path} holds no optimizer state")
    groups = saved.get("param_groups") if isinstance(saved, Mapping) else None
    well_formed = (isinstance(groups, list) and isinstance(saved.get("state"), Mapping)
                   and all(isinstance(g, Mapping) and isinstance(g.get("params"), list) for g in groups))
    if not well_formed:
        raise ValueError(f"checkpoint {path}: the optimizer state is not an optimizer state_dict "
                         "('state' and 'param_groups' with 'params')")
    stored = [len(g["params"]) for g in groups]
    own = [len(g["params"]) for g in optimizer.param_groups]
    if stored != own:
        raise ValueError(f"checkpoint {path}: the optimizer state does not fit the optimizer (parameters per "
                         f"group: {stored} stored, {own} in the optimizer)")
    return dict(saved)


def _build_model(path: str, name: str | None, kwargs: dict) -> nn.Module:
    """The model a checkpoint records (:func:`sphsal.models.create_model`), errors naming the file."""
    from sphsal.models.registry import create_model

    if not name:
        raise ValueError(f"checkpoint {path} does not name its model; pass the model to load into")
    try:
        return create_model(name, **kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {path}: cannot rebuild its model create_model({name!r}, **{kwargs!r}): "
                         f"{err}") from err


def _model_differences(path: str, model: nn.Module, name: str | None, kwargs: dict) -> dict:
    """Compare the checkpoint's model name and keyword arguments with ``model``'s (set by
    :func:`sphsal.models.create_model`): another name is a ``ValueError``; returns the differing keyword
    arguments (``{key: (checkpoint, model)}``; empty when either side does not know its name)."""
    own_name = getattr(model, "model_name", None)
    if not name or not own_name:
        return {}
    if name != own_name:
        raise ValueError(f"checkpoint {path} holds a {name!r} model, not {own_name!r}: use --model {name} "
                         f"(in Python create_model({name!r}, ...), or load_checkpoint(path) to rebuild it)")
    return mapping_differences(kwargs, dict(getattr(model, "model_kwargs", {}) or {}))


def _check_fit(path: str, model: nn.Module, weights: dict, strict: bool, differences: dict) -> None:
    """``ValueError`` naming the file when ``weights`` do not fit ``model`` (missing or, with ``strict``,
    unexpected names; shape mismatches), checked before anything is loaded."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights] if strict else []
    unexpected = [k for k in weights if k not in own] if strict else []
    shapes = [f"{k}: {tuple(v.shape)} stored vs {tuple(own[k].shape)}" for k, v in weights.items()
              if k in own and isinstance(v, torch.Tensor) and isinstance(own[k], torch.Tensor)
              and v.shape != own[k].shape]
    if not (missing or unexpected or shapes):
        return
    problems = [f"{what} {items[:8]}{' ...' if len(items) > 8 else ''}" for what, items in
                (("missing", missing), ("unexpected", unexpected), ("shape mismatches", shapes)) if items]
    hint = f"; its model options differ: {format_differences(differences, 'checkpoint', 'model')}" \
        if differences else ""
    raise ValueError(f"checkpoint {path} does not fit the model "
                     f"{getattr(model, 'model_name', type(model).__name__)}: {'; '.join(problems)}{hint}")


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, *,
                    optimizer: torch.optim.Optimizer | None = None, strict: bool = True) -> nn.Module:
    """Load a sphsal checkpoint into ``model`` (or, when ``model`` is None, into a new model built
    with :func:`sphsal.models.create_model` from the stored name and keyword arguments) and return it.

    ``optimizer``, when given, gets the stored optimiser state (``ValueError`` if there is none).
    Weights load with ``weights_only=True``. The whole checkpoint is checked before ``model`` or
    ``optimizer`` is changed; every problem is a ``ValueError`` naming the file:

    * missing or malformed entries, a stored model that cannot be rebuilt (unknown name, bad options);
    * a model built by :func:`~sphsal.models.create_model` under another registry name than the stored
      one (e.g. a ``spherical_unet`` checkpoint into a ``planar_unet``, whose parameter names agree);
    * weights that do not fit (mismatched names or shapes, listed), an optimizer state that does not fit.

    Keyword arguments that differ from the stored ones while the weights still fit (e.g. another
    ``frame_size``, or ``use_aem=False`` to run an AEM model on stereo audio) are allowed, since
    running trained weights under other input options is a legitimate use, but give a ``UserWarning``
    naming the file and the differing options, as the outputs may differ from the trained model's.
    """
    path = os.fspath(path)
    state = read_checkpoint(path)
    weights, name, kwargs = _model_entries(state, path)
    optimizer_state = None if optimizer is None else _optimizer_entry(state, path, optimizer)
    differences = {}
    if model is None:
        model = _build_model(path, name, kwargs)
    else:
        differences = _model_differences(path, model, name, kwargs)
    _check_fit(path, model, weights, strict, differences)
    model.load_state_dict(weights, strict=strict)
    if differences:
        warnings.warn(f"checkpoint {path} was saved from {name!r} built with other options than the model "
                      f"it is loaded into ({format_differences(differences, 'checkpoint', 'model')}); the "
                      "weights fit, but outputs may differ from the trained model's",
                      UserWarning, stacklevel=2)
    if optimizer_state is not None:
        try:
            optimizer.load_state_dict(optimizer_state)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"checkpoint {path}: cannot load its optimizer state: {err}") from err
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
