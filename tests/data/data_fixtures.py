"""Helpers shared by the data tests: tiny media files in real formats, and one small synthetic dataset
per test session (generated once, removed at exit)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from fractions import Fraction

import av
import cv2
import numpy as np
import scipy.io
import soundfile
import torch

from sphsal.data import make_dataset, time_to_sample
from sphsal.sphere import directions_to_pixels

#: ERP size of the adapters' test fixtures.
H, W = 32, 64

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


def write_video_with_audio(path: str, n_frames: int, fps: int, channels: int, sample_rate: int = 16000,
                           h: int = 32, w: int = 64) -> str:
    """Write an H.264 mp4 of :func:`frame_pattern` frames with ``channels`` channels of AAC noise
    (layout mono, stereo, quad) covering the frames."""
    layout = {1: "mono", 2: "stereo", 4: "quad"}[channels]
    samples = time_to_sample(Fraction(n_frames, fps), sample_rate)
    audio = np.random.default_rng(0).uniform(-0.2, 0.2, (channels, samples)).astype(np.float32)
    with av.open(path, "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        sound = container.add_stream("aac", rate=sample_rate, layout=layout)
        for k in range(n_frames):
            for packet in video.encode(av.VideoFrame.from_ndarray(frame_pattern(k, h, w), format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        frame = av.AudioFrame.from_ndarray(audio, format="fltp", layout=layout)
        frame.sample_rate, frame.pts = sample_rate, 0
        for packet in [*sound.encode(frame), *sound.encode()]:
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


def write_stavis_tree(root, fps, n_frames, sample_rate, clicks=(), audio_frames=None):
    """A STAViS-layout database 'DB' with video 'v' (fold 1: train) and 'w' (fold 1: test); the audio of
    'v' has a one-sample click at the start of each frame in ``clicks`` and lasts ``audio_frames``
    frames (default ``n_frames``)."""
    vid = os.path.join(root, "video_frames", "DB", "v")
    write_jpg_frames(vid, n_frames, "img_%05d.jpg")
    notes = os.path.join(root, "annotations", "DB", "v")
    write_jpg_frames(os.path.join(notes, "maps"), n_frames, "eyeMap_%05d.jpg")
    for k in range(1, n_frames + 1):
        fix = np.zeros((16, 32))
        fix[8, k % 32] = 1
        scipy.io.savemat(os.path.join(notes, f"fixMap_{k:05d}.mat"), {"eyeMap": fix})
    n = time_to_sample(Fraction(audio_frames or n_frames) / Fraction(fps), sample_rate)
    audio = np.zeros((1, n), dtype=np.float32)
    for k in clicks:
        audio[0, time_to_sample(Fraction(k) / Fraction(fps), sample_rate)] = 1.0
    write_wav(os.path.join(root, "video_audio", "DB", "v", "v.wav"), audio, sample_rate)
    for src in ("video_frames", "annotations", "video_audio"):
        shutil.copytree(os.path.join(root, src, "DB", "v"), os.path.join(root, src, "DB", "w"))
    audio_w = os.path.join(root, "video_audio", "DB", "w")
    os.rename(os.path.join(audio_w, "v.wav"), os.path.join(audio_w, "w.wav"))
    os.makedirs(os.path.join(root, "fold_lists"), exist_ok=True)
    for part, vid in (("train", "v"), ("test", "w")):
        with open(os.path.join(root, "fold_lists", f"DB_list_{part}_1_fps.txt"), "w") as f:
            f.write(f"{vid} {n_frames} {fps}\n")


def peak(saliency: torch.Tensor) -> tuple[int, int]:
    """``(row, column)`` of a map's maximum."""
    i = int(torch.argmax(saliency))
    return i // saliency.shape[1], i % saliency.shape[1]


def pixel_of(az: float, el: float, h: int = H, w: int = W) -> tuple[int, int]:
    """The ``(row, column)`` of direction ``(az, el)`` (radians) on an ``h x w`` ERP grid."""
    row, col = directions_to_pixels(torch.tensor(az), torch.tensor(el), h, w)
    return int(round(float(row))), int(round(float(col))) % w


def near(a, b, tol=1, w=W) -> bool:
    """Whether pixels ``a`` and ``b`` are within ``tol`` rows and columns (columns across the seam)."""
    return abs(a[0] - b[0]) <= tol and min(abs(a[1] - b[1]), w - abs(a[1] - b[1])) <= tol
