"""Helpers for ``map_original_state_dict``: renaming a released checkpoint's entries by prefix."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

__all__ = ["rename_prefixes", "fold_time_weight"]


def rename_prefixes(state: Mapping[str, torch.Tensor], prefixes: Mapping[str, str], own: Mapping,
                    convert: Callable[[str, torch.Tensor], torch.Tensor] | None = None
                    ) -> tuple[dict, list[str]]:
    """Rename ``state``'s keys by the first matching ``{released prefix: own prefix}`` entry.

    Keys that match no prefix, or whose new name is not in ``own`` (the model's state dict), are
    returned as ignored. ``convert(new_key, value)``, when given, reshapes a value to the model's
    layout. Returns ``(mapped, ignored_keys)``.
    """
    mapped, ignored = {}, []
    for key, value in state.items():
        new = next((dst + key[len(src):] for src, dst in prefixes.items() if key.startswith(src)), None)
        if new is None or new not in own:
            ignored.append(key)
            continue
        mapped[new] = convert(new, value) if convert else value
    return mapped, ignored


def fold_time_weight(weight: torch.Tensor) -> torch.Tensor:
    """A ``Conv3d`` weight ``(Co, Ci, f, k, k)`` whose temporal kernel equals its temporal stride, as the
    ``(Co, Ci * f, 1, k, k)`` weight of the same convolution on time-folded input (channel ``c * f + t``
    holds frame ``t`` of channel ``c``; see :func:`sphsal.models.vinet.fold_time`)."""
    co, ci, f = weight.shape[:3]
    return weight.reshape(co, ci * f, 1, *weight.shape[3:])
