"""Pictures and videos of saliency maps: colour heatmaps, overlays on frames, MP4 writing with audio.

Frames here are ``uint8`` RGB arrays ``(H, W, 3)``; maps are non-negative ``(H, W)`` arrays or tensors
of any scale (each is normalised by its own maximum).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction

import cv2
import numpy as np
import torch

from sphsal._checks import check_integer, check_number
from sphsal.atomic import atomic_path


def _as_map(saliency) -> np.ndarray:
    m = saliency.detach().cpu().numpy() if isinstance(saliency, torch.Tensor) else np.asarray(saliency)
    while m.ndim > 2 and m.shape[0] == 1:  # (1, 1, H, W), (1, H, W): leading axes only (a 1-row map
        m = m[0]                            # is a map)
    m = m.astype(np.float32)
    if m.ndim != 2:
        raise ValueError(f"saliency must be one (H, W) map, got shape {np.shape(saliency)}")
    if not np.all(np.isfinite(m)):
        raise ValueError("saliency contains NaN or infinite values")
    return m


def heatmap(saliency, size: tuple[int, int] | None = None, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Colour picture ``(H, W, 3)`` uint8 RGB of a map, max-normalised (an all-zero map is dark blue).

    ``size`` = (H, W) resizes the map first (bilinear)."""
    m = _as_map(saliency)
    if size is not None and m.shape != tuple(size):
        m = cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    peak = float(m.max())
    scaled = np.zeros_like(m) if peak <= 0 else np.clip(m / peak, 0.0, 1.0)
    bgr = cv2.applyColorMap((scaled * 255).astype(np.uint8), colormap)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def overlay(frame: np.ndarray, saliency, alpha: float = 0.5) -> np.ndarray:
    """Blend the heatmap of ``saliency`` over an RGB ``frame`` ``(H, W, 3)`` uint8; the map is resized
    to the frame. ``alpha`` is the heatmap's weight where the map is at its maximum (it fades with the
    map's value so low-saliency regions show the frame), in [0, 1]."""
    alpha = check_number(alpha, "alpha", inclusive=True)
    if alpha > 1:  # the blend would leave [0, 255] and wrap around in uint8
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    frame = _check_frame(frame, "frame")
    h, w = frame.shape[:2]
    m = _as_map(saliency)
    m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    peak = float(m.max())
    weight = (np.clip(m / peak, 0, 1) if peak > 0 else np.zeros_like(m))[..., None] * alpha
    colour = heatmap(m)
    return (frame * (1 - weight) + colour * weight).astype(np.uint8)


def capped_size(height: int, width: int, max_height: int = 960, max_width: int = 1920) -> tuple[int, int]:
    """``(H, W)`` scaled down (aspect kept) to fit ``max_height x max_width``, rounded to even numbers
    (H.264 with yuv420p needs them); never scaled up."""
    scale = min(1.0, max_height / height, max_width / width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def tensor_to_frame(x: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float tensor in [0, 1] -> ``(H, W, 3)`` uint8 RGB array."""
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image tensor, got shape {tuple(x.shape)}")
    return (x.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def _check_frame(frame, name: str) -> np.ndarray:
    """``frame`` as an array after checking that it is ``(H, W, 3)`` uint8 RGB (``ValueError`` naming
    ``name`` otherwise)."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or 0 in frame.shape:
        raise ValueError(f"{name} must be an (H, W, 3) uint8 RGB image, got {frame.shape} {frame.dtype}")
    return frame


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB ``(H, W, 3)`` or grey ``(H, W)`` uint8 image atomically."""
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8 or image.size == 0:  # not a grey image: must be RGB
        image = cv2.cvtColor(_check_frame(image, "image"), cv2.COLOR_RGB2BGR)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(tmp, image):
            raise ValueError(f"OpenCV could not write the image {path}")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float,
                audio: np.ndarray | None = None, sample_rate: int | None = None) -> int:
    """Write RGB frames ``(H, W, 3)`` uint8 to an H.264 MP4 (yuv420p), atomically, with optional audio.

    Args:
        frames: iterable of equally sized frames (odd H and W are padded to even ones by repeating the
            last row / column).
        fps: frame rate, a finite number > 0.
        audio: ``(channels, samples)`` finite float32 in [-1, 1], encoded as AAC with up to 8 channels
            (ambisonic first order is kept as 4 channels); samples past the last frame's end (``frames /
            fps`` seconds) are left out, so the file lasts as long as its video.
        sample_rate: audio rate in Hz (required with ``audio``).

    Returns:
        The number of frames written.

    A frame of another shape or dtype, or a bad ``fps``, ``audio`` or ``sample_rate``, raises
    ``ValueError`` naming it, and no file is left behind.
    """
    import av

    fps = check_number(fps, "fps", unit="frames per second")
    if audio is not None:
        if not sample_rate:
            raise ValueError("write_video: sample_rate is required when audio is given")
        sample_rate = check_integer(sample_rate, "sample_rate", whole_floats=True, unit="Hz")
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 2:
            raise ValueError(f"audio must be (channels, samples), got shape {audio.shape}")
        if not np.all(np.isfinite(audio)):
            raise ValueError("audio contains NaN or infinite samples")
    count = 0
    with atomic_path(path) as tmp:
        container = av.open(tmp, "w", format="mp4")
        try:
            stream = first = None
            for frame in frames:
                frame = _check_frame(frame, f"frames[{count}]")
                if first is not None and frame.shape != first:
                    # PyAV would rescale it to the first frame's size without a word
                    raise ValueError(f"frames[{count}] is {frame.shape}, but frames[0] is {first}: "
                                     "every frame must have the same size")
                if stream is None:
                    first = frame.shape
                    h, w = frame.shape[:2]
                    stream = container.add_stream("libx264", rate=_fraction(fps))
                    stream.width, stream.height = w + w % 2, h + h % 2
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": "20", "preset": "veryfast"}
                    audio_stream = _add_audio_stream(container, audio, sample_rate)
                odd = ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0))
                frame = np.ascontiguousarray(np.pad(frame, odd, mode="edge"))
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
                count += 1
            if stream is None:
                raise ValueError(f"write_video: no frames to write to {path}")
            for packet in stream.encode(None):
                container.mux(packet)
            if audio_stream is not None:
                video_samples = round(Fraction(count) / _fraction(fps) * sample_rate)
                _encode_audio(container, audio_stream, audio[:, :video_samples], sample_rate)
        finally:
            container.close()
    return count


def _fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _add_audio_stream(container, audio, sample_rate):
    if audio is None:
        return None
    channels = int(np.asarray(audio).shape[0])
    if channels not in _LAYOUTS:
        raise ValueError(f"write_video: AAC audio supports 1 to 8 channels, got {channels}")
    return container.add_stream("aac", rate=int(sample_rate), layout=_LAYOUTS[channels])


def _encode_audio(container, stream, audio, sample_rate, chunk: int = 1024) -> None:
    import av

    audio = np.ascontiguousarray(np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0))
    layout = _LAYOUTS[audio.shape[0]]
    for start in range(0, audio.shape[1], chunk):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, start:start + chunk]),
                                           format="fltp", layout=layout)
        frame.sample_rate = int(sample_rate)
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
