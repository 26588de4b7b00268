"""Clips as images: a clip convolution as one image convolution, time folded into channels.

A ``(B, Ci, T, H, W)`` clip convolved with a ``kt``-tap temporal kernel (time zero-padded by ``kt // 2``,
temporal stride ``stride_t``) is an image convolution of ``(B * T_out, Ci * kt, H, W)`` frames with the
weight reshaped to ``(Co, Ci * kt, ...)`` (:func:`fold_time`): the same few large operations at any clip
length. Used by the CUDA backend of :func:`sphsal.ops.sphere_conv3d` (the CPU backend folds the same
way, straight into its flat layout: :func:`sphsal.ops._cpu_kernels.to_rows_last`).

A clip shorter than its kernel (``T < kt``, as in AVS360's short clips: a 7-tap stem on 3 frames, 3-tap
layers on 1 or 2) is instead one image convolution of ``B`` images of ``Ci * T`` channels, its frames,
with ``T_out * Co`` output channels (:func:`frames_weight`, :func:`unfold_frames`): ``T / kt`` of the
work, since the folded taps that fall on the zero padding are never formed. Used by
:func:`sphsal.ops.sphere_conv3d` on its CPU and CUDA backends and by the planar
:class:`sphsal.nn.ClipConv3d`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["frames_out", "fold_time", "unfold_time", "frames_weight", "unfold_frames",
           "conv_frames_as_channels"]


def frames_out(frames: int, kt: int, stride_t: int, pad: int | None = None) -> int:
    """Output frames of a ``kt``-tap temporal kernel on ``frames`` frames zero-padded by ``pad`` on each
    side (default ``kt // 2``)."""
    pad = kt // 2 if pad is None else pad
    return (frames + 2 * pad - kt) // stride_t + 1


def fold_time(x: torch.Tensor, kt: int, stride_t: int) -> torch.Tensor:
    """``(B, Ci, T, H, W)`` -> ``(B * T_out, Ci * kt, H, W)``: channel ``ci * kt + d`` of output frame
    ``f`` is input frame ``f * stride_t + d - kt // 2`` (zero outside the clip)."""
    pad = kt // 2
    t_out = frames_out(x.shape[2], kt, stride_t)
    if kt == 1 and stride_t == 1:
        return x.transpose(1, 2).reshape(-1, x.shape[1], *x.shape[-2:])
    padded = F.pad(x, (0, 0, 0, 0, pad, pad))
    last = stride_t * (t_out - 1) + 1
    frames = torch.stack([padded[:, :, d: d + last: stride_t] for d in range(kt)], dim=3)
    return frames.transpose(1, 2).reshape(-1, x.shape[1] * kt, *x.shape[-2:])


def unfold_time(out: torch.Tensor, batch: int) -> torch.Tensor:
    """``(B * T_out, Co, H, W)`` image outputs -> the clip's ``(B, Co, T_out, H, W)``."""
    return out.view(batch, -1, *out.shape[1:]).transpose(1, 2).contiguous()


def frames_weight(weight: torch.Tensor, frames: int, stride_t: int, pad: int | None = None) -> torch.Tensor:
    """``(Co, Ci, kt, ...)`` clip weight -> ``(T_out * Co, Ci * T, ...)`` image weight for ``T = frames``
    input frames taken as channels (input channel ``ci * T + j`` is frame ``j``, as in
    ``x.flatten(1, 2)``), time zero-padded by ``pad`` (default ``kt // 2``): output channel
    ``f * Co + o`` of input channel ``ci * T + j`` holds ``weight[o, ci, j - f * stride_t + pad]``, zero
    where that tap falls outside the kernel. Differentiable in ``weight``."""
    co, ci, kt = weight.shape[:3]
    pad = kt // 2 if pad is None else pad
    spatial = [0, 0] * (weight.dim() - 3)  # F.pad leaves the spatial taps alone
    per_frame = []  # slices and zero padding only: no tensor indexing (whose backward is a scatter)
    for f in range(frames_out(frames, kt, stride_t, pad)):
        first = f * stride_t - pad  # the input frame under tap 0
        lo = min(max(0, first), frames)  # a window wholly in the padding after the clip: lo = hi = frames
        hi = max(lo, min(frames, first + kt))  # input frames lo:hi lie under the kernel
        per_frame.append(F.pad(weight[:, :, lo - first:hi - first], (*spatial, lo, frames - hi)))
    return torch.stack(per_frame).reshape(-1, ci * frames, *weight.shape[3:])


def unfold_frames(out: torch.Tensor, channels: int) -> torch.Tensor:
    """``(B, T_out * Co, H, W)`` outputs of the frames-as-channels convolution -> the clip's
    ``(B, Co, T_out, H, W)`` (``channels = Co``)."""
    return out.view(out.shape[0], -1, channels, *out.shape[2:]).transpose(1, 2).contiguous()


def conv_frames_as_channels(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride_t: int,
                            pad: int, conv2d: Callable) -> torch.Tensor:
    """The clip convolution of ``x`` ``(B, Ci, T, H, W)`` with ``weight`` ``(Co, Ci, kt, k, k)`` (time
    zero-padded by ``pad``) as ``conv2d(images, image_weight, image_bias)`` of the frames taken as
    channels (:func:`frames_weight`). Returns ``(B, Co, T_out, H_out, W_out)``."""
    image_weight = frames_weight(weight, x.shape[2], stride_t, pad=pad)
    t_out = image_weight.shape[0] // weight.shape[0]
    out = conv2d(x.flatten(1, 2), image_weight, None if bias is None else bias.repeat(t_out))
    return unfold_frames(out, weight.shape[0])
