"""Face maps for the visual-audio-face model: faces found by OpenCV's bundled Haar cascade, drawn as a
Gaussian mixture.

Each detected face box (centre ``(cx, cy)``, size ``w x h`` in pixels) adds an anisotropic Gaussian
with standard deviations ``w / 4`` and ``h / 4`` (so +-2 sigma spans the box), weight 1; the sum is
evaluated at the pixel centres of the output grid and divided by its maximum (``[0, 1]``, all zeros
without faces). On ERP frames the horizontal distance wraps around the image width (longitude), so a
face at the seam reaches both borders. The detector itself is planar: faces far from the equator are
stretched in ERP and are found less often.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

__all__ = ["face_detector", "detect_faces", "gaussian_mixture_map", "face_maps", "CASCADE"]

CASCADE = "haarcascade_frontalface_default.xml"


@functools.lru_cache(maxsize=1)
def face_detector():
    """OpenCV's bundled frontal-face Haar cascade (``cv2.data.haarcascades``); ``ImportError`` saying what
    to install when the OpenCV build has none (OpenCV 5 moved the Haar cascades out of its main package)."""
    import os

    import cv2

    path = os.path.join(getattr(getattr(cv2, "data", None), "haarcascades", ""), CASCADE)
    if not hasattr(cv2, "CascadeClassifier") or not os.path.isfile(path):
        raise ImportError(f"the face maps need OpenCV's Haar cascade {CASCADE}, which OpenCV "
                          f"{cv2.__version__} does not ship; install it with: pip install "
                          "'opencv-python-headless<5' (or give the batch precomputed face maps as "
                          "batch['face_map'])")
    detector = cv2.CascadeClassifier(path)
    if detector.empty():
        raise RuntimeError(f"cannot load OpenCV's face cascade {path}")
    return detector


def detect_faces(image: np.ndarray, min_size: int = 24) -> np.ndarray:
    """Face boxes ``(N, 4)`` as ``(x, y, w, h)`` pixels in an RGB ``uint8`` image ``(H, W, 3)``."""
    import cv2

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    boxes = face_detector().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                             minSize=(min_size, min_size))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def gaussian_mixture_map(boxes: np.ndarray, image_size: tuple[int, int], out_size: tuple[int, int],
                         wrap: bool = True) -> torch.Tensor:
    """``(h, w)`` float32 map in ``[0, 1]`` of the Gaussians of ``boxes`` (``(x, y, w, h)`` pixels of an
    ``image_size`` ``(H, W)`` image) on an ``out_size`` grid; ``wrap``: horizontal distances modulo W."""
    height, width = image_size
    h, w = out_size
    out = np.zeros((h, w))
    ys = (np.arange(h) + 0.5) * height / h
    xs = (np.arange(w) + 0.5) * width / w
    for bx, by, bw, bh in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        dx = xs - (bx + bw / 2)
        if wrap:
            dx = (dx + width / 2) % width - width / 2
        dy = ys - (by + bh / 2)
        out += np.exp(-0.5 * (dy[:, None] / (bh / 4)) ** 2 - 0.5 * (dx[None, :] / (bw / 4)) ** 2)
    peak = out.max()
    return torch.from_numpy(out / peak if peak > 0 else out).float()


def face_maps(frames: torch.Tensor, out_size: tuple[int, int], wrap: bool = True) -> torch.Tensor:
    """Face maps ``(B, 1, h, w)`` in ``[0, 1]`` of frames ``(B, 3, H, W)`` in ``[0, 1]``."""
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (B, 3, H, W), got shape {tuple(frames.shape)}")
    images = (frames.detach().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    maps = [gaussian_mixture_map(detect_faces(np.ascontiguousarray(im)), im.shape[:2], out_size, wrap)
            for im in images]
    return torch.stack(maps)[:, None].to(frames.device)
