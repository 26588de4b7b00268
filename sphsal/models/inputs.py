"""Turning a collated batch of dataset items into model inputs (shared by every model's
``prepare_inputs``).

A batch holds ``frames`` ``(B, C, T, H, W)`` in ``[0, 1]``, ``audio`` ``(B, channels, S)`` covering the
clip's time span, ``sample_rate`` (an int or a ``(B,)`` tensor), optionally ``fps`` and
``saliency`` ``(B, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "require_keys",
    "check_shapes",
    "fit_clip",
    "resize_clip",
    "normalise_clip",
    "batch_value",
    "item_name",
    "require_item_audio",
    "clip_fps",
    "clip_log_mel",
    "clip_energy_map",
    "max_normalise",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def require_keys(batch: dict, keys: tuple[str, ...], model: str) -> None:
    """Raise ``ValueError`` naming the model and the missing batch keys."""
    missing = [k for k in keys if k not in batch]
    if missing:
        raise ValueError(f"{model} needs batch keys {list(keys)}; missing {missing} (got {sorted(batch)})")


def check_shapes(model: str, inputs: dict, shapes: dict[str, tuple[int | None, ...]], hint: str = "") -> int:
    """Check a forward's inputs: each ``inputs[name]`` for ``name`` in ``shapes`` must be a tensor of shape
    ``(B, *shapes[name])`` (``None``: any size in that dimension), all with the same batch size ``B``, and
    every other entry of ``inputs`` must be ``None`` (an input the model was not built to read).
    Returns ``B``; otherwise ``ValueError`` naming ``model`` and the input (``hint`` appended)."""
    hint = f"; {hint}" if hint else ""
    for name, x in inputs.items():
        if name not in shapes and x is not None:
            raise ValueError(f"{model}: got input {name!r}, which this model (as built) does not read; it "
                             f"reads {', '.join(shapes)}")
    batch, first = None, None
    for name, shape in shapes.items():
        x = inputs.get(name)
        expected = "(B, " + ", ".join("*" if n is None else str(n) for n in shape) + ")"
        if x is None:
            raise ValueError(f"{model}: missing input {name!r}, expected {expected}{hint}")
        if not isinstance(x, torch.Tensor) or x.dim() != len(shape) + 1 or any(
                n is not None and n != got for n, got in zip(shape, x.shape[1:])):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{model}: {name} must be {expected}, got {got}{hint}")
        if batch is None:
            batch, first = x.shape[0], name
        elif x.shape[0] != batch:
            raise ValueError(f"{model}: {name} has batch size {x.shape[0]} but {first} has {batch}; every "
                             "input needs the same batch size")
    return batch


def fit_clip(frames: torch.Tensor, clip_len: int) -> torch.Tensor:
    """Make a clip ``(B, C, T, H, W)`` exactly ``clip_len`` frames long, ending at its last frame
    (the target): longer clips keep their last ``clip_len`` frames, shorter ones repeat their first
    frame at the start (as AVS360 does at the beginning of a video)."""
    if frames.dim() != 5:
        raise ValueError(f"frames must be (B, C, T, H, W), got shape {tuple(frames.shape)}")
    t = frames.shape[2]
    if t >= clip_len:
        return frames[:, :, t - clip_len:]
    head = frames[:, :, :1].expand(-1, -1, clip_len - t, -1, -1)
    return torch.cat((head, frames), dim=2)


def resize_clip(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize every frame of ``(B, C, T, H, W)`` to ``size`` ``(H', W')`` (bilinear, antialiased when
    shrinking); ERP frames stay ERP frames (each axis is scaled on its own)."""
    b, c, t, h, w = frames.shape
    if (h, w) == tuple(size):
        return frames
    flat = frames.transpose(1, 2).reshape(b * t, c, h, w)
    out = F.interpolate(flat.float(), size=tuple(size), mode="bilinear", align_corners=False,
                        antialias=size[0] < h or size[1] < w)
    return out.reshape(b, t, c, *size).transpose(1, 2)


def normalise_clip(frames: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """``(frames - mean) / std`` per colour channel of ``(B, 3, ...)`` frames in ``[0, 1]``."""
    if frames.shape[1] != len(mean):
        raise ValueError(f"frames must have {len(mean)} colour channels in dim 1, got shape "
                         f"{tuple(frames.shape)}")
    shape = (1, -1) + (1,) * (frames.dim() - 2)
    m = torch.tensor(mean, dtype=frames.dtype, device=frames.device).view(shape)
    s = torch.tensor(std, dtype=frames.dtype, device=frames.device).view(shape)
    return (frames - m) / s


def batch_value(batch: dict, key: str, i: int) -> float:
    """Item ``i``'s scalar ``batch[key]`` (a number, a list or a ``(B,)`` tensor)."""
    value = batch[key]
    if isinstance(value, torch.Tensor):
        return float(value.reshape(-1)[i] if value.numel() > 1 else value)
    if isinstance(value, (list, tuple)):
        return float(value[i])
    return float(value)


def item_name(batch: dict, i: int) -> str:
    """How messages name item ``i`` of a batch: ``video '<batch["video"][i]>'``, else ``batch item i``."""
    return f"video {batch['video'][i]!r}" if "video" in batch else f"batch item {i}"


def require_item_audio(batch: dict, i: int, what: str) -> None:
    """``ValueError`` naming item ``i``'s video (:func:`item_name`) when it has no audio (no channels, no
    samples or a sample rate of 0: a video without an audio stream) although the model reads ``what``;
    the message points to the visual-only models."""
    audio = batch["audio"]
    if audio.shape[1] == 0 or audio.shape[-1] == 0 or batch_value(batch, "sample_rate", i) <= 0:
        raise ValueError(f"{item_name(batch, i)} has no audio, but the model reads {what}; choose a "
                         "visual-only model (e.g. avs360_visual or stavis_visual), or build the model with "
                         "use_audio=False (and use_aem=False) where it has those options")


def clip_fps(batch: dict, i: int, num_frames: int) -> float:
    """Frame rate of item ``i``: ``batch["fps"]`` when present, else implied by the audio covering the
    clip's ``num_frames`` frames: ``num_frames * sample_rate / samples`` (``ValueError`` naming the
    video when it has no audio, :func:`require_item_audio`)."""
    if "fps" in batch:
        return batch_value(batch, "fps", i)
    require_item_audio(batch, i, "its audio")
    return num_frames * batch_value(batch, "sample_rate", i) / batch["audio"].shape[-1]


def clip_log_mel(batch: dict, num_frames: int) -> torch.Tensor:
    """Log-mel features of each item's audio, one 64 x 64 example per clip frame, tiled to 3
    channels: ``(B, 3, T, 64, 64)`` (:func:`sphsal.audio.log_mel`, which takes the W channel of
    ambisonic audio and the channel mean of mono or stereo audio). ``ValueError`` naming the video of
    an item without audio (:func:`require_item_audio`)."""
    from sphsal.audio import log_mel

    require_keys(batch, ("audio", "sample_rate"), "log-mel features")
    audio = batch["audio"]
    mels = []
    for i in range(audio.shape[0]):
        require_item_audio(batch, i, "log-mel features of its audio")
        fps = clip_fps(batch, i, num_frames)
        mels.append(log_mel(audio[i].detach().float().cpu(), int(batch_value(batch, "sample_rate", i)), fps,
                            num_frames=num_frames))
    mel = torch.stack(mels).unsqueeze(1).expand(-1, 3, -1, -1, -1)
    return mel.contiguous().to(audio.device)


def max_normalise(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Divide each map of ``(B, ..., H, W)`` by its maximum (maps that are all zero stay zero)."""
    peak = x.flatten(1).amax(dim=1).clamp_min(eps)
    return x / peak.view(-1, *([1] * (x.dim() - 1)))


def check_aem_options(decoder: str, quantity: str) -> None:
    """``ValueError`` naming the option unless ``decoder`` / ``quantity`` are valid AEM settings."""
    from sphsal.audio.energy_map import DECODERS

    if decoder not in DECODERS:
        raise ValueError(f"aem_decoder must be one of {DECODERS}, got {decoder!r}")
    if quantity not in ("rms", "energy"):
        raise ValueError(f"aem_quantity must be 'rms' or 'energy', got {quantity!r}")


def clip_energy_map(batch: dict, num_frames: int, size: tuple[int, int], *, window: float = 0.1,
                    analysis_size: tuple[int, int] | None = None, decoder: str = "cardioid",
                    quantity: str = "rms", clip_len: int | None = None) -> torch.Tensor:
    """Audio energy map of each item's clip: ``(B, 1, h, w)`` in ``[0, 1]``.

    :func:`sphsal.audio.energy_map` (``decoder`` beams, default cardioid; ``quantity`` ``"rms"`` or
    ``"energy"``; ``window`` seconds, one map per each of the ``num_frames`` frames that the audio
    spans) on an ``analysis_size`` ERP grid (default: 4x ``size``), area-resized to ``size``, averaged
    over the frames the model sees (``clip_len``: the last ``clip_len`` frames, the first repeated when
    there are fewer, as :func:`fit_clip` makes the clip; default all ``num_frames``) and
    max-normalised, as AVS360 builds it. Raises ``ValueError`` when the audio is not ambisonic (mono,
    stereo; the message names the model option that turns the AEM off) or missing
    (:func:`require_item_audio`).
    """
    from sphsal.audio import energy_map
    from sphsal.audio.ambisonics import require_ambisonic_channels

    require_keys(batch, ("audio", "sample_rate"), "the audio energy map")
    audio = batch["audio"]
    ah, aw = analysis_size or (4 * size[0], 4 * size[1])
    for i in range(audio.shape[0]):
        require_item_audio(batch, i, "its audio energy map (AEM), which needs ambisonic audio")
    # one channel count for the whole batch (collate_items): checked once, naming its first item's video
    try:
        require_ambisonic_channels(audio.shape[1], item_name(batch, 0))
    except ValueError as err:
        raise ValueError(f"{err}. The model reads its audio energy map (AEM), which needs first-order "
                         "(or higher) ambisonic audio. For mono or stereo audio build a model that has a "
                         "use_aem option with use_aem=False (--model-arg use_aem=false; sphsal predict "
                         "--no-aem) or choose one that reads no AEM (e.g. avs360_no_aem); aem_ecb, the "
                         "AEM prior itself, has no such option and cannot run without ambisonic audio"
                         ) from err
    maps = []
    for i in range(audio.shape[0]):
        fps = clip_fps(batch, i, num_frames)
        aem = energy_map(audio[i].detach().float().cpu(), int(batch_value(batch, "sample_rate", i)), fps,
                         ah, aw, decoder=decoder, window=window, num_frames=num_frames, quantity=quantity)
        maps.append(fit_clip(aem[None, None], clip_len or num_frames)[0].mean(dim=1))
    aem = F.adaptive_avg_pool2d(torch.stack(maps), size)
    return max_normalise(aem).to(audio.device)
