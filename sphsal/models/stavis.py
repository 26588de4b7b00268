"""STAViS (Tsiami et al., CVPR 2020): spatio-temporal audio-visual saliency with sound localisation.

* Visual: a 3D ResNet-50 truncated after ``layer3``
  (:class:`sphsal.models.backbones.resnet3d_bottleneck.ResNet3dBottleneck`) on 16-frame clips at
  112 x 112 whose MIDDLE frame (index 8) is the target (``input_spec.clip_mode == "center"``); RGB in
  0..255 minus the ActivityNet mean, no std scaling.
* Saliency heads after the stem, ``layer1``, ``layer2`` and ``layer3`` (strides 2, 4, 8, 16): temporal
  mean, 3x3 conv to 16 channels, bilinear upsampling to the frame size (the published frozen
  transposed convolutions; here :func:`sphsal.models.spherical.bilinear_upsample`, the same weights
  without the zero border they left). The first three heads also score their 16 channels with a 1x1
  conv; ``1 + softmax`` of that score over all positions re-weights the stage's features before the
  next stage.
* Audio: SoundNet-8 (:class:`sphsal.models.backbones.soundnet.SoundNet8`) on the clip's mono audio at
  22,050 Hz, Hann-windowed in 35,280 samples, max over the remaining steps -> one 1024-vector.
* Sound-source localisation on ``layer2``'s middle two frames (averaged): per position
  ``Linear(512, 128)`` + ReLU of the visual feature and ``Linear(1024, 128)`` + ReLU of the audio vector
  into ``Bilinear(128, 128, 64)``: 64 maps, upsampled x8 to the frame size.
* Fusion: a 1x1 conv over the 64 head features and the 64 localisation maps, sigmoid:
  ``(B, 1, 112, 112)``. ``stavis_visual`` has no audio and fuses the head features only.
* Recipe: ``0.1 * BCE - 2 * CC - 1 * NSS`` (spec ``"0.1*bce_raw+2*cc+nss"``: the BCE of the sigmoid
  map as it is, as released, against the max-normalised ground truth; a per-pixel mean where the
  released code summed), SGD lr 0.01, momentum 0.9, dampening 0.9, weight decay 1e-5, with the released
  per-layer rates (:func:`released_lr_scales`: the pretrained 3D ResNet and SoundNet fine-tuned 100x
  and 10x slower than the new localisation; the released step decay, x0.1 after 29 and again after 44
  of its 60 epochs, is not part of the recipe: ``lr_schedule="step"`` comes closest; it also mirrored
  each clip with probability 0.5: ``TrainConfig.hflip``, ``sphsal train --hflip 0.5``).
  The released visual-only training also supervised each head's own map; sphsal trains the fused map
  only, so the last head has no score conv (the released one fed only that deep supervision).

``stavis_sph`` / ``stavis_visual_sph``: the visual network made spherical
(:func:`sphsal.models.spherical.make_spherical`), on 112 x 224 ERP frames by default. Every layer is
seam-consistent (the attention softmax and the localisation act per position or over all positions):
rolling the ERP input by 16 columns rolls the output by 16 columns.
"""

from __future__ import annotations

import torch
from torch import nn

from sphsal.models.audio_inputs import clip_waveform
from sphsal.models.backbones.resnet3d_bottleneck import ResNet3dBottleneck
from sphsal.models.backbones.soundnet import SOUNDNET_SAMPLE_RATE, SoundNet8, map_soundnet
from sphsal.models.inputs import normalise_clip, require_keys, resize_clip
from sphsal.models.registry import InputSpec, build_variant, register_model
from sphsal.models.spherical import BilinearUpsample, make_spherical
from sphsal.models.state_maps import rename_prefixes
from sphsal.models.vinet import check_clip, check_frame_size

__all__ = ["STAViS", "SaliencyHead", "SoundLocalisation", "centre_clip", "stavis", "stavis_visual",
           "stavis_sph", "stavis_visual_sph"]

ACTIVITYNET_MEAN = (114.7748, 107.7354, 99.4750)
HEAD_STRIDES = (2, 4, 8, 16)
#: Default ERP frame of the spherical variants (2:1; its 7 x 14 deepest grid has an even width).
SPHERICAL_FRAME_SIZE = (112, 224)


def centre_clip(frames: torch.Tensor, clip_len: int) -> torch.Tensor:
    """``clip_len`` frames of ``(B, C, T, H, W)`` centred on its frame ``T // 2`` (the target of a
    centred clip), edge frames repeated where the clip is too short."""
    t = frames.shape[2]
    index = (torch.arange(clip_len) - clip_len // 2 + t // 2).clamp(0, t - 1)
    return frames[:, :, index.to(frames.device)]


def released_lr_scales(use_audio: bool) -> list[list]:
    """The released per-layer learning rates as multiples of the base rate 0.01 (``main.py`` and
    ``get_fine_tuning_parameters`` in ``models/resnet.py``): the 3D ResNet at 1/100 (audio-visual) or
    1/10 (visual-only); the heads' 3x3 convs at 1/100, their score convs and the fusion conv at 1/1000,
    biases at twice their weights' rate; SoundNet at 1/10; the localisation at 1 (see
    :func:`sphsal.engine.train.build_optimizer`)."""
    return [["visual.*", 0.01 if use_audio else 0.1],
            ["heads.*.side_prep.weight", 0.01], ["heads.*.side_prep.bias", 0.02],
            ["heads.*.score.weight", 0.001], ["heads.*.score.bias", 0.002],
            ["fuse.weight", 0.001], ["fuse.bias", 0.002], ["audio.*", 0.1], ["localisation.*", 1.0]]


class SaliencyHead(nn.Module):
    """Head on stage features ``(B, C, T, h, w)``: temporal mean, 3x3 conv to ``width`` channels,
    bilinear x``stride`` upsampling -> ``(B, width, stride h, stride w)``; with ``attention`` also the
    ``1 + softmax`` re-weighting ``(B, 1, 1, h, w)`` from a 1x1 score conv (else ``None``)."""

    def __init__(self, in_channels: int, stride: int, width: int = 16, attention: bool = True):
        super().__init__()
        self.side_prep = nn.Conv2d(in_channels, width, 3, padding=1)
        self.score = nn.Conv2d(width, 1, 1) if attention else None
        self.up = BilinearUpsample(stride)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        side = self.side_prep(x.mean(dim=2))
        if self.score is None:
            return self.up(side), None
        att = torch.softmax(self.score(side).flatten(1), dim=1).reshape(side.shape[0], 1, 1, *side.shape[-2:])
        return self.up(side), 1.0 + att


class SoundLocalisation(nn.Module):
    """Per-position bilinear audio-visual maps: visual ``(B, C, T, h, w)`` (middle two frames averaged)
    and audio ``(B, A)`` -> ``(B, out, stride h, stride w)``."""

    def __init__(self, visual_channels: int, audio_channels: int, stride: int, hidden: int = 128,
                 out_channels: int = 64):
        super().__init__()
        self.affine_rgb = nn.Linear(visual_channels, hidden)
        self.affine_audio = nn.Linear(audio_channels, hidden)
        self.bilinear = nn.Bilinear(hidden, hidden, out_channels)
        self.up = BilinearUpsample(stride)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        t = visual.shape[2]
        v = visual[:, :, max(0, t // 2 - 1): t // 2 + 1].mean(dim=2)  # (B, C, h, w)
        b, _, h, w = v.shape
        v = torch.relu(self.affine_rgb(v.flatten(2).transpose(1, 2)))  # (B, hw, hidden)
        a = torch.relu(self.affine_audio(audio))[:, None].expand(-1, h * w, -1)
        maps = self.bilinear(v.contiguous(), a.contiguous())  # (B, hw, out)
        return self.up(maps.transpose(1, 2).reshape(b, -1, h, w))


class STAViS(nn.Module):
    """STAViS (module docstring).

    Args:
        use_audio: SoundNet, localisation and audio-visual fusion (``False``: ``stavis_visual``).
        width_mult: scales every width (1.0: published).
        clip_len: frames per clip (16), centred on the target.
        frame_size: ``(H, W)``, multiples of 16 (112 x 112); ``W`` a multiple of 32 for ``spherical``.
        audio_samples: SoundNet input length (35,280: 1.6 s at 22,050 Hz); at least 4,574.
        spherical: make the visual network spherical.
    """

    def __init__(self, use_audio: bool = True, width_mult: float = 1.0, clip_len: int = 16,
                 frame_size: tuple[int, int] = (112, 112), audio_samples: int = 35280,
                 spherical: bool = False):
        super().__init__()
        self.name = "stavis" if use_audio else "stavis_visual"
        frame_size = check_frame_size(frame_size, 16, spherical, self.name)
        if clip_len < 2:
            raise ValueError(f"{self.name}: clip_len must be at least 2, got {clip_len}")
        if use_audio and audio_samples < SoundNet8.min_samples():
            raise ValueError(f"{self.name}: audio_samples must be at least {SoundNet8.min_samples()}, "
                             f"got {audio_samples}")
        self.use_audio, self.clip_len, self.frame_size = use_audio, int(clip_len), frame_size
        self.audio_samples, self.spherical = int(audio_samples), spherical
        self.visual = ResNet3dBottleneck((3, 4, 6), width_mult)
        width = max(1, round(16 * width_mult))
        self.heads = nn.ModuleList(SaliencyHead(c, s, width, attention=i < 3)
                                   for i, (c, s) in enumerate(zip(self.visual.channels, HEAD_STRIDES)))
        fused = 4 * width
        if use_audio:
            self.audio = SoundNet8(width_mult)
            out = max(1, round(64 * width_mult))
            self.localisation = SoundLocalisation(self.visual.channels[2], self.audio.out_channels, 8,
                                                  max(1, round(128 * width_mult)), out)
            fused += out
        self.fuse = nn.Conv2d(fused, 1, 1)
        self._released_init()
        if spherical:
            make_spherical(self.visual)
            make_spherical(self.heads)
            if use_audio:
                make_spherical(self.localisation)
        self.input_spec = InputSpec(clip_len=self.clip_len, frame_size=frame_size, output_size=frame_size,
                                    clip_mode="center", audio_channels=1 if use_audio else 0)
        self.default_loss = "0.1*bce_raw+2*cc+nss"
        self.default_optimizer = {"name": "sgd", "lr": 1e-2, "momentum": 0.9, "dampening": 0.9,
                                  "weight_decay": 1e-5, "lr_scales": released_lr_scales(use_audio)}

    def _released_init(self) -> None:
        """The released initialisation of the layers the 3D ResNet does not hold (``models/resnet.py``):
        2D convolutions N(0, 0.001) with zero biases, but -6 for the score and fusion biases; the
        localisation's linear and bilinear layers He-normal over their fan-out with zero biases."""
        for conv in (*[m for m in self.heads.modules() if isinstance(m, nn.Conv2d)], self.fuse):
            nn.init.normal_(conv.weight, 0.0, 1e-3)
            nn.init.zeros_(conv.bias)
        for head in self.heads:
            if head.score is not None:
                nn.init.constant_(head.score.bias, -6.0)
        nn.init.constant_(self.fuse.bias, -6.0)
        if self.use_audio:
            for layer in self.localisation.modules():
                if isinstance(layer, (nn.Linear, nn.Bilinear)):
                    nn.init.kaiming_normal_(layer.weight, mode="fan_out")
                    nn.init.zeros_(layer.bias)

    def prepare_inputs(self, batch: dict) -> dict:
        """``frames``: ``clip_len`` frames centred on the clip's middle frame (:func:`centre_clip`), resized,
        ``255 x RGB - ActivityNet mean``; ``audio`` (unless ``stavis_visual``): :func:`clip_waveform`."""
        require_keys(batch, ("frames",) + (("audio", "sample_rate") if self.use_audio else ()), self.name)
        frames = resize_clip(centre_clip(batch["frames"].float(), self.clip_len), self.frame_size)
        inputs = {"frames": normalise_clip(255.0 * frames, ACTIVITYNET_MEAN, (1.0, 1.0, 1.0))}
        if self.use_audio:
            inputs["audio"] = clip_waveform(batch, self.audio_samples, SOUNDNET_SAMPLE_RATE)
        return inputs

    def example_inputs(self, batch_size: int = 1) -> dict:
        """Random ``frames`` ``(B, 3, clip_len, H, W)`` (and ``audio`` ``(B, audio_samples)``)."""
        inputs = {"frames": 50.0 * torch.randn(batch_size, 3, self.clip_len, *self.frame_size)}
        if self.use_audio:
            inputs["audio"] = torch.randn(batch_size, self.audio_samples)
        return inputs

    def forward(self, frames: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        """``frames`` ``(B, 3, clip_len, H, W)`` (mean-subtracted 0..255 RGB) and, with audio, ``audio``
        ``(B, audio_samples)`` mono 22,050 Hz in ``[-1, 1]`` (:class:`SoundNet8` scales it to the released
        ``[-256, 256]``) -> ``(B, 1, H, W)`` saliency of the middle frame in ``(0, 1)``."""
        check_clip(frames, self.clip_len, self.frame_size, self.name,
                   audio_samples=self.audio_samples if self.use_audio else None, audio=audio)
        v, heads = self.visual, self.heads
        x = v.stem(frames)
        side0, att = heads[0](x)
        x = v.layer1(v.maxpool(x * att))
        side1, att = heads[1](x)
        x = v.layer2(x * att)
        side2, att = heads[2](x)
        sides = [side0, side1, side2, heads[3](v.layer3(x * att))[0]]
        if self.use_audio:
            sides.append(self.localisation(x, self.audio(audio).amax(dim=2)))
        return torch.sigmoid(self.fuse(torch.cat(sides, dim=1)))

    def map_original_state_dict(self, state: dict) -> tuple[dict, list[str]]:
        """Rename a released STAViS checkpoint (its ``ResNet`` module) to this model.

        ``conv1`` / ``bn1`` / ``layer{1,2,3}`` -> ``visual.*``; ``score_dsn.{i}.side_prep`` ->
        ``heads.{i}.side_prep``; ``score_dsn.{i}.score_dsn`` -> ``heads.{i}.score`` (i < 3);
        ``soundnet8.{j}`` (``Conv2d`` ``(Co, Ci, 1, k)``) -> ``audio.conv`` / ``audio.bn``
        (:func:`map_soundnet`); ``fusion3.affine_rgb`` / ``affine_audio`` / ``w_a_rgb`` ->
        ``localisation.affine_rgb`` / ``affine_audio`` / ``bilinear``; ``fuseav`` (audio-visual) or
        ``fuse`` (visual only) -> ``fuse``. Ignored: the fixed bilinear kernels ``score_dsn.{i}.upscale``
        and ``upscale_``, the last head's ``score_dsn.3.score_dsn`` (deep supervision only), the other
        fusion conv and, for ``stavis_visual``, the audio entries.
        """
        prefixes = {"conv1.": "visual.conv1.", "bn1.": "visual.bn1.", "layer": "visual.layer",
                    "fusion3.affine_rgb.": "localisation.affine_rgb.",
                    "fusion3.affine_audio.": "localisation.affine_audio.",
                    "fusion3.w_a_rgb.": "localisation.bilinear.",
                    ("fuseav." if self.use_audio else "fuse."): "fuse."}
        for i in range(4):
            prefixes[f"score_dsn.{i}.side_prep."] = f"heads.{i}.side_prep."
            prefixes[f"score_dsn.{i}.score_dsn."] = f"heads.{i}.score."
        rest = {k: v for k, v in state.items() if not k.startswith("soundnet8.")}
        mapped, ignored = rename_prefixes(rest, prefixes, self.state_dict())
        audio = map_soundnet(state, "soundnet8.", "audio.", "stavis") if self.use_audio else {}
        if not self.use_audio:
            ignored += [k for k in state if k.startswith("soundnet8.")]
        return {**mapped, **audio}, ignored


@register_model("stavis")
def stavis(**kwargs) -> STAViS:
    """Audio-visual STAViS (see :class:`STAViS`)."""
    return build_variant(STAViS, "stavis", kwargs, use_audio=True, spherical=False)


@register_model("stavis_visual")
def stavis_visual(**kwargs) -> STAViS:
    """STAViS without audio: the visual saliency heads fused alone."""
    return build_variant(STAViS, "stavis_visual", kwargs, use_audio=False, spherical=False)


@register_model("stavis_sph")
def stavis_sph(**kwargs) -> STAViS:
    """Audio-visual STAViS with a spherical visual network, on 112 x 224 ERP frames by default (the
    published square 112 x 112 leaves an odd-width 7 x 7 deepest grid, which cannot wrap over the poles)."""
    return build_variant(STAViS, "stavis_sph", {"frame_size": SPHERICAL_FRAME_SIZE, **kwargs}, use_audio=True,
                         spherical=True)


@register_model("stavis_visual_sph")
def stavis_visual_sph(**kwargs) -> STAViS:
    """Visual-only STAViS with a spherical visual network (112 x 224 ERP frames by default)."""
    return build_variant(STAViS, "stavis_visual_sph", {"frame_size": SPHERICAL_FRAME_SIZE, **kwargs},
                         use_audio=False, spherical=True)
