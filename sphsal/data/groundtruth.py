"""Ground truth from gaze samples: per-frame fixation directions -> density maps on the sphere, cached.

Gaze recordings (360AV-HM CSVs, VR-EyeTracking txt files, PVS-HM .mat) are converted by their adapters
to :class:`GazeSamples` in sphsal's conventions (seconds, radians, ``az`` positive to the left, ``el``
up). Frame ``k`` at ``fps`` takes each viewer's samples inside ``[k / fps, (k + 1) / fps)``; a viewer
with none there contributes the sample nearest to the frame's middle if it lies less than one frame
period away (datasets whose samples are already per frame switch this off).
The saliency map is the spherical Gaussian density of these directions
(``sphsal.metrics.density_from_fixations``) and the fixation map marks their pixels
(``sphsal.metrics.fixation_map``). Maps are cached as ``.npy`` files (written atomically) under
``cache_dir``, one per frame, keyed by everything that changes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from sphsal.atomic import atomic_path

__all__ = ["EmptyGroundTruth", "GazeSamples", "GazeGroundTruth", "MapGroundTruth", "default_cache_dir",
           "frame_directions", "resize_fixations"]


class EmptyGroundTruth(ValueError):
    """A frame's ground truth holds nothing to score: an all-zero saliency map, or no gaze sample in the
    frame (see :class:`~sphsal.data.ClipDataset`'s ``empty_truth``)."""


def default_cache_dir() -> str:
    """``$SPHSAL_CACHE`` if set, else ``$XDG_CACHE_HOME/sphsal`` (``~/.cache/sphsal``)."""
    if os.environ.get("SPHSAL_CACHE"):
        return os.environ["SPHSAL_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sphsal")


@dataclass
class GazeSamples:
    """Gaze samples of all viewers of one video (1-D arrays of equal length ``N``).

    Attributes:
        time: seconds from the start of the video.
        az, el: gaze directions in radians (sphsal convention).
        viewer: integer id of the viewer of each sample.
        source: file(s) the samples came from, for error messages.
    """

    time: np.ndarray
    az: np.ndarray
    el: np.ndarray
    viewer: np.ndarray
    source: str = ""

    def __post_init__(self):
        self.time = np.asarray(self.time, dtype=np.float64).ravel()
        self.az = np.asarray(self.az, dtype=np.float64).ravel()
        self.el = np.asarray(self.el, dtype=np.float64).ravel()
        self.viewer = np.asarray(self.viewer, dtype=np.int64).ravel()
        n = self.time.size
        if not (self.az.size == self.el.size == self.viewer.size == n):
            raise ValueError(f"gaze samples of {self.source} have mismatched lengths")
        keep = np.isfinite(self.time) & np.isfinite(self.az) & np.isfinite(self.el)
        self.time, self.az, self.el = self.time[keep], self.az[keep], self.el[keep]
        self.viewer = self.viewer[keep]

    @classmethod
    def concatenate(cls, parts: list[GazeSamples], source: str = "") -> GazeSamples:
        """Join the samples of several viewers/files."""
        if not parts:
            raise ValueError(f"no gaze samples found for {source}")
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("time", "az", "el", "viewer")),
                   source=source)


def frame_directions(samples: GazeSamples, index: int, fps, fill_gaps: bool = True):
    """Gaze directions ``(az, el)`` (radians, 1-D arrays) of frame ``index`` at ``fps``: the samples in
    the frame's interval, plus (``fill_gaps``) the nearest sample of each viewer absent from it when
    that sample is less than one frame period from the frame's middle."""
    fps = Fraction(fps)
    t0, t1 = float(index / fps), float((index + 1) / fps)
    inside = (samples.time >= t0) & (samples.time < t1)
    az, el = [samples.az[inside]], [samples.el[inside]]
    if not fill_gaps:
        return az[0], el[0]
    missing = np.setdiff1d(np.unique(samples.viewer), np.unique(samples.viewer[inside]))
    middle, period = 0.5 * (t0 + t1), float(1 / fps)
    for v in missing:
        sel = np.flatnonzero(samples.viewer == v)
        nearest = sel[np.argmin(np.abs(samples.time[sel] - middle))]
        if abs(samples.time[nearest] - middle) < period:
            az.append(samples.az[nearest:nearest + 1])
            el.append(samples.el[nearest:nearest + 1])
    return np.concatenate(az), np.concatenate(el)


class GazeGroundTruth:
    """Saliency and fixation maps of the frames of one video, built from gaze samples and cached.

    Args:
        samples: the video's gaze samples.
        fps: frame rate at which frames are indexed.
        size: ``(H, W)`` of the maps.
        sigma_deg: standard deviation of the spherical Gaussian, degrees.
        cache_dir: folder for the ``.npy`` cache (``None``: compute every time).
        key: text identifying the dataset, video and options; with the other arguments and the gaze
            samples themselves it is hashed into the cache folder's name, so changed inputs never
            meet stale maps.
        fill_gaps: see :func:`frame_directions`.

    Calling it with a frame index returns ``(saliency (H, W) float32 summing to 1, fixations (H, W)
    float32 in {0, 1})``. A frame with no gaze sample raises :class:`EmptyGroundTruth` naming the source
    file (never a silent zero map).
    """

    def __init__(self, samples: GazeSamples, fps, size, sigma_deg: float, cache_dir: str | None, key: str,
                 fill_gaps: bool = True):
        self.samples, self.fps, self.fill_gaps = samples, Fraction(fps), fill_gaps
        self.size = (int(size[0]), int(size[1]))
        self.sigma_deg = float(sigma_deg)
        digest = hashlib.sha1(f"{key}|{self.fps}|{self.size}|{self.sigma_deg}|{fill_gaps}".encode())
        for array in (samples.time, samples.az, samples.el, samples.viewer):  # edited gaze: a new entry
            digest.update(np.ascontiguousarray(array).tobytes())
        digest = digest.hexdigest()[:16]
        self.cache_folder = None if cache_dir is None else os.path.join(cache_dir, "groundtruth", digest)

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        path = None if self.cache_folder is None else os.path.join(self.cache_folder, f"{index:06d}.npy")
        if path is not None and os.path.isfile(path):
            try:
                maps = np.load(path)
                if maps.shape == (2, *self.size):
                    return maps[0], maps[1]
            except (OSError, ValueError):
                pass  # an unreadable cache entry is rebuilt below
        maps = self.compute(index)
        if path is not None:
            os.makedirs(self.cache_folder, exist_ok=True)
            with atomic_path(path, durable=False) as tmp:  # a cache: an unreadable entry is rebuilt
                np.save(tmp, maps)
        return maps[0], maps[1]

    def compute(self, index: int) -> np.ndarray:
        """``(2, H, W)`` float32: the saliency density and the binary fixation map of frame ``index``."""
        from sphsal.metrics.density import density_from_fixations, fixation_map

        az, el = frame_directions(self.samples, index, self.fps, self.fill_gaps)
        if az.size == 0:
            t0 = float(index / self.fps)
            raise EmptyGroundTruth(f"no gaze sample of {self.samples.source} falls in frame {index} "
                                   f"([{t0:.3f}, {t0 + float(1 / self.fps):.3f}) s)")
        directions = torch.from_numpy(np.stack((az, el), axis=1))
        h, w = self.size
        with _single_numba_thread():
            density = density_from_fixations(directions, h, w, self.sigma_deg, norm="sum")
        fixations = fixation_map(directions, h, w)
        return np.stack((density.numpy(), fixations.numpy())).astype(np.float32)


@contextlib.contextmanager
def _single_numba_thread():
    """Run numba's parallel loops on the calling thread, without OpenMP spin-waiting threads.

    Ground truth is built inside data loading, next to FFmpeg's decoder threads (and in several
    DataLoader workers at once). Measured on 2 cores: once numba's OpenMP layer had run a parallel
    region, its idle threads kept spinning and every later frame read cost 2.5x the CPU time, even
    with ``numba.set_num_threads(1)``. So when no numba parallel region has run in this process yet,
    numba is pointed at its ``workqueue`` layer (which sleeps when idle) before the first one.
    """
    import numba

    try:
        numba.threading_layer()
    except ValueError:  # no parallel region has run in this process: the layer can still be chosen
        numba.config.THREADING_LAYER = "workqueue"
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


class MapGroundTruth:
    """Ground truth stored as per-frame maps (images, .bin, .mat): loader callables, resized to ``size``.

    Args:
        saliency: ``index -> (H0, W0)`` non-negative map.
        fixations: ``index -> (H1, W1)`` map whose non-zero pixels are fixations, or ``None`` when the
            dataset has none: the fixation map then marks the pixels where the saliency map is maximal.
        size: output ``(H, W)`` (``None``: the stored size).
        source: where the maps come from (folder or file), for error messages.

    An all-zero saliency map raises :class:`EmptyGroundTruth`, a non-finite or negative one
    ``ValueError``, naming ``source`` and the frame.
    """

    def __init__(self, saliency, fixations, size, source: str):
        self.saliency, self.fixations, self.size, self.source = saliency, fixations, size, source

    def __call__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        from sphsal.data.sources import resize_map

        raw = np.asarray(self.saliency(index), dtype=np.float32)
        if not np.isfinite(raw).all() or raw.min() < 0:
            raise ValueError(f"saliency map of frame {index} in {self.source} is not finite and non-negative")
        if not raw.max() > 0:
            raise EmptyGroundTruth(f"saliency map of frame {index} in {self.source} is empty (all zero)")
        saliency = resize_map(raw, self.size)
        if self.fixations is None:
            binary = raw >= raw.max()
        else:
            binary = np.asarray(self.fixations(index)) > 0
        return saliency, resize_fixations(binary, saliency.shape)


def resize_fixations(binary: np.ndarray, size) -> np.ndarray:
    """Move the fixated pixels of a binary ``(H0, W0)`` map onto an ``(H, W)`` grid (each fixation to the
    pixel containing its centre); returns float32 ``{0, 1}``."""
    h0, w0 = binary.shape
    h, w = int(size[0]), int(size[1])
    out = np.zeros((h, w), dtype=np.float32)
    rows, cols = np.nonzero(binary)
    out[np.minimum(((rows + 0.5) * h / h0).astype(np.int64), h - 1),
        np.minimum(((cols + 0.5) * w / w0).astype(np.int64), w - 1)] = 1.0
    return out
