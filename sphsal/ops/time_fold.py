"""Clips as images: the temporal taps of a clip convolution folded into channels.

A ``(B, Ci, T, H, W)`` clip convolved with a ``kt``-tap temporal kernel (time zero-padded by ``kt // 2``,
temporal stride ``stride_t``) is an image convolution of ``(B * T_out, Ci * kt, H, W)`` frames with the
weight reshaped to ``(Co, Ci * kt, ...)``: the same few large operations at any clip length. Used by the
CUDA backend of :func:`sphsal.ops.sphere_conv3d` (the CPU backend folds the same way, straight into its
flat layout: :func:`sphsal.ops._cpu_kernels.to_rows_last`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["fold_time", "unfold_time"]


def fold_time(x: torch.Tensor, kt: int, stride_t: int) -> torch.Tensor:
    """``(B, Ci, T, H, W)`` -> ``(B * T_out, Ci * kt, H, W)``: channel ``ci * kt + d`` of output frame
    ``f`` is input frame ``f * stride_t + d - kt // 2`` (zero outside the clip)."""
    pad = kt // 2
    t_out = (x.shape[2] + 2 * pad - kt) // stride_t + 1
    if kt == 1 and stride_t == 1:
        return x.transpose(1, 2).reshape(-1, x.shape[1], *x.shape[-2:])
    padded = F.pad(x, (0, 0, 0, 0, pad, pad))
    last = stride_t * (t_out - 1) + 1
    frames = torch.stack([padded[:, :, d: d + last: stride_t] for d in range(kt)], dim=3)
    return frames.transpose(1, 2).reshape(-1, x.shape[1] * kt, *x.shape[-2:])


def unfold_time(out: torch.Tensor, batch: int) -> torch.Tensor:
    """``(B * T_out, Co, H, W)`` image outputs -> the clip's ``(B, Co, T_out, H, W)``."""
    return out.view(batch, -1, *out.shape[1:]).transpose(1, 2).contiguous()
