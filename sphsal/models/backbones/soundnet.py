"""SoundNet-8 (Aytar et al., NeurIPS 2016) up to conv7: a 1D CNN on the raw 22.05 kHz waveform.

Seven conv + BN + ReLU layers with 16, 32, 64, 128, 256, 512, 1024 channels, kernels 64, 32, 16, 8, 4,
4, 4, stride 2 and padding ``k / 2``; max-pooling by 8 after conv1 and conv2 and by 4 after conv5.
``(B, S)`` or ``(B, 1, S)`` samples -> ``(B, 1024, L)``: ``L = 3`` for AViNet's 70,560 samples, 2 for
STAViS's 35,280. The classifier heads (``conv8_objs``, ``conv8_scns``) are not part of the model.

The input is a waveform in ``[-1, 1]``; :meth:`SoundNet8.forward` multiplies it by
:data:`INPUT_SCALE` = 256, the ``[-256, 256]`` range SoundNet was trained on and both released loaders
feed it (32-bit samples times ``2 ** -23``: cvondrick/soundnet ``extract_feat.lua``, ViNet's and STAViS's
``torchaudio.load(normalization=False)``), so released weights see the scale they were trained with.

The released networks store the 1D convolutions as ``Conv2d`` with a ``(k, 1)`` (ViNet) or ``(1, k)``
(STAViS) kernel; :func:`map_soundnet` renames either layout onto :class:`SoundNet8` (``Conv1d``
weights ``(Co, Ci, k)``).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SoundNet8", "SOUNDNET_WIDTHS", "SOUNDNET_SAMPLE_RATE", "INPUT_SCALE", "map_soundnet"]

SOUNDNET_SAMPLE_RATE = 22050
#: ``[-1, 1]`` waveform -> SoundNet's ``[-256, 256]`` input range (module docstring).
INPUT_SCALE = 256.0
SOUNDNET_WIDTHS = (16, 32, 64, 128, 256, 512, 1024)
KERNELS = (64, 32, 16, 8, 4, 4, 4)
POOLS = {0: 8, 1: 8, 4: 4}  # max-pool after conv1, conv2 and conv5 (0-based layer index)
# Layer i's modules in STAViS's ``soundnet8`` Sequential (conv, BN, ReLU[, MaxPool] per layer).
_STAVIS_INDEX = (0, 4, 8, 11, 14, 18, 21)


class SoundNet8(nn.Module):
    """SoundNet-8 conv1-conv7 (module docstring) on a ``[-1, 1]`` waveform (scaled by
    :data:`INPUT_SCALE` inside); ``width_mult`` scales the channel counts and ``out_channels`` (default:
    the scaled 1024) sets conv7's."""

    def __init__(self, width_mult: float = 1.0, out_channels: int | None = None):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        widths = [max(1, round(w * width_mult)) for w in SOUNDNET_WIDTHS]
        if out_channels is not None:
            widths[-1] = int(out_channels)
        self.conv = nn.ModuleList()
        self.bn = nn.ModuleList()
        in_ch = 1
        for width, k in zip(widths, KERNELS):
            self.conv.append(nn.Conv1d(in_ch, width, k, stride=2, padding=k // 2))
            self.bn.append(nn.BatchNorm1d(width))
            in_ch = width
        self.out_channels = widths[-1]

    @staticmethod
    def min_samples() -> int:
        """The fewest samples that leave one conv7 output step."""
        n = 1
        for i in reversed(range(len(KERNELS))):
            n *= POOLS.get(i, 1)
            n = max(1, 2 * (n - 1))  # conv (stride 2, padding k/2): floor(L / 2) + 1 outputs
        return n

    @staticmethod
    def output_length(samples: int) -> int:
        """Steps ``L`` of the conv7 output for ``samples`` input samples."""
        n = int(samples)
        for i in range(len(KERNELS)):
            n = n // 2 + 1
            n //= POOLS.get(i, 1)
        return n

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 2:
            wave = wave[:, None]
        if wave.dim() != 3 or wave.shape[1] != 1:
            raise ValueError(f"SoundNet8 expects a mono waveform (B, S) or (B, 1, S), "
                             f"got {tuple(wave.shape)}")
        if wave.shape[-1] < self.min_samples():
            raise ValueError(f"SoundNet8 needs at least {self.min_samples()} samples, got {wave.shape[-1]}")
        x = wave * INPUT_SCALE
        for i, (conv, bn) in enumerate(zip(self.conv, self.bn)):
            x = torch.relu(bn(conv(x)))
            if i in POOLS:
                x = nn.functional.max_pool1d(x, POOLS[i])
        return x


def map_soundnet(state: dict, src: str, dst: str, layout: str) -> dict:
    """Released SoundNet entries under prefix ``src`` -> :class:`SoundNet8` entries under ``dst``.

    ``layout="vinet"``: ``conv{i}.weight`` ``(Co, Ci, k, 1)`` and ``batchnorm{i}.*`` (i = 1..7);
    ``layout="stavis"``: ``soundnet8.{j}`` Sequential indices with ``(Co, Ci, 1, k)`` weights. Conv
    weights lose their singleton axis; other entries keep their values. Entries not found are absent.
    """
    mapped = {}
    for i in range(len(KERNELS)):
        if layout == "vinet":
            conv, bn = f"{src}conv{i + 1}.", f"{src}batchnorm{i + 1}."
        elif layout == "stavis":
            conv, bn = f"{src}{_STAVIS_INDEX[i]}.", f"{src}{_STAVIS_INDEX[i] + 1}."
        else:
            raise ValueError(f"layout must be 'vinet' or 'stavis', got {layout!r}")
        for key, value in state.items():
            if key.startswith(conv):
                name = key[len(conv):]
                mapped[f"{dst}conv.{i}.{name}"] = value.flatten(2) if name == "weight" else value
            elif key.startswith(bn):
                mapped[f"{dst}bn.{i}.{key[len(bn):]}"] = value
    return mapped
