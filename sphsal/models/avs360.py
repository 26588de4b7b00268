"""AVS360 (Chao et al., VCIP 2020): audio-visual saliency for 360-degree video with ambisonic audio.

Architecture (defaults are the published sizes):

* Visual: a 3D ResNet-18 (:mod:`sphsal.models.backbones.resnet3d`) on 16-frame clips ending at the
  target frame, in one or two views (``view``):

  - ``"erp_spherical"``: the ERP clip ``(B, 3, 16, 256, 320)`` through a ResNet whose convolutions are
    :class:`sphsal.nn.SphericalConv3d` (built with :func:`sphsal.nn.convert_to_spherical`); its stem
    max-pool stays planar in time and pads H, W with the true spherical neighbours
    (:func:`sphsal.sphere.pad_equirect`: the longitude wraps, rows continue over the poles);
  - ``"erp_planar"``: the same ResNet with ``nn.Conv3d`` (the published ERP branch);
  - ``"cubemap"``: the six 128 x 128 cube faces through a ResNet with cube padding in the stem
    (:mod:`sphsal.models.cube_padding`) and, as in the released ``resnet3D_cubic``, a stem max-pool
    that pads nothing in time (16 frames -> 7; clips under 3 frames keep one frame of padding), the
    face features mapped back to the ERP fusion grid with
    :func:`sphsal.projections.cubemap_to_equirect`;
  - ``"both"`` (default): spherical ERP and cubemap features averaged 0.5 / 0.5;
    ``"both_planar"``: planar ERP and cubemap, the published model.

  The stage-4 features ``(B, 512, 1, 8, 10)`` are averaged over time to the fusion grid ``8 x 10``.
  Frames (ERP and faces) are normalised with the Kinetics mean / std of the Kinetics-pretrained
  ResNets, as the released code (DAVE's) does: :data:`KINETICS_MEAN`, :data:`KINETICS_STD`.
* Audio: a second 3D ResNet-18 on log-mel features tiled to 3 channels ``(B, 3, 16, 64, 64)``,
  averaged to one 512-vector and broadcast over the grid.
* Fusion: ``concat(visual, audio) -> 1x1 conv -> x`` (512 channels), then
  ``x' = ReLU(ECB * (1 + AEM) * (x + max x))`` with the equator centre bias ECB
  (:func:`sphsal.priors.equator_bias`: 15 deg in elevation, 75 deg in azimuth, max 1) and the clip's
  audio energy map AEM (``(B, 1, 8, 10)`` in ``[0, 1]``). ``max x`` is taken per sample (the released
  code took it over the whole batch, which couples the samples of a batch; its AEM path could not
  run, this one does).
* Decoder: two steps (bilinear x2, 3x3 conv, ReLU) 512 -> 512 -> 128, a 1x1 conv to 1 channel, a
  non-negative activation, division by the sum: a ``(B, 1, 32, 40)`` map that sums to 1. The
  published activation is a ReLU (``head_activation="relu"``); the default here is a softplus,
  because a ReLU whose inputs all turn negative outputs an all-zero map that no longer gets any
  gradient (it happens within a few steps on small models).

``width_mult`` scales every width (ResNets, fusion and decoder) and ``clip_len`` / ``frame_size`` /
``face_size`` the input, so a demo can run a reduced configuration of the same architecture.

Where the inputs and the recipe differ from the released code (FannyChao/AVS360), on purpose: the
log-mel audio is the W (omnidirectional) channel, where the released code averaged the four ambiX
channels (a direction-dependent gain); its 16 examples are the 0.64 s ending at each of the clip's
frames (the released code started them at multiples of a hop that was set only after the features had
been computed); the training target is the target frame's map, not the average of the clip's 16 maps;
and the default ``bce`` loss compares max-normalised maps (the released ``BCELoss`` took the
sum-normalised ones, values near ``1 / (h w)``).

sphsal extension, not part of the published model (off by default): ``output_aem=True`` also computes
the clip's AEM at the output resolution ``(B, 1, 4h, 4w)`` and feeds it to the 1x1 head as one more
input channel (initial weight :data:`OUTPUT_AEM_INIT`), so that the map can follow the sound on a grid
4 times finer in each direction than the fusion grid (a fusion cell of 128 x 256 frames spans 45 deg).
Published checkpoints fit the default head only.
Ablations: ``avs360_visual`` (no audio branch, no AEM) and ``avs360_no_aem``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sphsal.models.backbones.resnet3d import resnet3d18, scaled_widths
from sphsal.models.cube_padding import CubePad
from sphsal.models.inputs import (
    check_aem_options,
    check_shapes,
    clip_energy_map,
    clip_log_mel,
    fit_clip,
    normalise_clip,
    require_keys,
    resize_clip,
)
from sphsal.models.registry import InputSpec, build_variant, register_model
from sphsal.models.state_maps import rename_prefixes
from sphsal.priors import equator_bias
from sphsal.sphere import pad_equirect

__all__ = ["AVS360", "VIEWS", "EquirectPad", "KINETICS_MEAN", "KINETICS_STD", "avs360", "avs360_visual",
           "avs360_no_aem"]

VIEWS = ("both", "erp_spherical", "cubemap", "erp_planar", "both_planar")
MEL_SIZE = 64
#: Per-channel mean and std (of ``[0, 1]`` RGB frames) of the Kinetics-pretrained 3D ResNets (Hara et
#: al.), with which the released AVS360 / DAVE code normalises every frame
#: (``utils/process_video_audio.py``: ``MEAN``, ``STD``).
KINETICS_MEAN = (110.63666788 / 255.0, 103.16065604 / 255.0, 96.29023126 / 255.0)
KINETICS_STD = (38.7568578 / 255.0, 37.88248729 / 255.0, 40.02898126 / 255.0)
HEAD_ACTIVATIONS = {"softplus": F.softplus, "relu": F.relu}
#: Initial weight of the output-resolution AEM channel in the head (``output_aem=True``): the head starts
#: as ``softplus(visual + 2 AEM)``, the visual map weighted by up to ``e^2`` towards the sound.
OUTPUT_AEM_INIT = 2.0


class EquirectPad(nn.Module):
    """Pad the last two dimensions of ERP features by ``pad`` with their spherical neighbours
    (:func:`sphsal.sphere.pad_equirect`; the width must be even)."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = int(pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pad_equirect(x, self.pad)


class UpConv(nn.Module):
    """Decoder step: bilinear x2 upsampling, 3x3 conv, ReLU: ``(B, Cin, h, w) -> (B, Cout, 2h, 2w)``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return F.relu(self.conv(x))


class AVS360(nn.Module):
    """AVS360 (see the module docstring).

    Args:
        view: one of :data:`VIEWS`.
        use_audio: build the audio branch (``False``: visual features only go to the fusion conv).
        use_aem: weight the fused features by the audio energy map (needs ambisonic audio).
        width_mult: scales all channel widths (1.0: 64/128/256/512 stages, 512/128 decoder).
        clip_len: frames per clip (16).
        frame_size: ``(H, W)`` of the ERP clip (256 x 320 as published); ``H`` a multiple of 32 and
            ``W`` of 64, so the fusion grid ``(H/32, W/32)`` has an even width (ERP padding wraps it).
        face_size: cube face side (128).
        head_activation: ``"softplus"`` (default) or ``"relu"`` (published) before the sum
            normalisation.
        aem_decoder, aem_quantity: beams and measure of the AEM (:func:`sphsal.audio.energy_map`;
            published: ``"cardioid"`` beams, ``"rms"``). ``"pwd"`` beams and ``"energy"`` give a
            sharper map: a source 90 degrees off the beam weighs 1/16 instead of 1/2.
        output_aem: sphsal extension (module docstring): the AEM at the output resolution as an extra
            input channel of the head. Inert when ``use_aem=False``, so the ablations accept it.
    """

    def __init__(self, view: str = "both", use_audio: bool = True, use_aem: bool = True,
                 width_mult: float = 1.0, clip_len: int = 16, frame_size: tuple[int, int] = (256, 320),
                 face_size: int = 128, head_activation: str = "softplus", aem_decoder: str = "cardioid",
                 aem_quantity: str = "rms", output_aem: bool = False):
        super().__init__()
        check_aem_options(aem_decoder, aem_quantity)
        self.aem_decoder, self.aem_quantity = aem_decoder, aem_quantity
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        if head_activation not in HEAD_ACTIVATIONS:
            raise ValueError(f"head_activation must be one of {tuple(HEAD_ACTIVATIONS)}, "
                             f"got {head_activation!r}")
        if use_aem and not use_audio:
            raise ValueError("use_aem=True needs the audio (use_audio=True)")
        if clip_len < 1:
            raise ValueError(f"clip_len must be >= 1, got {clip_len}")
        frame_size = (int(frame_size[0]), int(frame_size[1]))
        if frame_size[0] < 32 or frame_size[0] % 32 or frame_size[1] < 64 or frame_size[1] % 64:
            raise ValueError(f"frame_size must be (H, W) with H a multiple of 32 and W a multiple of 64 (an "
                             f"even-width fusion grid, which wraps in longitude), got {frame_size}")
        if face_size < 32:
            raise ValueError(f"face_size must be at least 32 pixels, got {face_size}")
        self.view = view
        self.head_activation = head_activation
        self.use_audio = use_audio
        self.use_aem = use_aem
        self.clip_len = int(clip_len)
        self.frame_size = frame_size
        self.face_size = int(face_size)
        self.fusion_size = (frame_size[0] // 32, frame_size[1] // 32)
        channels = scaled_widths(width_mult)[-1]
        decoder_channels = max(1, channels // 4)

        erp = view in ("both", "erp_spherical", "erp_planar", "both_planar")
        spherical = view in ("both", "erp_spherical")
        self.visual_erp = self._erp_branch(width_mult, spherical) if erp else None
        self.visual_cube = (resnet3d18(width_mult, stem_pad=CubePad, pool_pad=CubePad)
                            if view in ("both", "cubemap", "both_planar") else None)
        if self.visual_cube is not None and self.clip_len >= 3:
            # released resnet3D_cubic: cube padding in H, W before a max-pool with padding 0 (none in time)
            self.visual_cube.maxpool = nn.MaxPool3d(3, stride=2, padding=0)
        self.audio = resnet3d18(width_mult) if use_audio else None
        self.fusion = nn.Conv2d(channels * (2 if use_audio else 1), channels, 1)
        # sphsal extension, not in the published model: the AEM at the output resolution as one more
        # input channel of the head (inert without the AEM, so the ablations accept the same options).
        self.output_aem = bool(output_aem) and use_aem
        self.up1 = UpConv(channels, channels)
        self.up2 = UpConv(channels, decoder_channels)
        self.head = nn.Conv2d(decoder_channels + (1 if self.output_aem else 0), 1, 1)
        if self.output_aem:
            with torch.no_grad():
                self.head.weight[:, -1] = OUTPUT_AEM_INIT
        self.register_buffer("ecb", equator_bias(*self.fusion_size)[None, None], persistent=False)

        output_size = (4 * self.fusion_size[0], 4 * self.fusion_size[1])
        self.output_size = output_size
        self.input_spec = InputSpec(clip_len=self.clip_len, frame_size=frame_size, output_size=output_size,
                                    needs_audio_mel=use_audio, needs_aem=use_aem,
                                    audio_channels=4 if use_aem else (1 if use_audio else 0))
        self.default_loss = "bce"
        self.default_optimizer = {"name": "adam", "lr": 1e-5, "weight_decay": 0.0}

    @staticmethod
    def _erp_branch(width_mult: float, spherical: bool) -> nn.Module:
        if not spherical:
            return resnet3d18(width_mult)
        from sphsal.nn import convert_to_spherical

        return convert_to_spherical(resnet3d18(width_mult, pool_pad=EquirectPad))

    # ------------------------------------------------------------------ inputs
    def prepare_inputs(self, batch: dict) -> dict:
        """Model inputs from a collated batch (``frames`` ``(B, 3, T, H, W)`` in ``[0, 1]``, ``audio``
        ``(B, channels, S)`` covering the clip, ``sample_rate``, optional ``fps``).

        Returns the keyword tensors of :meth:`forward`: ERP ``frames`` resized to ``frame_size``, cube
        ``faces`` projected from the full-resolution frames (Kinetics mean / std for both, as released;
        see :meth:`clip_to_faces` for frames of odd width),
        ``audio_mel`` and the clip's ``aem`` on the fusion grid. Clips of another length are cut to
        their last ``clip_len`` frames or padded by repeating their first frame.
        """
        require_keys(batch, ("frames",) + (("audio", "sample_rate") if self.use_audio else ()), "avs360")
        frames = batch["frames"].float()
        t_in = frames.shape[2]
        frames = normalise_clip(fit_clip(frames, self.clip_len), KINETICS_MEAN, KINETICS_STD)
        inputs = {}
        if self.visual_erp is not None:
            inputs["frames"] = resize_clip(frames, self.frame_size)
        if self.visual_cube is not None:
            inputs["faces"] = self.clip_to_faces(frames)
        if self.use_aem:
            inputs["aem"] = clip_energy_map(batch, t_in, self.fusion_size, decoder=self.aem_decoder,
                                            quantity=self.aem_quantity, clip_len=self.clip_len)
        if self.output_aem:
            inputs["aem_out"] = clip_energy_map(batch, t_in, self.output_size, decoder=self.aem_decoder,
                                                quantity=self.aem_quantity, clip_len=self.clip_len)
        if self.use_audio:
            inputs["audio_mel"] = fit_clip(clip_log_mel(batch, t_in), self.clip_len)
        return inputs

    def clip_to_faces(self, frames: torch.Tensor) -> torch.Tensor:
        """ERP clip ``(B, C, T, H, W)`` -> cube faces ``(B, 6, C, T, F, F)`` (bilinear). A clip of odd
        width is first resized to ``W + 1`` columns (:func:`resize_clip`): the projection samples across
        the poles, which needs an even ERP width."""
        from sphsal.projections import equirect_to_cubemap

        if frames.shape[-1] % 2:
            frames = resize_clip(frames, (frames.shape[-2], frames.shape[-1] + 1))
        b, c, t, h, w = frames.shape
        faces = equirect_to_cubemap(frames.transpose(1, 2).reshape(b * t, c, h, w), self.face_size)
        return faces.reshape(b, t, 6, c, self.face_size, self.face_size).permute(0, 2, 3, 1, 4, 5)

    def example_inputs(self, batch_size: int = 1) -> dict:
        """Random inputs at the model's default size (see :meth:`forward`)."""
        t, (h, w), f = self.clip_len, self.frame_size, self.face_size
        inputs = {}
        if self.visual_erp is not None:
            inputs["frames"] = torch.randn(batch_size, 3, t, h, w)
        if self.visual_cube is not None:
            inputs["faces"] = torch.randn(batch_size, 6, 3, t, f, f)
        if self.use_audio:
            inputs["audio_mel"] = torch.randn(batch_size, 3, t, MEL_SIZE, MEL_SIZE)
        if self.use_aem:
            inputs["aem"] = torch.rand(batch_size, 1, *self.fusion_size)
        if self.output_aem:
            inputs["aem_out"] = torch.rand(batch_size, 1, *self.output_size)
        return inputs

    # ------------------------------------------------------------------ forward
    def forward(self, frames: torch.Tensor | None = None, faces: torch.Tensor | None = None,
                audio_mel: torch.Tensor | None = None, aem: torch.Tensor | None = None,
                aem_out: torch.Tensor | None = None) -> torch.Tensor:
        """Saliency of the clip's last frame.

        Args:
            frames: ``(B, 3, T, H, W)`` normalised ERP clip (views with an ERP branch).
            faces: ``(B, 6, 3, T, F, F)`` normalised cube faces, front/right/back/left/up/down
                (views with a cubemap branch).
            audio_mel: ``(B, 3, T, 64, 64)`` log-mel features (unless ``use_audio=False``).
            aem: ``(B, 1, h, w)`` audio energy map in ``[0, 1]`` on the fusion grid
                ``(ceil(H/32), ceil(W/32))`` (unless ``use_aem=False``).
            aem_out: ``(B, 1, 4h, 4w)`` audio energy map in ``[0, 1]`` at the output resolution (only
                with ``output_aem=True``).

        Returns:
            ``(B, 1, 4h, 4w)`` non-negative map summing to 1 per sample.

        Raises:
            ValueError: naming the input when one the model reads is missing, one it does not read is
                given, or the shapes differ from those above (``T = clip_len``, ``(H, W) = frame_size``,
                ``F = face_size``) or in batch size.
        """
        self._check_inputs(dict(frames=frames, faces=faces, audio_mel=audio_mel, aem=aem, aem_out=aem_out))
        x = self._visual_features(frames, faces)
        if self.audio is not None:
            a = self.audio(audio_mel).mean(dim=(2, 3, 4))
            x = torch.cat((x, a[:, :, None, None].expand(-1, -1, *x.shape[-2:])), dim=1)
        x = self.fusion(x)
        gain = self.ecb
        if self.use_aem:
            gain = gain * (1.0 + aem.to(x.dtype))
        x = F.relu(gain * (x + x.amax(dim=(1, 2, 3), keepdim=True)))
        x = self.up2(self.up1(x))
        if self.output_aem:
            x = torch.cat((x, aem_out.to(x.dtype)), dim=1)
        sal = HEAD_ACTIVATIONS[self.head_activation](self.head(x))
        return sal / sal.sum(dim=(2, 3), keepdim=True).clamp_min(1e-12)

    def _check_inputs(self, inputs: dict) -> None:
        """``ValueError`` unless ``inputs`` are what :meth:`forward` reads at the built sizes."""
        t, (h, w), f = self.clip_len, self.frame_size, self.face_size
        shapes = {}
        if self.visual_erp is not None:
            shapes["frames"] = (3, t, h, w)
        if self.visual_cube is not None:
            shapes["faces"] = (6, 3, t, f, f)
        if self.audio is not None:
            shapes["audio_mel"] = (3, t, MEL_SIZE, MEL_SIZE)
        if self.use_aem:
            shapes["aem"] = (1, *self.fusion_size)
        if self.output_aem:
            shapes["aem_out"] = (1, *self.output_size)
        hint = (f"the model was built for clip_len={t}, frame_size={(h, w)}, face_size={f} (prepare_inputs "
                "fits a batch to them)")
        check_shapes(getattr(self, "model_name", "avs360"), inputs, shapes, hint)

    def _visual_features(self, frames, faces) -> torch.Tensor:
        """Visual features ``(B, C, h, w)`` on the fusion grid, averaged over the views."""
        views = []
        if self.visual_erp is not None:
            views.append(self.visual_erp(frames).mean(dim=2))
        if self.visual_cube is not None:
            from sphsal.projections import cubemap_to_equirect

            b = faces.shape[0]
            feat = self.visual_cube(faces.flatten(0, 1)).mean(dim=2)
            feat = feat.reshape(b, 6, *feat.shape[1:])
            views.append(cubemap_to_equirect(feat, *self.fusion_size))
        return views[0] if len(views) == 1 else 0.5 * (views[0] + views[1])

    # ------------------------------------------------------------------ published weights
    def map_original_state_dict(self, state: dict) -> tuple[dict, list[str]]:
        """Rename a state dict of the released AVS360 code (a DAVE-derived ``DAVE`` module) to this
        model's names; returns ``(mapped, ignored_keys)``.

        ``video_branch.*`` -> ``visual_erp.*`` (planar weights also fit the spherical branch: same
        shapes), ``video_branch_cubic.*`` -> ``visual_cube.*``, ``audio_branch.*`` -> ``audio.*``,
        ``combinedEmbedding`` -> ``fusion`` (for ``use_audio=False`` only its visual input half),
        ``upscale1/2.combine`` -> ``up1/up2.conv``, ``saliency`` -> ``head``. Ignored: the audio
        classifier ``audio_branch.fc_new``, ``video_branch*.fc_new``, ``upscale*.bn`` and
        ``combinedEmbedding_equi_cp`` (defined but unused by the released forward), and branches this
        view does not have.
        """
        prefixes = {"video_branch.": "visual_erp.", "video_branch_cubic.": "visual_cube.",
                    "audio_branch.": "audio.", "combinedEmbedding.": "fusion.",
                    "upscale1.combine.": "up1.conv.", "upscale2.combine.": "up2.conv.", "saliency.": "head."}
        own = self.state_dict()

        def visual_half(key: str, value: torch.Tensor) -> torch.Tensor:
            return value[:, : own[key].shape[1]] if key == "fusion.weight" and not self.use_audio else value

        mapped, ignored = rename_prefixes(state, prefixes, own, visual_half)
        return mapped, ignored


@register_model("avs360")
def avs360(**kwargs) -> AVS360:
    """AVS360 with spherical ERP + cubemap views, audio branch and AEM (see :class:`AVS360`)."""
    return AVS360(**kwargs)


@register_model("avs360_visual")
def avs360_visual(**kwargs) -> AVS360:
    """AVS360 ablation without audio: no audio branch, no AEM (ECB only)."""
    return build_variant(AVS360, "avs360_visual", kwargs, use_audio=False, use_aem=False)


@register_model("avs360_no_aem")
def avs360_no_aem(**kwargs) -> AVS360:
    """AVS360 ablation with the audio branch but without the audio energy map."""
    return build_variant(AVS360, "avs360_no_aem", kwargs, use_aem=False)
