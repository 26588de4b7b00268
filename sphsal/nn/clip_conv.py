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


class ClipConv3d(nn.Conv3d):
    """``nn.Conv3d`` (same arguments) whose ``(B, Ci, T, H, W)`` inputs with ``T`` smaller than the
    temporal kernel run as one ``Conv2d`` over the frames taken as channels; other inputs, and
    grouped, temporally dilated, string-padded or non-zero-padded layers, run ``nn.Conv3d``.
    Returns ``(B, Co, T_out, H_out, W_out)`` as ``nn.Conv3d`` does."""

    def _frames_as_channels(self, x: torch.Tensor) -> bool:
        if isinstance(self.padding, str) or self.groups != 1 or self.dilation[0] != 1:
            return False
        frames, kt = (x.shape[2], self.kernel_size[0]) if x.dim() == 5 else (0, 0)
        return self.padding_mode == "zeros" and frames < kt <= frames + 2 * self.padding[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._frames_as_channels(x):
            return super().forward(x)
        return conv_frames_as_channels(x, self.weight, self.bias, self.stride[0], self.padding[0],
                                       lambda images, w, b: F.conv2d(images, w, b, self.stride[1:],
                                                                     self.padding[1:], self.dilation[1:]))
