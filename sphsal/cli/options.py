"""Argument helpers shared by the sub-commands: ``KEY=VALUE`` options, the model and dataset options, and
``argparse`` types that check numbers, devices and output paths while the command line is parsed (so a
bad value stops the command before any work, with ``sphsal CMD: error: argument --flag: ...``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import re

# A fraction such as 1/16 or -3/4 (``--model-arg width_mult=1/16``).
_FRACTION = re.compile(r"^\s*(-?\d+)\s*/\s*(\d+)\s*$")
_SIZE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


def parse_value(text: str, flag: str):
    """One ``KEY=VALUE`` value: JSON when it is valid JSON (``1``, ``0.5``, ``true``, ``[1, 2]``,
    ``"x"``), a float for a simple fraction such as ``1/16``, a size ``[H, W]`` for ``HxW`` (``32x64``,
    as ``--size`` takes it), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    size = _SIZE.match(text)
    if size is not None:
        return [int(size.group(1)), int(size.group(2))]
    fraction = _FRACTION.match(text)
    if fraction is None:
        return text
    numerator, denominator = (int(part) for part in fraction.groups())
    if denominator == 0:
        raise ValueError(f"{flag}: division by zero in {text!r}")
    return numerator / denominator


def parse_key_values(pairs: list[str] | None, flag: str) -> dict:
    """``["a=1", "b=x", "c=[1,2]", "d=1/16"]`` -> ``{"a": 1, "b": "x", "c": [1, 2], "d": 0.0625}``
    (values by :func:`parse_value`); ``ValueError`` naming ``flag`` for a pair without ``=``."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} expects KEY=VALUE, got {pair!r}")
        out[key] = parse_value(value, f"{flag} {key}")
    return out


def dataset_options(name: str, options: dict, flag: str = "--dataset-arg") -> dict:
    """``options`` when the dataset adapter ``name`` accepts every one of them; else a ``ValueError``
    naming the unknown ones and listing the accepted ones (the adapter's own keyword options and the
    :class:`~sphsal.data.dataset.ClipDataset` options it passes on). An unknown ``name`` is left to
    :func:`~sphsal.data.create_dataset`, which lists the registered adapters."""
    from sphsal.data import list_datasets
    from sphsal.data.dataset import ClipDataset
    from sphsal.data.registry import _FACTORIES  # sphsal.data has no public accessor for a factory
    from sphsal.models.registry import keyword_options

    if name not in list_datasets():
        return options
    accepted, passes_on = keyword_options(_FACTORIES[name], skip=1)  # root
    if passes_on:  # the adapter's **options go to the ClipDataset
        accepted |= keyword_options(ClipDataset, skip=1)[0]  # entries
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"{flag}: dataset {name!r} has no option {', '.join(unknown)}; it takes "
                         f"{', '.join(sorted(accepted))}")
    return options


def add_model_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--model", required=required, help="registered model name (see `sphsal models`)")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                        help="keyword argument for the model factory (repeatable); VALUE is JSON "
                             "(1, 0.5, true, [64, 128]), a fraction such as 1/16, or else text")


def add_dataset_options(parser: argparse.ArgumentParser, split: str) -> None:
    """``--dataset``, ``--root``, ``--split`` (default ``split``) and ``--dataset-arg`` (read them with
    :func:`dataset_arguments`)."""
    parser.add_argument("--dataset", default="360av-hm", help="dataset adapter name (default: 360av-hm)")
    parser.add_argument("--root", required=True, help="dataset root folder")
    parser.add_argument("--split", default=split, choices=("train", "test", "all"),
                        help=f"videos to use (default: {split}; the adapters hold every fifth video out "
                             "for test)")
    parser.add_argument("--dataset-arg", action="append", metavar="KEY=VALUE",
                        help="keyword option for the dataset adapter (repeatable), e.g. sigma_deg=3")


def dataset_arguments(args, **options) -> dict:
    """The dataset adapter's keyword options from ``--split``, ``options`` and ``--dataset-arg`` (checked
    by :func:`dataset_options`); a ``--dataset-arg`` that repeats one of the others is a ``ValueError``."""
    extra = parse_key_values(args.dataset_arg, "--dataset-arg")
    options = {"split": args.split, **options}
    repeated = sorted(set(extra) & set(options))
    if repeated:
        flags = ", ".join("--" + key.replace("_", "-") for key in repeated)
        raise ValueError(f"--dataset-arg {', '.join(repeated)}: give it as {flags} instead")
    return dataset_options(args.dataset, {**options, **extra})


# ---------------------------------------------------------------------- argparse types
def _number(text: str, kind, minimum, strict: bool):
    """``kind(text)`` (finite), ``> minimum`` when ``strict`` else ``>= minimum``; otherwise an
    ``ArgumentTypeError`` that argparse prints after the flag's name."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        what = "an integer" if kind is int else "a finite number"
        raise argparse.ArgumentTypeError(f"expected {what} {'>' if strict else '>='} {minimum}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1."""
    return _number(text, int, 1, strict=False)


def non_negative_int(text: str) -> int:
    """``argparse`` type: an integer >= 0."""
    return _number(text, int, 0, strict=False)


def positive_float(text: str) -> float:
    """``argparse`` type: a finite number > 0."""
    return _number(text, float, 0.0, strict=True)


def non_negative_float(text: str) -> float:
    """``argparse`` type: a finite number >= 0."""
    return _number(text, float, 0.0, strict=False)


def probability(text: str) -> float:
    """``argparse`` type: a number in ``[0, 1]``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text!r}")
    return value


def device(text: str) -> str:
    """``argparse`` type: a torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``) that exists on
    this machine; returned in torch's spelling."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device (cpu, cuda, cuda:N, mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine "
                                             "(torch.cuda.is_available() is False); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {torch.cuda.device_count()} CUDA "
                                             "device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available on this machine; use --device cpu")
    return str(dev)


def output_file(text: str) -> str:
    """``argparse`` type: a file to write: not an existing folder, and its folder can be created (see
    :func:`_creatable`)."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is an existing folder; expected a file name")
    return _creatable(text, os.path.dirname(os.path.abspath(text)))


def check_outputs(source: str | None, outputs: list[tuple[str, str]]) -> None:
    """``ValueError`` before any work when an output file is an existing folder or would replace the
    input ``source`` (None: no input file) or another output: ``outputs`` lists each path to write with
    its description (e.g. ``[("out.mp4", "--out"), ("out.png", "the PNG still beside --out")]``)."""
    seen: dict[str, str] = {}
    for path, what in outputs:
        if os.path.isdir(path):
            raise ValueError(f"{what} {path!r} is an existing folder; expected a file name")
        if source is not None and os.path.exists(path) and os.path.exists(source) \
                and os.path.samefile(source, path):
            raise ValueError(f"{what} {path!r} is the input file {source!r}; choose another output")
        key = os.path.normcase(os.path.abspath(path))
        if key in seen:
            raise ValueError(f"{what} {path!r} is also {seen[key]}: one file cannot be both; choose another "
                             "output name")
        seen[key] = what


def output_dir(text: str) -> str:
    """``argparse`` type: a folder to write into: an existing folder, or one that can be created."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is an existing file; expected a folder")
    return _creatable(text, os.path.abspath(text))


def _creatable(text: str, folder: str) -> str:
    """``text`` (to be written into ``folder``, its own folder or itself) unless the nearest existing one
    of ``folder`` and its ancestors is a file or a folder this process may not write into (found before
    any work, not when the results are saved)."""
    parent = folder
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(f"cannot create {text!r}: {parent!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: no write permission in {parent!r}")
    return text
