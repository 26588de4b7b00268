"""Dataset registry: adapters register a factory under a name; users create datasets by name.

    >>> from sphsal.data import create_dataset, list_datasets
    >>> list_datasets()
    ['360av-hm', 'eccv18', 'folder', 'pvs-hm', 'salient360', 'stavis', 'vr-eyetracking']
    >>> ds = create_dataset("360av-hm", "/data/360AV-HM", condition="ambix", size=(256, 512))
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

__all__ = ["register_dataset", "create_dataset", "list_datasets"]

_FACTORIES: dict[str, Callable] = {}
_ADAPTERS_PACKAGE = "sphsal.data.adapters"


def register_dataset(name: str):
    """Decorator registering ``factory(root, **options) -> torch Dataset`` under ``name``."""

    def wrap(factory):
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"a dataset named {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory

    return wrap


def _load_adapters() -> None:
    importlib.import_module(_ADAPTERS_PACKAGE)


def list_datasets() -> list[str]:
    """Names of the registered dataset adapters, sorted."""
    _load_adapters()
    return sorted(_FACTORIES)


def create_dataset(name: str, root, **options):
    """Build the dataset ``name`` from the files under ``root``; ``options`` go to the adapter (see each
    adapter's docstring).

    Every adapter takes ``size``, ``split`` and the :class:`~sphsal.data.dataset.ClipDataset` options
    (``clip_len``, ``frame_step``, ``clip_mode``, ``clip_step``, ``transform``, ``prev_saliency``,
    ``sample_rate``: the audio resampled to one rate in Hz, ``empty_truth``: ``"next"`` for datasets with
    blank maps). The
    video-file adapters (``360av-hm``, ``vr-eyetracking``, ``pvs-hm``, ``salient360``) also take ``fps``;
    ``eccv18``, ``stavis`` and ``folder`` index the frames as stored. Every adapter with audio (all but
    ``eccv18``) takes ``short_audio``: ``"error"`` (default: a soundtrack shorter than its video by more
    than one frame raises ``ValueError`` naming the file) or ``"silence"`` (read as silence past its
    end, with a warning). An unknown option raises ``TypeError`` naming it.
    """
    _load_adapters()
    if name not in _FACTORIES:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[name](root, **options)
