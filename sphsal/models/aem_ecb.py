"""The fixed audio-visual prior ``ECB * AEM``: no parameters, no training, any ambisonic video.

The audio energy map (AEM) of the target frame says where the sound comes from; the equator centre
bias (ECB, :func:`sphsal.priors.equator_bias`: AVS360's Gaussian, 15 deg in elevation, 75 deg in
azimuth) says where viewers look anyway.
Their product, sum-normalised, is a baseline that every learned audio-visual model should beat.
"""

from __future__ import annotations

import torch
from torch import nn

from sphsal._checks import check_integer, check_number
from sphsal.models.inputs import check_aem_options, check_shapes, clip_energy_map, max_normalise, require_keys
from sphsal.models.registry import InputSpec, register_model
from sphsal.priors import equator_bias

__all__ = ["AEMECBPrior", "aem_ecb"]


class AEMECBPrior(nn.Module):
    """``ECB * AEM`` normalised to sum 1.

    Args:
        output_size: ``(H, W)`` ERP size of the map (``W`` even).
        clip_len: frames of audio context (an integer >= 1): the AEM is averaged over the clip's frames
            (1: the target frame only, its 0.1 s window).
        floor: weight (finite, >= 0) of the plain ECB added to the product (``ECB * (AEM + floor)``), so
            silence gives the centre bias instead of an empty map. With ``floor=0`` a silent clip (an
            all-zero AEM) has no product to normalise; its map is the ECB alone, so every map sums to 1.
        aem_decoder, aem_quantity: beams and measure of the AEM (as :class:`sphsal.models.avs360.AVS360`).

    Invalid arguments raise ``ValueError`` naming them.
    """

    def __init__(self, output_size: tuple[int, int] = (64, 128), clip_len: int = 1, floor: float = 1e-3,
                 aem_decoder: str = "cardioid", aem_quantity: str = "rms"):
        super().__init__()
        check_aem_options(aem_decoder, aem_quantity)
        self.aem_decoder, self.aem_quantity = aem_decoder, aem_quantity
        output_size = (int(output_size[0]), int(output_size[1]))
        if min(output_size) < 1 or output_size[1] % 2:
            raise ValueError(f"output_size must be positive (H, W) with an even W, got {output_size}")
        floor, clip_len = check_number(floor, "floor", inclusive=True), check_integer(clip_len, "clip_len")
        self.output_size = output_size
        self.floor = floor
        self.register_buffer("ecb", equator_bias(*output_size)[None, None], persistent=False)
        self.input_spec = InputSpec(clip_len=clip_len, frame_size=output_size, output_size=output_size,
                                    needs_aem=True, audio_channels=4)
        self.default_loss = "kld"
        # Nothing to train: the prior has no parameters (the recipe only completes the model API).
        self.default_optimizer = {"name": "adam", "lr": 0.0}

    def forward(self, aem: torch.Tensor) -> torch.Tensor:
        """``aem`` ``(B, 1, H, W)`` non-negative (any scale) -> ``(B, 1, H, W)`` summing to 1 (the ECB
        alone for an all-zero ``aem`` when ``floor`` is 0). ``ValueError`` for a non-finite ``aem``
        (checked in eager mode; a compiled model returns NaN maps for it, never the ECB of silence)."""
        check_shapes("aem_ecb", {"aem": aem}, {"aem": (1, *self.output_size)})
        if not torch.compiler.is_compiling() and not torch.isfinite(aem).all():
            raise ValueError("aem_ecb: aem contains NaN or infinite values")
        prior = self.ecb * (max_normalise(aem.clamp_min(0)) + self.floor)
        total = prior.sum(dim=(2, 3), keepdim=True)
        prior = torch.where(total == 0, self.ecb.to(prior.dtype), prior)  # silence with floor 0: the ECB
        return prior / prior.sum(dim=(2, 3), keepdim=True)

    def prepare_inputs(self, batch: dict) -> dict:
        """``aem``: the clip's audio energy map at ``output_size`` (``ValueError`` for non-ambisonic
        audio)."""
        require_keys(batch, ("audio", "sample_rate"), "aem_ecb")
        frames = batch.get("frames")
        num_frames = frames.shape[2] if frames is not None else self.input_spec.clip_len
        return {"aem": clip_energy_map(batch, num_frames, self.output_size, analysis_size=self.output_size,
                                       decoder=self.aem_decoder, quantity=self.aem_quantity,
                                       clip_len=self.input_spec.clip_len)}

    def example_inputs(self, batch_size: int = 1) -> dict:
        """A random energy map at ``output_size``."""
        return {"aem": torch.rand(batch_size, 1, *self.output_size)}


@register_model("aem_ecb")
def aem_ecb(**kwargs) -> AEMECBPrior:
    """The fixed ``ECB * AEM`` prior (see :class:`AEMECBPrior`)."""
    return AEMECBPrior(**kwargs)
