"""``pvs-hm``: the head-movement set of Xu et al. (TPAMI), 76 videos x 58 viewers.

On-disk layout (the published PVS-HM.tar.gz keeps the MP4s next to the .mat, as DHP's ``envs.py``
reads them; a ``videos/`` or ``Videos/`` subfolder is also accepted)::

    <root>/FULLdata_per_video_frame.mat     one variable per video, array [samples, 2 x viewers]
    <root>/[videos/]<video>.mp4             (names as the .mat variables)

Columns ``2k`` and ``2k + 1`` are viewer ``k``'s latitude and longitude in degrees, origin at the front
centre, up and LEFT positive, so they map directly to (elevation, azimuth). Samples are taken at twice
the video frame rate from its first frame on (DHP README): sample ``n`` is placed at time
``(n + 0.5) / (2 source_fps)``, so rows ``2k`` and ``2k + 1`` fall in frame ``k``.
"""

from __future__ import annotations

import os

import numpy as np

from sphsal.data.adapters._common import (
    find_video,
    gaze_video_entry,
    make_dataset,
    read_mat,
    resolve_cache_dir,
)
from sphsal.data.dataset import check_root, split_videos
from sphsal.data.groundtruth import GazeSamples
from sphsal.data.registry import register_dataset
from sphsal.data.video import VideoReader

MAT_FILE = "FULLdata_per_video_frame.mat"
#: Ground-truth sigma (degrees) of PVS-HM.
DEFAULT_SIGMA_DEG = 7.0
SAMPLES_PER_FRAME = 2
#: Latitudes may pass +-90 degrees by this much (rounding at the poles; under the 1e-6 rad of the metrics).
LAT_TOLERANCE_DEG = 5e-5


def load_pvs_mat(path: str) -> dict[str, np.ndarray]:
    """``{video: array [samples, 2 x viewers]}`` from the .mat file; errors name the file."""
    mat = read_mat(path, "PVS-HM data file")
    out = {}
    for name, value in mat.items():
        if name.startswith("__"):
            continue
        value = np.asarray(value)
        if value.ndim != 2 or value.shape[1] % 2 or not np.issubdtype(value.dtype, np.number):
            raise ValueError(f"{path}: variable {name!r} must be a numeric [samples, 2 x viewers] array, "
                             f"got shape {value.shape}")
        out[name] = value.astype(np.float64)
    if not out:
        raise ValueError(f"{path} holds no video variables")
    return out


def pvs_gaze(data: np.ndarray, source_fps, source: str) -> GazeSamples:
    """A ``[samples, 2 x viewers]`` array (lat, lon degrees) -> :class:`GazeSamples`.

    A latitude beyond +-90 degrees (columns in the wrong order, or another unit) raises ``ValueError``
    naming ``source``.
    """
    n, cols = data.shape
    lat_deg = np.abs(data[:, 0::2][np.isfinite(data[:, 0::2])])
    if lat_deg.size and lat_deg.max() > 90 + LAT_TOLERANCE_DEG:
        raise ValueError(f"{source}: latitude columns (0, 2, 4, ...) reach {lat_deg.max():.6g} degrees, "
                         "beyond +-90: expected (latitude, longitude) pairs in degrees (columns swapped?)")
    times = (np.arange(n) + 0.5) / (SAMPLES_PER_FRAME * float(source_fps))
    lat, lon = np.radians(data[:, 0::2]), np.radians(data[:, 1::2])
    viewers = np.broadcast_to(np.arange(cols // 2), lat.shape)
    return GazeSamples(np.repeat(times, cols // 2), lon.ravel(), lat.ravel(), viewers.ravel(), source=source)


@register_dataset("pvs-hm")
def pvs_hm(root, *, size=None, fps=None, split: str = "all", sigma_deg: float = DEFAULT_SIGMA_DEG,
           cache_dir=None, short_audio: str = "error", **options):
    """The PVS-HM set under ``root``.

    Args:
        size, fps, split, sigma_deg, cache_dir, short_audio: as for ``360av-hm``.
        **options: the ClipDataset options (``clip_len``, ``frame_step``, ``clip_mode``, ...).
    Audio is the videos' soundtrack when they have one (else an empty ``(0, 0)`` tensor).
    """
    root = check_root(root, MAT_FILE)
    mat_path = os.path.join(root, MAT_FILE)
    data = load_pvs_mat(mat_path)
    subfolders = [os.path.join(root, d) for d in ("videos", "Videos")]
    video_dir = next((d for d in subfolders if os.path.isdir(d)), root)  # published: flat, next to the .mat
    cache = resolve_cache_dir(cache_dir)
    entries = []
    for name in split_videos(data, split):
        video = find_video(video_dir, name)
        with VideoReader(video) as reader:
            source_fps = reader.source_fps
        samples = pvs_gaze(data[name], source_fps, f"{mat_path} [{name}]")
        entries.append(gaze_video_entry(name, video, samples, fps=fps, size=size, sigma_deg=sigma_deg,
                                        cache_dir=cache, short_audio=short_audio,
                                        key=f"pvs-hm|{os.path.abspath(root)}|{name}"))
    return make_dataset(entries, options, "pvs-hm")
