"""Spherical U-Net of Vo et al. (GTSD 2020) for 360-degree video saliency, and its planar ablation.

Input: the RGB frame and 10 x the saliency map of the frame 5 frames earlier (max-normalised; the released
code's ``frame_interval=5`` in training and testing; for a video's first 5 frames, as released, the map
of one fixation at the front), 4 channels at 240 x 480 ERP. Encoder: one 3x3
convolution + BN + ReLU per level with 64 / 128 / 256 / 256 channels, 2x2 max-pooling between levels
(240x480 -> 120x240 -> 60x120 -> 30x60). Decoder: nearest x2 upsampling, concatenation with the encoder
feature of the same size, 3x3 conv + BN + ReLU to 128 and 64 channels, and a last 3x3 conv to 1 channel
without BN. The spherical model's convolutions are :class:`sphsal.nn.SphericalConv2d` (spherical-cap 3x3
kernel) and its pooling :class:`sphsal.nn.SphericalMaxPool2d` (built with
:func:`sphsal.nn.convert_to_spherical`); ``planar_unet`` keeps ``nn.Conv2d`` / ``nn.MaxPool2d``.

The map is trained against 10 x the ground truth with the released code's sphere-weighted squared error
(``sphere_sse``: summed with the pixels' solid angles as weights) and SGD at lr 1e-4, momentum 0.9,
weight decay 1e-5, as released (``train.py``, ``smse.py``). A ReLU on the last conv's output makes the
returned map non-negative (the published network left it linear).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sphsal._checks import check_integer
from sphsal.data.dataset import PREV_SALIENCY_STARTS
from sphsal.models.backbones.resnet3d import scaled_widths
from sphsal.models.inputs import check_shapes, max_normalise, require_keys
from sphsal.models.registry import InputSpec, build_variant, register_model

__all__ = ["SaliencyUNet", "PREV_SALIENCY_SCALE", "spherical_unet", "planar_unet"]

#: The earlier frame's saliency map enters (and the ground truth is compared) at 10x its [0, 1] scale.
PREV_SALIENCY_SCALE = 10.0


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv (padding 1) + BatchNorm + ReLU, size preserving."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class SaliencyUNet(nn.Module):
    """The GTSD U-Net (module docstring): ``(B, 3, H, W)`` frame + ``(B, 1, H, W)`` earlier frame's map ->
    ``(B, 1, H, W)`` saliency at 10x the ground-truth scale.

    Args:
        spherical: spherical-cap convolutions and spherical pooling (``False``: planar).
        frame_size: ``(H, W)``, both multiples of 8 (three poolings); 240 x 480 as published. The
            spherical model also needs ``W`` a multiple of 16: its deepest grid ``(H/8, W/8)`` must have
            an even width to wrap over the poles.
        width_mult: scales the widths 64 / 128 / 256 / 256.
        prev_interval: how many frames back the input map is (5 as released; the dataset's
            ``prev_saliency``, and the distance at which predictions are fed back when predicting),
            counted at the dataset's (or ``sphsal predict``'s) frame rate: the released code counts
            the stored frames, so with another ``fps`` the gap in seconds changes.
        prev_start: the input map of a video's first ``prev_interval`` frames: ``"centre"`` (as
            released: one fixation at the front, a 9-degree spherical Gaussian) or ``"zeros"``
            (:func:`sphsal.data.dataset.prev_saliency_start`).
    """

    def __init__(self, spherical: bool = True, frame_size: tuple[int, int] = (240, 480),
                 width_mult: float = 1.0, prev_interval: int = 5, prev_start: str = "centre"):
        super().__init__()
        prev_interval = check_integer(prev_interval, "prev_interval")
        if prev_start not in PREV_SALIENCY_STARTS:
            raise ValueError(f"prev_start must be one of {PREV_SALIENCY_STARTS}, got {prev_start!r}")
        frame_size = (int(frame_size[0]), int(frame_size[1]))
        if frame_size[0] % 8 or frame_size[1] % 8 or min(frame_size) < 8:
            raise ValueError(f"frame_size must be multiples of 8 (three 2x2 poolings), got {frame_size}")
        if spherical and frame_size[1] % 16:
            raise ValueError(f"spherical_unet: frame_size must have W a multiple of 16 (the deepest ERP grid "
                             f"W/8 must be even to wrap over the poles), got {frame_size}")
        c1, c2, c3, c4 = scaled_widths(width_mult, (64, 128, 256, 256))
        self.spherical = spherical
        self.frame_size = frame_size
        self.enc1 = conv_bn_relu(4, c1)
        self.enc2 = conv_bn_relu(c1, c2)
        self.enc3 = conv_bn_relu(c2, c3)
        self.enc4 = conv_bn_relu(c3, c4)
        self.pool = nn.MaxPool2d(2)
        self.dec3 = conv_bn_relu(c4 + c3, c2)
        self.dec2 = conv_bn_relu(c2 + c2, c1)
        self.out = nn.Conv2d(c1 + c1, 1, 3, padding=1)
        if spherical:
            from sphsal.nn import convert_to_spherical

            convert_to_spherical(self)
        self.input_spec = InputSpec(clip_len=1, frame_size=frame_size, output_size=frame_size,
                                    needs_prev_saliency=True, prev_saliency_interval=prev_interval,
                                    prev_saliency_start=prev_start)
        self.default_loss = "sphere_sse"
        self.default_optimizer = {"name": "sgd", "lr": 1e-4, "momentum": 0.9, "weight_decay": 1e-5}

    def forward(self, image: torch.Tensor, prev_saliency: torch.Tensor) -> torch.Tensor:
        """Args:
            image: ``(B, 3, H, W)`` ERP frame in ``[0, 1]``.
            prev_saliency: ``(B, 1, H, W)`` saliency of the frame ``prev_interval`` frames earlier,
                max-normalised to ``[0, 1]`` (the ``prev_start`` map for a video's first frames).

        Returns:
            ``(B, 1, H, W)`` non-negative saliency, about 10x a ``[0, 1]`` ground truth.

        ``H`` and ``W`` may differ from ``frame_size`` but must be multiples of 8 (three 2x2 poolings),
        and ``W`` of 16 for the spherical model (an even-width deepest grid); other shapes raise
        ``ValueError`` naming the input.
        """
        name = "spherical_unet" if self.spherical else "planar_unet"
        inputs = {"image": image, "prev_saliency": prev_saliency}
        check_shapes(name, inputs, {"image": (3, None, None), "prev_saliency": (1, None, None)})
        h, w = image.shape[-2:]
        if h % 8 or w % 8 or min(h, w) < 8:
            raise ValueError(f"{name}: image H and W must be multiples of 8 (three 2x2 poolings), got "
                             f"{tuple(image.shape)}")
        if self.spherical and w % 16:
            raise ValueError(f"{name}: image W must be a multiple of 16 (the deepest ERP grid W/8 must be "
                             f"even to wrap over the poles), got {tuple(image.shape)}")
        if prev_saliency.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"{name}: prev_saliency must have the image's size {h} x {w}, got "
                             f"{tuple(prev_saliency.shape)}")
        e1 = self.enc1(torch.cat((image, PREV_SALIENCY_SCALE * prev_saliency.to(image.dtype)), dim=1))
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        e4 = self.enc4(self.pool(e3))
        d3 = self.dec3(torch.cat((_upsample(e4), e3), dim=1))
        d2 = self.dec2(torch.cat((_upsample(d3), e2), dim=1))
        return F.relu(self.out(torch.cat((_upsample(d2), e1), dim=1)))

    def prepare_inputs(self, batch: dict) -> dict:
        """``image``: the clip's last frame resized to ``frame_size``; ``prev_saliency``: the batch's
        ``prev_saliency`` ``(B, H, W)`` (the ground truth of the frame ``prev_interval`` frames earlier in
        training, that frame's prediction when predicting a video) area-resized and max-normalised, or
        zeros when the batch has none."""
        require_keys(batch, ("frames",), "spherical_unet")
        frames = batch["frames"].float()
        if frames.dim() != 5 or frames.shape[1] != 3:
            raise ValueError(f"batch['frames'] must be (B, 3, T, H, W), got shape {tuple(frames.shape)}")
        image = F.interpolate(frames[:, :, -1], size=self.frame_size, mode="bilinear", align_corners=False,
                              antialias=frames.shape[-2] > self.frame_size[0])
        prev = batch.get("prev_saliency")
        if prev is None:
            prev = torch.zeros(frames.shape[0], 1, *self.frame_size, device=frames.device)
        else:
            prev = prev.float().reshape(frames.shape[0], 1, *prev.shape[-2:])
            shrink = prev.shape[-2] >= self.frame_size[0]
            prev = F.interpolate(prev, size=self.frame_size, mode="area") if shrink else \
                F.interpolate(prev, size=self.frame_size, mode="bilinear", align_corners=False)
            prev = max_normalise(prev)
        return {"image": image, "prev_saliency": prev}

    def example_inputs(self, batch_size: int = 1) -> dict:
        """Random frame and earlier frame's map at ``frame_size``."""
        return {"image": torch.rand(batch_size, 3, *self.frame_size),
                "prev_saliency": torch.rand(batch_size, 1, *self.frame_size)}


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


# Models stored without these options read the map of the frame before, zeros before the first frame.
_EARLIER = {"prev_interval": 1, "prev_start": "zeros"}


@register_model("spherical_unet", earlier_defaults=_EARLIER)
def spherical_unet(**kwargs) -> SaliencyUNet:
    """GTSD spherical U-Net with spherical-cap convolutions (see :class:`SaliencyUNet`)."""
    return build_variant(SaliencyUNet, "spherical_unet", kwargs, spherical=True)


@register_model("planar_unet", earlier_defaults=_EARLIER)
def planar_unet(**kwargs) -> SaliencyUNet:
    """The same U-Net with planar ``nn.Conv2d`` / ``nn.MaxPool2d`` (ablation)."""
    return build_variant(SaliencyUNet, "planar_unet", kwargs, spherical=False)
