"""``ClipConv3d``: ``nn.Conv3d`` that runs clips shorter than its temporal kernel as one ``Conv2d``.

A 3D ResNet's 7-frame stem on a 3-frame clip, or its 3-frame layers once time has been strided down to
1 or 2 frames, spend ``1 - T / kt`` of ``nn.Conv3d``'s work on the zero-padded frames. With the ``T``
frames taken as channels (:func:`sphsal.ops.time_fold.frames_weight`) the same convolution is one
``Conv2d`` with ``T_out * Co`` output channels and ``T / kt`` of the work. Parameters, their names and
shapes, and so checkpoints are those of ``nn.Conv3d``; ``convert_to_spherical`` turns it into a
:class:`~sphsal.nn.SphericalConv3d` like any ``nn.Conv3d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sphsal.ops.time_fold import conv_frames_as_channels

__all__ = ["ClipConv3d"]


@torch.fx.wrap
def _zero_padded_conv3d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                        stride: tuple[int, int, int], padding: tuple[int, int, int],
                        dilation: tuple[int, int, int]) -> torch.Tensor:
    """``F.conv3d`` of ``x`` ``(B, Ci, T, H, W)`` (or unbatched) with zero ``padding``, run as one
    ``Conv2d`` over the frames taken as channels where ``T`` is smaller than the temporal kernel and its
    padding reaches it (temporal dilation 1, one group). An fx leaf: the choice depends on ``T``."""
    frames, kt = (x.shape[2], weight.shape[2]) if x.dim() == 5 else (0, 0)
    if not frames < kt <= frames + 2 * padding[0] or dilation[0] != 1:
        return F.conv3d(x, weight, bias, stride, padding, dilation)
    return conv_frames_as_channels(x, weight, bias, stride[0], padding[0],
                                   lambda images, w, b: F.conv2d(images, w, b, stride[1:], padding[1:],
                                                                 dilation[1:]))


class ClipConv3d(nn.Conv3d):
    """``nn.Conv3d`` (same arguments) whose ``(B, Ci, T, H, W)`` inputs with ``T`` smaller than the
    temporal kernel run as one ``Conv2d`` over the frames taken as channels; other inputs, and
    grouped, temporally dilated, string-padded or non-zero-padded layers, run ``nn.Conv3d``.
    Returns ``(B, Co, T_out, H_out, W_out)`` as ``nn.Conv3d`` does; ``torch.fx`` traces it as one call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.padding, str) or self.groups != 1 or self.padding_mode != "zeros":
            return super().forward(x)
        return _zero_padded_conv3d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
