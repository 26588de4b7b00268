"""ViNet (Jain et al., 2020): S3D encoder and a 3D-conv decoder with temporal skip concatenation.

* Encoder: S3D without gating (:class:`sphsal.models.backbones.s3d.S3DEncoder`) on clips of 32 frames
  at 224 x 384 (ImageNet normalisation) ending at the target frame (causal): features ``y0``-``y3``.
* Decoder: bias-free 3D convolutions with ReLU, bilinear x2 upsampling in space after each of the first
  five, and the skip features concatenated along TIME (as published): ``y0`` (1024) -> 832,
  ``cat(., y1)`` -> 480, ``cat(., y2)`` -> 192, ``cat(., y3)`` -> 64 -> 32 -> 32, a 1x1x1 conv (with
  bias) to one channel and a sigmoid: ``(B, 1, 224, 384)`` in ``(0, 1)``. The temporal kernels equal
  the temporal strides (3, 5, 5, 2, 2 for 32 frames), so each such conv is computed on time-folded
  input (:func:`fold_time`: ``f`` frames into the channels, a ``1 x 3 x 3`` conv), the same
  convolution, which :func:`sphsal.nn.convert_to_spherical` can turn spherical.
* Recipe: KL divergence (eps 2.2204e-16), Adam lr 1e-4, batch 8. About 31.1 M parameters.

``vinet_sph`` is the same network made spherical by :func:`sphsal.models.spherical.make_spherical`:
spherical convolutions, spherical neighbours for the max-pool padding and for the upsampling. It has no
seam-breaking layer: rolling its ERP input by 32 columns (one column of the deepest grid) about the
polar axis rolls its output by 32 columns. ``clip_len`` (a multiple of 8), ``frame_size`` (multiples of
32) and ``width_mult`` give reduced configurations of the same architecture.
"""

from __future__ import annotations

import torch
from torch import nn

from sphsal.models.backbones.s3d import S3DEncoder
from sphsal.models.inputs import check_shapes, fit_clip, normalise_clip, require_keys, resize_clip
from sphsal.models.registry import InputSpec, build_variant, register_model
from sphsal.models.spherical import BilinearUpsample, make_spherical
from sphsal.models.state_maps import fold_time_weight, rename_prefixes

__all__ = ["ViNet", "ViNetDecoder", "FoldConv3d", "fold_time", "vinet", "vinet_sph", "check_clip",
           "check_frame_size"]

#: Released decoder module -> sphsal decoder module (``DecoderConvUp``, the 32-frame decoder).
DECODER_NAMES = {"convtsp1.0.": "conv1.conv.", "convtsp2.0.": "conv2.conv.", "convtsp3.0.": "conv3.conv.",
                 "convtsp4.0.": "conv4.conv.", "convtsp4.3.": "conv5.conv.", "convtsp4.6.": "conv6.conv.",
                 "convtsp4.8.": "head."}


def fold_time(x: torch.Tensor, f: int) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> ``(B, C f, T / f, H, W)``: frames ``[o f, (o + 1) f)`` of channel ``c`` go to
    channels ``c f .. c f + f - 1`` of output frame ``o``."""
    b, c, t, h, w = x.shape
    if t % f:
        raise ValueError(f"cannot fold {t} frames into groups of {f}")
    return x.reshape(b, c, t // f, f, h, w).transpose(2, 3).reshape(b, c * f, t // f, h, w)


class FoldConv3d(nn.Module):
    """A bias-free 3D conv with temporal kernel = temporal stride = ``fold`` and a ``k x k`` spatial kernel
    ("same" padding): ``(B, Ci, T, H, W) -> (B, Co, T / fold, H, W)``, as a ``1 x k x k`` conv on
    :func:`fold_time` input (weight ``(Co, Ci fold, 1, k, k)``)."""

    def __init__(self, in_channels: int, out_channels: int, fold: int, kernel_size: int = 3):
        super().__init__()
        self.fold = int(fold)
        k = kernel_size
        self.conv = nn.Conv3d(in_channels * self.fold, out_channels, (1, k, k), padding=(0, k // 2, k // 2),
                              bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(fold_time(x, self.fold))


class ViNetDecoder(nn.Module):
    """ViNet's decoder (module docstring): ``(y0, y1, y2, y3)`` -> ``(B, 1, 32 h0, 32 w0)`` in ``(0, 1)``.

    Args:
        channels: widths of ``(y0, y1, y2, y3)``.
        clip_len: input frames ``T`` (a multiple of 8): the features have ``T/8, T/4, T/2, T/2`` frames.
        width_mult: scales the last widths 64 / 32 / 32.
    """

    def __init__(self, channels: tuple[int, int, int, int], clip_len: int = 32, width_mult: float = 1.0):
        super().__init__()
        c0, c1, c2, c3 = channels
        c4, c5, c6 = (max(1, round(w * width_mult)) for w in (64, 32, 32))
        n = clip_len // 8  # frames left after conv4; conv5 and conv6 fold them into one
        f5 = 2 if n % 2 == 0 else 1
        self.conv1 = FoldConv3d(c0, c1, 1)
        self.conv2 = FoldConv3d(c1, c2, 3)
        self.conv3 = FoldConv3d(c2, c3, 5)
        self.conv4 = FoldConv3d(c3, c4, 5)
        self.conv5 = FoldConv3d(c4, c5, f5)
        self.conv6 = FoldConv3d(c5, c6, n // f5, kernel_size=1)
        self.head = nn.Conv3d(c6, 1, 1)
        self.up = BilinearUpsample(2)
        for m in self.modules():  # He init keeps the signal through the BN-free ReLU stack
            if isinstance(m, FoldConv3d):
                nn.init.kaiming_normal_(m.conv.weight, nonlinearity="relu")

    def forward(self, y0, y1, y2, y3) -> torch.Tensor:
        z = self.up(torch.relu(self.conv1(y0)))
        z = self.up(torch.relu(self.conv2(torch.cat((z, y1), dim=2))))
        z = self.up(torch.relu(self.conv3(torch.cat((z, y2), dim=2))))
        z = self.up(torch.relu(self.conv4(torch.cat((z, y3), dim=2))))
        z = self.up(torch.relu(self.conv5(z)))
        z = torch.relu(self.conv6(z))
        return torch.sigmoid(self.head(z))[:, :, 0]


def check_clip(frames, clip_len: int, frame_size: tuple[int, int], model: str, *,
               audio_samples: int | None = None, audio=None) -> None:
    """``ValueError`` naming ``model`` and the input unless ``frames`` is ``(B, 3, clip_len, H, W)`` at
    ``frame_size`` and, for a model with ``audio_samples``, ``audio`` a ``(B, audio_samples)`` waveform
    with the same ``B`` (without ``audio_samples`` an ``audio`` is refused: the model reads none)."""
    shapes = {"frames": (3, clip_len, *frame_size)}
    hint = f"clip_len={clip_len}, frame_size={tuple(frame_size)}"
    if audio_samples is not None:
        shapes["audio"] = (audio_samples,)
        hint += f", audio a mono waveform of {audio_samples} samples"
    hint += "; prepare_inputs fits a batch to these sizes"
    check_shapes(model, {"frames": frames, "audio": audio}, shapes, hint)


def check_frame_size(frame_size, stride: int, spherical: bool, model: str) -> tuple[int, int]:
    """``(H, W)`` as ints; ``ValueError`` naming ``model`` unless both are multiples of the network's
    ``stride`` (and ``W`` of ``2 stride`` when ``spherical``: the deepest ERP grid must have an even
    width to wrap over the poles)."""
    h, w = int(frame_size[0]), int(frame_size[1])
    if min(h, w) < stride or h % stride or w % stride:
        raise ValueError(f"{model}: frame_size must be (H, W) with multiples of {stride}, got {frame_size}")
    if spherical and w % (2 * stride):
        raise ValueError(f"{model}: a spherical model needs W a multiple of {2 * stride} (an even-width "
                         f"deepest grid wraps over the poles), got frame_size={frame_size}")
    return h, w


class ViNet(nn.Module):
    """ViNet (module docstring).

    Args:
        width_mult: scales every width (1.0: published).
        clip_len: frames per clip, a multiple of 8 (32).
        frame_size: ``(H, W)``, multiples of 32 (224 x 384); even ``W / 32`` for ``spherical``.
        spherical: build ``vinet_sph`` (:func:`sphsal.models.spherical.make_spherical`).
    """

    name = "vinet"

    def __init__(self, width_mult: float = 1.0, clip_len: int = 32, frame_size: tuple[int, int] = (224, 384),
                 spherical: bool = False):
        super().__init__()
        frame_size = check_frame_size(frame_size, 32, spherical, self.name)
        if clip_len < 8 or clip_len % 8:
            raise ValueError(f"{self.name}: clip_len must be a positive multiple of 8, got {clip_len}")
        self.clip_len, self.frame_size, self.spherical = int(clip_len), frame_size, spherical
        self.grid = (clip_len // 8, frame_size[0] // 32, frame_size[1] // 32)
        self.encoder = S3DEncoder(width_mult)
        self.decoder = ViNetDecoder(self.encoder.channels, self.clip_len, width_mult)
        if spherical:
            make_spherical(self.encoder)
            make_spherical(self.decoder)
        self.input_spec = InputSpec(clip_len=self.clip_len, frame_size=frame_size, output_size=frame_size)
        self.default_loss = "kld"
        self.default_optimizer = {"name": "adam", "lr": 1e-4, "weight_decay": 0.0}

    def prepare_inputs(self, batch: dict) -> dict:
        """``frames``: the batch's clip fitted to ``clip_len`` frames ending at the target (first frame
        repeated when short), resized to ``frame_size``, ImageNet-normalised."""
        require_keys(batch, ("frames",), self.name)
        frames = fit_clip(batch["frames"].float(), self.clip_len)
        return {"frames": normalise_clip(resize_clip(frames, self.frame_size))}

    def example_inputs(self, batch_size: int = 1) -> dict:
        """Random ``frames`` ``(B, 3, clip_len, H, W)``."""
        return {"frames": torch.randn(batch_size, 3, self.clip_len, *self.frame_size)}

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` ``(B, 3, clip_len, H, W)`` normalised clip -> ``(B, 1, H, W)`` saliency of its last
        frame, in ``(0, 1)``."""
        check_clip(frames, self.clip_len, self.frame_size, self.name)
        return self.decoder(*self.encoder(frames))

    def map_original_state_dict(self, state: dict) -> tuple[dict, list[str]]:
        """Rename a released ViNet checkpoint (``VideoSaliencyModel``, 32-frame decoder) to this model.

        ``backbone.*`` -> ``encoder.*`` (same module names), ``decoder.convtsp1.0`` / ``convtsp2.0`` /
        ``convtsp3.0`` / ``convtsp4.0`` / ``convtsp4.3`` / ``convtsp4.6`` -> ``decoder.conv1`` ...
        ``conv6`` (weights ``(Co, Ci, f, 3, 3)`` -> ``(Co, Ci f, 1, 3, 3)``, :func:`fold_time_weight`),
        ``decoder.convtsp4.8`` -> ``decoder.head``. Returns ``(mapped, ignored_keys)``.
        """
        prefixes = {"backbone.": "encoder."}
        prefixes.update({"decoder." + src: "decoder." + dst for src, dst in DECODER_NAMES.items()})
        return rename_prefixes(state, prefixes, self.state_dict(), _fold_decoder)


def _fold_decoder(key: str, value: torch.Tensor) -> torch.Tensor:
    """Released decoder conv weights -> :class:`FoldConv3d` layout (other entries unchanged)."""
    if key.startswith("decoder.conv") and key.endswith(".conv.weight"):
        return fold_time_weight(value)
    return value


@register_model("vinet")
def vinet(**kwargs) -> ViNet:
    """ViNet with planar convolutions (see :class:`ViNet`)."""
    return build_variant(ViNet, "vinet", kwargs, spherical=False)


@register_model("vinet_sph")
def vinet_sph(**kwargs) -> ViNet:
    """ViNet made spherical (:func:`sphsal.models.spherical.make_spherical`) for ERP input."""
    return build_variant(ViNet, "vinet_sph", kwargs, spherical=True)
