"""The visual-audio-face saliency model of Liu et al. (ECCV 2020, MVVA database): ``mvva``.

Defaults are the released network's sizes (256 x 256 frames, 32 x 32 output):

* Visual, per step ``s`` of a ConvLSTM over the clip (``steps`` = 12; the released code ran it over
  its batch of 12 consecutive frames): an object stream on frame ``f = gap + s`` (VGG-style 3x3 convs
  64, 64 | pool | 128, 128 | pool | 256 | pool | 512, ReLU) and a motion stream on frames ``f - gap`` and
  ``f`` stacked (``gap`` = 5; convs 7x7/2, 5x5/2, 5x5/2 to 64, 128, 256 with LeakyReLU 0.1, pool, a 4x4/2
  transposed conv to 128), concatenated and mixed by three 3x3 convs (256, 128, 128), then a 2-layer
  ConvLSTM (hidden 128, 64; 3x3 gates). The last step's hidden state ``(B, 64, H/8, W/8)`` is the
  visual feature of the target (the clip's last frame).
* Audio: a log-mel window (0.46 s) per frame of the clip's last 16 frames, each resized to
  ``(H/4, W/4)`` (:func:`sphsal.models.audio_inputs.clip_mel_windows`), stacked in time ->
  3D convs 16 | pool 2 | 32, 32 | pool (2, 1, 1) | 64 | pool (2, 1, 1) -> ``(B, 128, H/8, W/8)``
  (time folded into channels). The released code centred the 16 windows on the target; sphsal's clips
  end at the target, so they are the 16 frames ending there.
* Face: the Gaussian-mixture map of the faces OpenCV's Haar cascade finds in the target frame
  (:mod:`sphsal.models.face_map`; the released code never shipped its face branch).
* Fusion: each modality 3x3 conv to 64 + ReLU; their sum concatenated with each modality's input, a
  3x3 conv to 64 + ReLU each; the three concatenated into a 1x1 conv to one channel. The released map
  was linear; a softplus makes it non-negative here: ``(B, 1, H/8, W/8)``.
* Inputs on the released scales: RGB 0..255 minus the VGG mean, log-mel 0..255, face map
  ``255 x map - 14.9`` (zeros without faces).
* Recipe (not released; assumed): KL divergence + CC, Adam lr 1e-4.

``mvva_sph``: every visual, face and fusion convolution spherical and the pools on ERP cells
(:func:`sphsal.models.spherical.make_spherical`); the audio CNN stays planar (a spectrogram). It is
NOT seam-consistent: the motion stream's 4x4 transposed convolution stays planar (an even kernel has no
spherical stencil; odd ones become :class:`sphsal.nn.SphericalConvTranspose2d`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sphsal.models.audio_inputs import clip_mel_windows
from sphsal.models.face_map import face_maps
from sphsal.models.inputs import (
    check_shapes,
    fit_clip,
    max_normalise,
    normalise_clip,
    require_keys,
    resize_clip,
)
from sphsal.models.registry import InputSpec, build_variant, register_model
from sphsal.models.spherical import make_spherical
from sphsal.models.state_maps import rename_prefixes
from sphsal.models.vinet import check_frame_size

__all__ = ["MVVA", "ConvLSTMCell", "mvva", "mvva_sph"]

VGG_MEAN = (123.68, 116.779, 103.939)
FACE_OFFSET = 14.9  # the released face maps: 255 * map / max - 14.9 (its training set's mean)
GATES = ("i", "f", "c", "o")


class ConvLSTMCell(nn.Module):
    """ConvLSTM cell without peepholes: gates ``sigmoid(W_x* x + W_h* h)`` (``c`` gate ``tanh``) by
    ``k x k`` convs named as released (``Wxi`` with bias, ``Whi`` without, ...).
    ``(x (B, Ci, h, w), h, c (B, Ch, h, w)) -> (h', c')``."""

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3):
        super().__init__()
        self.hidden = hidden
        for g in GATES:
            self.add_module(f"Wx{g}", nn.Conv2d(in_channels, hidden, kernel_size, padding=kernel_size // 2))
            self.add_module(f"Wh{g}", nn.Conv2d(hidden, hidden, kernel_size, padding=kernel_size // 2,
                                                bias=False))

    def forward(self, x, h, c):
        pre = {g: getattr(self, f"Wx{g}")(x) + getattr(self, f"Wh{g}")(h) for g in GATES}
        c = torch.sigmoid(pre["f"]) * c + torch.sigmoid(pre["i"]) * torch.tanh(pre["c"])
        return torch.sigmoid(pre["o"]) * torch.tanh(c), c


def _conv(ci: int, co: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(ci, co, k, stride=stride, padding=k // 2)


def _leaky(module: nn.Module) -> nn.Sequential:
    return nn.Sequential(module, nn.LeakyReLU(0.1))


class MVVA(nn.Module):
    """The visual-audio-face model (module docstring).

    Args:
        width_mult: scales every width (1.0: released).
        frame_size: ``(H, W)``, multiples of 16 (256 x 256): the motion stream pools to ``(H/16, W/16)``
            and its transposed conv doubles that back to the ``(H/8, W/8)`` grid. The same holds for
            ``spherical`` (every spherical layer works on grids down to ``(H/8, W/8)``, even-sized).
        steps: ConvLSTM steps (12); gap: frames between the motion stream's two frames (5).
        mel_windows: log-mel windows (16; a multiple of 8). The clip has
            ``max(steps + gap, mel_windows)`` frames ending at the target.
        spherical: build ``mvva_sph``.
    """

    def __init__(self, width_mult: float = 1.0, frame_size: tuple[int, int] = (256, 256), steps: int = 12,
                 gap: int = 5, mel_windows: int = 16, spherical: bool = False):
        super().__init__()
        # spherical=False: multiples of 16 already make the deepest spherical grid (H/8, W/8) even
        frame_size = check_frame_size(frame_size, 16, False, "mvva_sph" if spherical else "mvva")
        if steps < 1 or gap < 1 or mel_windows < 8 or mel_windows % 8:
            raise ValueError(f"mvva: need steps >= 1, gap >= 1 and mel_windows a multiple of 8, got "
                             f"steps={steps}, gap={gap}, mel_windows={mel_windows}")
        self.frame_size, self.steps, self.gap = frame_size, int(steps), int(gap)
        self.mel_windows = int(mel_windows)
        self.clip_len = max(self.steps + self.gap, self.mel_windows)
        self.grid = (frame_size[0] // 8, frame_size[1] // 8)
        s = [max(1, round(c * width_mult)) for c in (64, 128, 256, 512)]
        lstm = [2 * max(1, round(c * width_mult / 2)) for c in (128, 64)]
        fuse = max(1, round(64 * width_mult))
        # object stream
        self.conv1_1, self.conv1_2 = _conv(3, s[0]), _conv(s[0], s[0])
        self.conv2_1, self.conv2_2 = _conv(s[0], s[1]), _conv(s[1], s[1])
        self.conv3_1, self.conv4_1 = _conv(s[1], s[2]), _conv(s[2], s[3])
        self.pool = nn.MaxPool2d(2)
        # motion stream
        self.flow_conv1 = _leaky(_conv(6, s[0], 7, 2))
        self.flow_conv2 = _leaky(_conv(s[0], s[1], 5, 2))
        self.flow_conv3 = _leaky(_conv(s[1], s[2], 5, 2))
        self.flow_deconv5 = _leaky(nn.ConvTranspose2d(s[2], s[1], 4, stride=2, padding=1, bias=False))
        self.combine_conv1 = _conv(s[1] + s[3], s[2])
        self.combine_conv2 = _conv(s[2], s[1])
        self.combine_conv3 = _conv(s[1], s[1])
        self.cell0 = ConvLSTMCell(s[1], lstm[0])
        self.cell1 = ConvLSTMCell(lstm[0], lstm[1])
        # fusion (the audio width is fixed by the audio CNN below)
        a = [max(1, round(c * width_mult)) for c in (16, 32, 64)]
        audio_channels = a[2] * self.mel_windows // 8
        self.conv_normal_visual1, self.conv_normal_visual2 = _conv(lstm[1], fuse), _conv(fuse + lstm[1], fuse)
        self.conv_normal_audio1, self.conv_normal_audio2 = (_conv(audio_channels, fuse),
                                                            _conv(fuse + audio_channels, fuse))
        self.conv_normal_face1, self.conv_normal_face2 = _conv(1, fuse), _conv(fuse + 1, fuse)
        self.visual_hmap = nn.Conv2d(3 * fuse, 1, 1)
        if spherical:
            make_spherical(self, keep_planar=("flow_deconv5.0",))  # a 4x4 kernel (see above)
        # audio CNN (added after the conversion: a spectrogram is not an ERP map)
        self.conv1_3d = nn.Conv3d(1, a[0], 3, padding=1)
        self.conv2a_3d = nn.Conv3d(a[0], a[1], 3, padding=1)
        self.conv2b_3d = nn.Conv3d(a[1], a[1], 3, padding=1)
        self.conv3_3d = nn.Conv3d(a[1], a[2], 3, padding=1)
        self.spherical = spherical
        self.input_spec = InputSpec(clip_len=self.clip_len, frame_size=frame_size, output_size=self.grid,
                                    needs_audio_mel=True, audio_channels=1)
        self.default_loss = "kld+cc"
        self.default_optimizer = {"name": "adam", "lr": 1e-4, "weight_decay": 0.0}

    # ------------------------------------------------------------------ inputs
    def prepare_inputs(self, batch: dict) -> dict:
        """``frames`` (the last ``clip_len`` frames, resized, 0..255 minus the VGG mean), ``mel``
        (:func:`clip_mel_windows` at ``(H/4, W/4)``) and ``face`` (on the output grid, released scale:
        the batch's ``face_map`` when it has one, else the faces detected in the target frame,
        :func:`sphsal.models.face_map.face_maps`) from a collated batch."""
        require_keys(batch, ("frames", "audio", "sample_rate"), "mvva")
        frames = batch["frames"].float()
        if frames.dim() != 5:
            raise ValueError(f"mvva: batch['frames'] must be (B, 3, T, H, W), got {tuple(frames.shape)}")
        if "face_map" in batch:  # e.g. from face annotations: (B, H, W), any non-negative scale
            given = batch["face_map"].float()
            given = given.reshape(frames.shape[0], 1, *given.shape[-2:])
            face = max_normalise(F.adaptive_avg_pool2d(given, self.grid))
        else:
            face = face_maps(frames[:, :, -1], self.grid)
        face = torch.where(face.flatten(1).amax(1)[:, None, None, None] > 0, 255.0 * face - FACE_OFFSET, face)
        if frames.shape[2] < self.mel_windows:
            raise ValueError(f"mvva: the clip has {frames.shape[2]} frames; the audio needs the "
                             f"{self.mel_windows} frames ending at the target (build the dataset with "
                             f"clip_len={self.clip_len})")
        mel_size = (2 * self.grid[0], 2 * self.grid[1])
        mel = clip_mel_windows(batch, frames.shape[2], self.mel_windows, mel_size)
        clip = resize_clip(fit_clip(frames, self.clip_len), self.frame_size)
        return {"frames": normalise_clip(255.0 * clip, VGG_MEAN, (1.0, 1.0, 1.0)), "mel": mel, "face": face}

    def example_inputs(self, batch_size: int = 1) -> dict:
        """Random ``frames`` ``(B, 3, clip_len, H, W)``, ``mel`` ``(B, 1, mel_windows, H/4, W/4)`` and
        ``face`` ``(B, 1, H/8, W/8)`` on the released scales."""
        h, w = self.grid
        return {"frames": 60.0 * torch.randn(batch_size, 3, self.clip_len, *self.frame_size),
                "mel": 255.0 * torch.rand(batch_size, 1, self.mel_windows, 2 * h, 2 * w),
                "face": 255.0 * torch.rand(batch_size, 1, h, w) - FACE_OFFSET}

    # ------------------------------------------------------------------ forward
    def forward(self, frames: torch.Tensor, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """Saliency ``(B, 1, H/8, W/8)`` (non-negative) of the clip's last frame; inputs as
        :meth:`example_inputs`."""
        self._check(frames, mel, face)
        visual = self._visual(frames)
        audio = self._audio(mel)
        feats = (visual, audio, face.to(visual.dtype))
        first = (self.conv_normal_visual1, self.conv_normal_audio1, self.conv_normal_face1)
        second = (self.conv_normal_visual2, self.conv_normal_audio2, self.conv_normal_face2)
        common = sum(F.relu(conv(x)) for conv, x in zip(first, feats))
        out = [F.relu(conv(torch.cat((common, x), dim=1))) for conv, x in zip(second, feats)]
        return F.softplus(self.visual_hmap(torch.cat(out, dim=1)))

    def _check(self, frames, mel, face) -> None:
        """``ValueError`` naming the input unless the shapes are :meth:`example_inputs`' (any batch size,
        the same for all three)."""
        h, w = self.grid
        shapes = {"frames": (3, self.clip_len, *self.frame_size), "mel": (1, self.mel_windows, 2 * h, 2 * w),
                  "face": (1, h, w)}
        hint = f"frame_size={self.frame_size}; prepare_inputs fits a batch to these sizes"
        check_shapes("mvva_sph" if self.spherical else "mvva", {"frames": frames, "mel": mel, "face": face},
                     shapes, hint)

    def _visual(self, frames: torch.Tensor) -> torch.Tensor:
        """ConvLSTM over the clip's last ``steps`` frames -> ``(B, C, H/8, W/8)``."""
        b = frames.shape[0]
        t0 = self.clip_len - self.steps
        cur = frames[:, :, t0:].transpose(1, 2).flatten(0, 1)  # (B steps, 3, H, W)
        prev = frames[:, :, t0 - self.gap: self.clip_len - self.gap].transpose(1, 2).flatten(0, 1)
        x = F.relu(self.conv1_2(F.relu(self.conv1_1(cur))))
        x = F.relu(self.conv2_2(F.relu(self.conv2_1(self.pool(x)))))
        x = F.relu(self.conv4_1(self.pool(F.relu(self.conv3_1(self.pool(x))))))
        y = self.flow_conv3(self.flow_conv2(self.flow_conv1(torch.cat((prev, cur), dim=1))))
        y = self.flow_deconv5(self.pool(y))
        z = F.relu(self.combine_conv1(torch.cat((y, x), dim=1)))
        z = F.relu(self.combine_conv3(F.relu(self.combine_conv2(z))))
        z = z.reshape(b, self.steps, *z.shape[1:])
        state = [None, None]
        for s in range(self.steps):
            x = z[:, s]
            for i, cell in enumerate((self.cell0, self.cell1)):
                if state[i] is None:
                    zeros = x.new_zeros(b, cell.hidden, *x.shape[-2:])
                    state[i] = (zeros, zeros)
                state[i] = cell(x, *state[i])
                x = state[i][0]
        return x

    def _audio(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 16, H/4, W/4)`` -> ``(B, 128, H/8, W/8)``."""
        a = F.max_pool3d(F.relu(self.conv1_3d(mel)), 2)
        a = F.max_pool3d(F.relu(self.conv2b_3d(F.relu(self.conv2a_3d(a)))), (2, 1, 1))
        a = F.max_pool3d(F.relu(self.conv3_3d(a)), (2, 1, 1))
        return a.flatten(1, 2)

    def map_original_state_dict(self, state: dict) -> tuple[dict, list[str]]:
        """The released ``visual_audio_face_modal_combine_net`` uses this model's names (``conv1_1`` ...
        ``flow_conv1.0`` ... ``cell0.Wxi`` ... ``conv1_3d`` ... ``visual_hmap``): entries load unchanged;
        returns ``(mapped, ignored_keys)``."""
        return rename_prefixes(state, {"": ""}, self.state_dict())


@register_model("mvva")
def mvva(**kwargs) -> MVVA:
    """The visual-audio-face model with planar convolutions (see :class:`MVVA`)."""
    return build_variant(MVVA, "mvva", kwargs, spherical=False)


@register_model("mvva_sph")
def mvva_sph(**kwargs) -> MVVA:
    """The visual-audio-face model with spherical visual, face and fusion convolutions."""
    return build_variant(MVVA, "mvva_sph", kwargs, spherical=True)
