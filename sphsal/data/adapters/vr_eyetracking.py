"""``vr-eyetracking``: the eye-tracking set of Xu et al., CVPR 2018 (208 videos, >= 31 viewers each).

On-disk layout::

    <root>/Videos/<VVV>.mp4                          (``videos/`` also accepted)
    <root>/Gaze_txt_files/p<NNN>/<VVV>.<suffix>.txt  one file per participant and video, e.g.
                                                     ``180._2017-10-13-10-28_ori_0.txt``: the video
                                                     id is the name up to its first dot

Each gaze file is comma-separated without a header, one line per video frame (a few frames are
skipped), e.g. ``frame,1,forward,0.498,0.475,eye,0.476,0.508``: the columns are the word ``frame``, the
video frame index (:data:`FRAME_COLUMN`, counted FROM 1), ``forward``, head x, y, ``eye``, gaze x, y
(:data:`GAZE_COLUMNS`); head and gaze are fractions of the panorama measured from its BOTTOM-left
corner (the dataset's readme). They are converted here: ``u = x``, ``v = 1 - y``, then to (azimuth,
elevation). A sample of 1-based frame ``k`` is placed at the middle of that frame, ``(k - 0.5) / source_fps``.
"""

from __future__ import annotations

import os

import numpy as np

from sphsal.data.adapters._common import (
    check_normalised,
    find_folder,
    find_video,
    gaze_video_entry,
    make_dataset,
    resolve_cache_dir,
    uv_to_directions,
)
from sphsal.data.dataset import check_root, split_videos
from sphsal.data.groundtruth import GazeSamples
from sphsal.data.registry import register_dataset
from sphsal.data.video import VideoReader

FRAME_COLUMN = 1
#: The frame index of the first video frame in :data:`FRAME_COLUMN`.
FIRST_FRAME = 1
GAZE_COLUMNS = (6, 7)
#: Default Gaussian sigma (degrees): eye fixations, as Salient360!'s head+eye maps.
DEFAULT_SIGMA_DEG = 2.0


def read_gaze_txt(path: str, viewer: int, source_fps) -> GazeSamples:
    """One participant's gaze file -> :class:`GazeSamples` (seconds, radians)."""
    try:
        table = np.loadtxt(path, delimiter=",", ndmin=2, usecols=(FRAME_COLUMN, *GAZE_COLUMNS))
    except (ValueError, IndexError) as err:
        raise ValueError(f"{path} has wrong columns: expected comma-separated fields with the frame index "
                         f"in column {FRAME_COLUMN} and gaze x, y in columns {GAZE_COLUMNS} ({err})") from err
    if table.shape[0] == 0:
        raise ValueError(f"{path} holds no gaze samples")
    frame, x, y = table.T
    columns = (f"{GAZE_COLUMNS[0]} (gaze x)", f"{GAZE_COLUMNS[1]} (gaze y)")
    az, el = uv_to_directions(x, 1.0 - check_normalised(y, path, columns[1]), path, columns)
    time = (frame - FIRST_FRAME + 0.5) / float(source_fps)  # the middle of the frame
    return GazeSamples(time, az, el, [viewer] * frame.size, source=path)


@register_dataset("vr-eyetracking")
def vr_eyetracking(root, *, size=None, fps=None, split: str = "all", sigma_deg: float = DEFAULT_SIGMA_DEG,
                   cache_dir=None, short_audio: str = "error", **options):
    """The VR-EyeTracking set under ``root`` (videos with at least one gaze file).

    Args:
        size, fps, split, sigma_deg, cache_dir, short_audio: as for ``360av-hm``.
        **options: the ClipDataset options (``clip_len``, ``frame_step``, ``clip_mode``, ...).
    Audio is the videos' soundtrack when they have one (else an empty ``(0, 0)`` tensor).
    """
    root = check_root(root, "Gaze_txt_files")
    gaze_root = os.path.join(root, "Gaze_txt_files")
    video_dir = find_folder(root, "Videos", "videos")
    participants = sorted(p for p in os.listdir(gaze_root) if os.path.isdir(os.path.join(gaze_root, p)))
    files: dict[str, list[str]] = {}
    for p in participants:
        for n in sorted(os.listdir(os.path.join(gaze_root, p))):
            if n.lower().endswith(".txt"):
                files.setdefault(n.split(".")[0], []).append(os.path.join(gaze_root, p, n))
    if not files:
        raise FileNotFoundError(f"no gaze files (p*/<video>.*.txt) under {gaze_root}")
    cache = resolve_cache_dir(cache_dir)
    entries = []
    for name in split_videos(files, split):
        video = find_video(video_dir, name)
        with VideoReader(video) as reader:
            source_fps = reader.source_fps
        samples = GazeSamples.concatenate(
            [read_gaze_txt(path, i, source_fps) for i, path in enumerate(files[name])], source=name)
        key = f"vr-eyetracking|{os.path.abspath(root)}|{name}"
        entries.append(gaze_video_entry(name, video, samples, fps=fps, size=size, sigma_deg=sigma_deg,
                                        cache_dir=cache, key=key, short_audio=short_audio))
    return make_dataset(entries, options, "vr-eyetracking")
