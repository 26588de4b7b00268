"""Helpers shared by the data tests: tiny media files in real formats, and one small synthetic dataset
per test session (generated once, removed at exit)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import av
import cv2
import numpy as np
import soundfile

from sphsal.data import make_dataset

_SESSION: dict[str, str] = {}

SYNTHETIC = {"n_videos": 3, "duration": 2.0, "fps": 8, "height": 64, "width": 128, "seed": 3, "n_viewers": 8}


def synthetic_root() -> str:
    """Root of a small synthetic 360AV-HM dataset (:data:`SYNTHETIC`), shared by the session."""
    if "synthetic" not in _SESSION:
        folder = tempfile.mkdtemp(prefix="sphsal-data-test-")
        atexit.register(shutil.rmtree, folder, True)
        _SESSION["synthetic"] = make_dataset(os.path.join(folder, "synthetic"), **SYNTHETIC)
    return _SESSION["synthetic"]


def frame_pattern(k: int, h: int, w: int) -> np.ndarray:
    """``(h, w, 3)`` uint8 picture whose mean brightness encodes ``k < 41`` (survives H.264)."""
    img = np.full((h, w, 3), (k * 6) % 246, dtype=np.uint8)
    img[: h // 4, : w // 4] = 255 - img[: h // 4, : w // 4]
    return img


def frame_number(frame) -> int:
    """Invert :func:`frame_pattern` from a decoded ``(3, H, W)`` float frame (bottom-right region)."""
    h, w = frame.shape[-2:]
    return int(round(float(frame[:, h // 2:, w // 2:].mean()) * 255 / 6))


def write_video(path: str, n_frames: int, fps, h: int = 32, w: int = 64, faststart: bool = False,
                pix_fmt: str = "yuv420p") -> str:
    """Write an H.264 mp4 of :func:`frame_pattern` frames (no audio)."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(path, "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.options = {"crf": "10", "g": "6"}
        for k in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frame_pattern(k, h, w), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_jpg_frames(folder: str, n_frames: int, pattern: str, h: int = 16, w: int = 32, first: int = 1):
    """Write ``n_frames`` JPEG frames named ``pattern % (k + first)`` in ``folder``."""
    os.makedirs(folder, exist_ok=True)
    for k in range(n_frames):
        cv2.imwrite(os.path.join(folder, pattern % (k + first)), frame_pattern(k, h, w))


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> str:
    """Write ``(channels, samples)`` float audio as a float32 WAV file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, np.ascontiguousarray(audio.T), sample_rate, subtype="FLOAT")
    return path
