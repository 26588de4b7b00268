"""AViNet (Jain et al., 2020): ViNet with a SoundNet-8 audio branch fused into the deepest features.

* Visual: ViNet's S3D encoder and decoder (:mod:`sphsal.models.vinet`), 32 x 224 x 384 clips ending
  at the target frame.
* Audio: SoundNet-8 (:class:`sphsal.models.backbones.soundnet.SoundNet8`) on the clip's mono audio at
  22,050 Hz, Hann-windowed and centred in 70,560 samples (:func:`sphsal.models.audio_inputs.clip_waveform`)
  -> ``(B, 1024, 3)``.
* Fusion (``fusion="bilinear"``, published default): the deepest visual features ``(B, 1024, 4, 7, 12)``
  are max-pooled over time (kernel = all ``T/8`` frames) and by stride 2 in width -> ``(B, 1024, 7, 6)``;
  per channel ``c``, ``nn.Bilinear(42, 3, 336)`` maps (visual row of ``c``, audio row of ``c``) to a new
  ``4 x 7 x 12`` map, which replaces ``y0`` at the decoder input. ``fusion="transformer"``: the bilinear
  output goes through a 1x1x1 conv to 32 channels, a 3-layer transformer encoder over those 32 channels
  as tokens (``d_model = 4 * 7 * 12``, 4 heads, sinusoidal positions) and a 1x1x1 conv back to 1024.
* Recipe: ViNet's (KL divergence, Adam lr 1e-4).

``avinet_sph``: encoder and decoder made spherical (:func:`sphsal.models.spherical.make_spherical`); the
fusion stays as published. It is NOT seam-consistent: the bilinear fusion (and the transformer) give
every grid position its own weights, and the stride-2 width pooling drops every second column.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sphsal.models.audio_inputs import clip_waveform
from sphsal.models.backbones.soundnet import SOUNDNET_SAMPLE_RATE, SoundNet8, map_soundnet
from sphsal.models.registry import InputSpec, build_variant, register_model
from sphsal.models.state_maps import rename_prefixes
from sphsal.models.vinet import ViNet, check_clip

__all__ = ["AViNet", "FUSIONS", "avinet", "avinet_sph"]

FUSIONS = ("bilinear", "transformer")
TRANSFORMER_TOKENS = 32


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """``(length, dim)`` sine/cosine position codes (Vaswani et al.): even dims sine, odd dims cosine."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


class AViNet(ViNet):
    """AViNet (module docstring). Arguments as :class:`sphsal.models.vinet.ViNet`, plus:

    Args:
        fusion: ``"bilinear"`` (published) or ``"transformer"``.
        audio_samples: SoundNet input length (70,560: 3.2 s at 22,050 Hz); at least 4,574.
    """

    name = "avinet"

    def __init__(self, width_mult: float = 1.0, clip_len: int = 32, frame_size: tuple[int, int] = (224, 384),
                 spherical: bool = False, fusion: str = "bilinear", audio_samples: int = 70560):
        super().__init__(width_mult, clip_len, frame_size, spherical)
        if fusion not in FUSIONS:
            raise ValueError(f"avinet: fusion must be one of {FUSIONS}, got {fusion!r}")
        if audio_samples < SoundNet8.min_samples():
            raise ValueError(f"avinet: audio_samples must be at least {SoundNet8.min_samples()}, "
                             f"got {audio_samples}")
        self.fusion, self.audio_samples = fusion, int(audio_samples)
        channels = self.encoder.channels[0]
        t0, h0, w0 = self.grid
        self.audio = SoundNet8(width_mult, out_channels=channels)
        pooled = h0 * ((w0 - 1) // 2 + 1)  # grid positions after the stride-2 width pooling
        self.bilinear = nn.Bilinear(pooled, SoundNet8.output_length(audio_samples), t0 * h0 * w0)
        if fusion == "transformer":
            tokens = t0 * h0 * w0
            if tokens % 4:
                raise ValueError(f"avinet: the transformer needs T/8 * H/32 * W/32 divisible by its 4 heads, "
                                 f"got {tokens}")
            self.conv_in = nn.Conv3d(channels, TRANSFORMER_TOKENS, 1)
            layer = nn.TransformerEncoderLayer(tokens, 4, tokens, batch_first=True)
            self.transformer = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)
            self.conv_out = nn.Conv3d(TRANSFORMER_TOKENS, channels, 1)
            positions = sinusoidal_positions(TRANSFORMER_TOKENS, tokens)
            self.register_buffer("positions", positions, persistent=False)
        self.input_spec = InputSpec(clip_len=self.clip_len, frame_size=self.frame_size,
                                    output_size=self.frame_size, audio_channels=1)

    def prepare_inputs(self, batch: dict) -> dict:
        """ViNet's ``frames`` plus ``audio``: :func:`clip_waveform` of the clip, ``(B, audio_samples)``."""
        inputs = super().prepare_inputs(batch)
        inputs["audio"] = clip_waveform(batch, self.audio_samples, SOUNDNET_SAMPLE_RATE)
        return inputs

    def example_inputs(self, batch_size: int = 1) -> dict:
        """Random ``frames`` and ``audio`` ``(B, audio_samples)``."""
        return {**super().example_inputs(batch_size), "audio": torch.randn(batch_size, self.audio_samples)}

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """``frames`` ``(B, 3, clip_len, H, W)``, ``audio`` ``(B, audio_samples)`` mono 22,050 Hz waveform
        in ``[-1, 1]`` (:class:`SoundNet8` scales it to the released ``[-256, 256]``) -> ``(B, 1, H, W)``
        saliency of the clip's last frame, in ``(0, 1)``."""
        check_clip(frames, self.clip_len, self.frame_size, self.name, audio_samples=self.audio_samples,
                   audio=audio)
        y0, y1, y2, y3 = self.encoder(frames)
        a = self.audio(audio)
        v = nn.functional.max_pool3d(y0, (y0.shape[2], 1, 1), stride=(1, 1, 2))
        fused = self.bilinear(v.flatten(2), a).reshape(y0.shape)
        if self.fusion == "transformer":
            z = self.conv_in(fused)
            z = self.transformer(z.flatten(2) + self.positions)
            fused = self.conv_out(z.reshape(z.shape[0], -1, *y0.shape[2:]))
        return self.decoder(fused, y1, y2, y3)

    def map_original_state_dict(self, state: dict) -> tuple[dict, list[str]]:
        """Rename a released AViNet checkpoint (``VideoAudioSaliencyModel``) to this model.

        ``visual_model.backbone.*`` / ``visual_model.decoder.*`` as :meth:`ViNet.map_original_state_dict`;
        ``audionet.conv{i}`` / ``audionet.batchnorm{i}`` -> ``audio.conv.{i-1}`` / ``audio.bn.{i-1}``
        (``Conv2d`` ``(Co, Ci, k, 1)`` -> ``Conv1d`` ``(Co, Ci, k)``, :func:`map_soundnet`);
        ``bilinear`` unchanged; with ``fusion="transformer"``: ``conv_in_1x1`` -> ``conv_in``,
        ``conv_out_1x1`` -> ``conv_out``, ``transformer.transformer_encoder.*`` -> ``transformer.*``.
        Ignored: SoundNet's classifiers ``audionet.conv8_objs/scns``, the stored position codes
        ``transformer.pos_encoder.pe`` (recomputed) and entries of a fusion this model does not have.
        """
        visual = {k[len("visual_model."):]: v for k, v in state.items() if k.startswith("visual_model.")}
        mapped, ignored = super().map_original_state_dict(visual)
        rest = {k: v for k, v in state.items() if not k.startswith(("visual_model.", "audionet."))}
        prefixes = {"bilinear.": "bilinear.", "conv_in_1x1.": "conv_in.", "conv_out_1x1.": "conv_out.",
                    "transformer.transformer_encoder.": "transformer."}
        fusion, ignored_rest = rename_prefixes(rest, prefixes, self.state_dict())
        mapped.update(fusion)
        mapped.update(map_soundnet(state, "audionet.", "audio.", "vinet"))
        ignored = (["visual_model." + k for k in ignored] + ignored_rest
                   + [k for k in state if k.startswith("audionet.conv8")])
        return mapped, ignored


@register_model("avinet")
def avinet(**kwargs) -> AViNet:
    """AViNet with planar convolutions (see :class:`AViNet`)."""
    return build_variant(AViNet, "avinet", kwargs, spherical=False)


@register_model("avinet_sph")
def avinet_sph(**kwargs) -> AViNet:
    """AViNet whose visual encoder and decoder are spherical (the fusion is not seam-consistent)."""
    return build_variant(AViNet, "avinet_sph", kwargs, spherical=True)
