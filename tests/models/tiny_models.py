"""Small configurations shared by the model tests (reduced widths and sizes keep them fast)."""

import math

import torch

from sphsal.audio.ambisonics import encode

# AVS360 at 1/16 width on 2-frame 32 x 64 clips with 32 x 32 cube faces: fusion grid 1 x 2 (the left and
# right hemispheres), output 4 x 8. (The spherical CPU convolution costs about 1 s per training step
# even at this size.)
TINY_AVS360 = {"width_mult": 1 / 16, "clip_len": 2, "frame_size": (32, 64), "face_size": 32}
TINY_UNET = {"width_mult": 1 / 16, "frame_size": (16, 32)}
TINY_PRIOR = {"output_size": (8, 16)}
# The baselines at 1/16 width: 8-frame 64 x 128 clips for the S3D models (deepest grid 2 x 4), 4-frame
# 32 x 64 clips for STAViS, 32 x 64 frames (4 x 8 output) for mvva; SoundNet gets its shortest input.
TINY_VINET = {"width_mult": 1 / 16, "clip_len": 8, "frame_size": (64, 128)}
TINY_AVINET = {**TINY_VINET, "audio_samples": 4574}
TINY_STAVIS = {"width_mult": 1 / 16, "clip_len": 4, "frame_size": (32, 64), "audio_samples": 4574}
TINY_STAVIS_VISUAL = {k: v for k, v in TINY_STAVIS.items() if k != "audio_samples"}
TINY_MVVA = {"width_mult": 1 / 16, "frame_size": (32, 64), "steps": 2, "gap": 1, "mel_windows": 8}

TINY_KWARGS = {
    "avs360": TINY_AVS360,
    "avs360_visual": TINY_AVS360,
    "avs360_no_aem": TINY_AVS360,
    "spherical_unet": TINY_UNET,
    "planar_unet": TINY_UNET,
    "aem_ecb": TINY_PRIOR,
    "vinet": TINY_VINET,
    "vinet_sph": TINY_VINET,
    "avinet": TINY_AVINET,
    "avinet_sph": TINY_AVINET,
    "stavis": TINY_STAVIS,
    "stavis_sph": TINY_STAVIS,
    "stavis_visual": TINY_STAVIS_VISUAL,
    "stavis_visual_sph": TINY_STAVIS_VISUAL,
    "mvva": TINY_MVVA,
    "mvva_sph": TINY_MVVA,
}

SAMPLE_RATE = 16000
FPS = 10


def ambisonic_batch(az_deg: float, batch_size: int = 1, frames: int = 4, channels: int = 4,
                    size: tuple[int, int] = (64, 128)) -> dict:
    """A collated batch of dataset items: random frames in [0, 1] and a first-order ambiX field (or
    its first ``channels`` channels) of a 440 Hz tone from azimuth ``az_deg`` on the horizon."""
    n = frames * SAMPLE_RATE // FPS
    t = torch.arange(n) / SAMPLE_RATE
    tone = torch.sin(2 * math.pi * 440 * t)
    field = encode(tone, math.radians(az_deg), 0.0, order=1)[:channels].float()
    return {
        "frames": torch.rand(batch_size, 3, frames, *size),
        "audio": field.expand(batch_size, -1, -1).clone(),
        "sample_rate": torch.full((batch_size,), SAMPLE_RATE),
        "fps": torch.full((batch_size,), float(FPS)),
        "saliency": torch.rand(batch_size, *size),
    }


def roll_mismatch(model, inputs: dict, shift: int) -> float:
    """Largest difference between the output for ``inputs["frames"]`` rolled by ``shift`` ERP columns
    and the output rolled by ``shift`` columns (train-mode BatchNorm: statistics over all positions)."""
    model.train()
    with torch.no_grad():
        out = model(**inputs)
        rolled = model(**{**inputs, "frames": torch.roll(inputs["frames"], shift, -1)})
    return float((rolled - torch.roll(out, shift, -1)).abs().max() / out.std())


def conv_types(model) -> dict:
    """``{module name: class name}`` of the model's layers that carry weights or pool."""
    layers = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    return {n: type(m).__name__ for n, m in model.named_modules()
            if isinstance(m, layers) or "Pool" in type(m).__name__}
