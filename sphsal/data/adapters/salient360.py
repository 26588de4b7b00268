"""``salient360``: Salient360! 2018 videos with their saliency maps and fixations.

On-disk layout as distributed (the FTP's ``Videos/`` folder; its ``Readme_Videos.md``), ``<T>`` the
``tracking``: ``H`` (head only) or ``HE`` (head and eye)::

    <root>/Stimuli/<name>.mp4                             e.g. 18_Bar.mp4
    <root>/<T>/SalMaps/<name>_<W>x<H>x<frames>_32b.bin    raw little-endian float32 maps
    <root>/H/Scanpaths/<name>_fixations.csv               fixation list (all observers)
    <root>/HE/Scanpaths/{L,R}/<name>_fixations.csv        left- and right-eye lists, combined

The older flat layout ``<root>/videos/``, ``<root>/saliency/`` and ``<root>/fixations/`` is read too. A
``.bin`` file holds ``frames`` maps of ``H`` rows of ``W`` values (row-major, one frame after the other,
row 0 the top, the ERP convention already), floats of the size its name gives (``_16b``, ``_32b`` as
published, or ``_64b``, as the toolbox's reader accepts; little-endian, as it reads them on x86); map
``k`` belongs to the video's frame ``k`` (0-based). A fixation CSV has a header (``# Idx, longitude,
latitude, start timestamp, duration, start frame, end frame`` in the published files) with ``longitude``
and ``latitude`` in ``[0, 1]`` (from the left and from the top of the ERP image) and ``start frame`` /
``end frame``: 1-based video frame numbers (the published files start every observer at frame 1, and the
toolbox fills map ``k - 1`` for frame ``k``); a fixation counts for every frame in that inclusive range.
Maps and fixations belong to the video's own frames; with another ``fps`` the item's frame shows source
frame ``floor(k * source_fps / fps)`` and takes that frame's maps.
"""

from __future__ import annotations

import os
import re

import numpy as np
import torch

from sphsal.data.adapters._common import (
    find_folder,
    find_video,
    list_stems,
    make_dataset,
    read_table,
    uv_to_directions,
    video_audio,
)
from sphsal.data.dataset import VideoEntry, check_root, split_videos
from sphsal.data.groundtruth import MapGroundTruth
from sphsal.data.registry import register_dataset
from sphsal.data.sources import VideoFrames

_BIN_NAME = re.compile(r"_(\d+)x(\d+)x(\d+)_(16|32|64)b\.bin$")
FIXATION_COLUMNS = {
    "lon": ("longitude", "long", "lon"),
    "lat": ("latitude", "lat"),
    "start": ("start frame", "start_frame", "startframe"),
    "end": ("end frame", "end_frame", "endframe"),
}


class BinMaps:
    """Per-frame maps of a Salient360! ``.bin`` file, read one frame at a time (never the whole file).
    A frame one past the file's last map reads the last map (a video may carry one frame more than its
    maps); the adapter refuses files that cover less (:meth:`check_covers`)."""

    def __init__(self, path: str):
        match = _BIN_NAME.search(os.path.basename(path))
        if match is None:
            raise ValueError(f"{path}: expected a name ending in _<W>x<H>x<frames>_<16|32|64>b.bin")
        self.path = path
        self.width, self.height, self.frames, bits = (int(g) for g in match.groups())
        self.dtype = np.dtype(f"<f{bits // 8}")
        expected = self.width * self.height * self.frames * self.dtype.itemsize
        size = os.path.getsize(path)
        if size != expected:
            raise ValueError(f"{path} holds {size} bytes but its name promises {self.frames} float{bits} "
                             f"maps of {self.width}x{self.height} ({expected} bytes): the file is truncated "
                             "or corrupt")

    def check_covers(self, frames: int, video: str) -> None:
        """``ValueError`` naming the file when its maps cover fewer than ``frames - 1`` frames of
        ``video``."""
        if self.frames < frames - 1:
            raise ValueError(f"{self.path} holds {self.frames} maps, but {video} has {frames} frames: every "
                             "frame (but possibly the last) needs its map")

    def __call__(self, index: int) -> np.ndarray:
        index = min(index, self.frames - 1)
        count = self.width * self.height
        offset = index * count * self.dtype.itemsize
        data = np.fromfile(self.path, dtype=self.dtype, count=count, offset=offset)
        return data.reshape(self.height, self.width).astype(np.float32, copy=False)


class FixationList:
    """Binary fixation maps ``(H, W)`` per 0-based source frame from one or more fixation CSVs (see
    module doc: their frame numbers count from 1)."""

    def __init__(self, paths, size):
        paths = [paths] if isinstance(paths, str) else list(paths)
        az, el, start, end = [], [], [], []
        for path in paths:
            table = read_table(path, FIXATION_COLUMNS)
            a, e = uv_to_directions(table["lon"], table["lat"], path,
                                    (FIXATION_COLUMNS["lon"][0], FIXATION_COLUMNS["lat"][0]))
            az.append(a), el.append(e), start.append(table["start"]), end.append(table["end"])
        self.az, self.el = np.concatenate(az), np.concatenate(el)
        self.start, self.end = np.concatenate(start), np.concatenate(end)
        self.size = size

    def __call__(self, index: int) -> np.ndarray:
        from sphsal.metrics.density import fixation_map

        number = index + 1  # the CSVs number the video's frames from 1
        sel = (self.start <= number) & (number <= self.end)
        h, w = self.size
        if not sel.any():
            return np.zeros((h, w), dtype=np.float32)
        directions = torch.from_numpy(np.stack((self.az[sel], self.el[sel]), axis=1))
        return fixation_map(directions, h, w).numpy().astype(np.float32)


class _SourceFrameMaps:
    """Maps indexed by output frame -> the source frame's map."""

    def __init__(self, maps, frames: VideoFrames):
        self.maps, self.frames = maps, frames

    def __call__(self, index: int) -> np.ndarray:
        return self.maps(self.frames.source_index(index))


def _find_prefixed(folder: str, name: str, pattern) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if (f.startswith(name + "_") or os.path.splitext(f)[0] == name) and pattern(f))


def _map_file(folder: str, name: str) -> str:
    """The ``.bin`` maps of video ``name`` in ``folder``: the one named
    ``<name>_<W>x<H>x<frames>_<bits>b.bin``, else the only one whose name starts with ``<name>_``;
    ``ValueError`` listing them when that is not one file (``1_Bar`` must not take the maps of
    ``1_Bar_2``, nor a ``_16b`` copy beside ``_32b``)."""
    found = _find_prefixed(folder, name, _BIN_NAME.search)
    exact = [p for p in found if os.path.basename(p)[:_BIN_NAME.search(os.path.basename(p)).start()] == name]
    chosen = exact if exact else found
    if len(chosen) != 1:
        raise ValueError(f"{len(chosen)} map files could be those of {name!r} in {folder}: "
                         f"{', '.join(os.path.basename(p) for p in chosen)}; keep one")
    return chosen[0]


TRACKINGS = ("H", "HE")


@register_dataset("salient360")
def salient360(root, *, tracking: str = "HE", size=None, fps=None, split: str = "all",
               short_audio: str = "error", **options):
    """Salient360! 2018 videos under ``root`` (videos that have a ``.bin`` map file).

    Args:
        tracking: ``"HE"`` (head and eye, default) or ``"H"`` (head only): whose maps and fixations
            (the ``HE/`` or ``H/`` folder of the published layout; ignored by the flat layout).
        size, fps, split: as for ``360av-hm``.
        short_audio: ``"error"`` (default) or ``"silence"``: what to do with a soundtrack shorter than its
            video (see :class:`~sphsal.data.sources.AudioTrack`).
        **options: the ClipDataset options (``clip_len``, ``frame_step``, ``clip_mode``, ...).
    Without a fixation CSV, the fixation map marks the maxima of the saliency map.
    """
    if tracking not in TRACKINGS:
        raise ValueError(f"tracking must be one of {TRACKINGS}, got {tracking!r}")
    root = check_root(root)
    map_dir = find_folder(root, "saliency", os.path.join(tracking, "SalMaps"))
    video_dir = find_folder(root, "videos", "Videos", "Stimuli")
    scan = os.path.join(root, tracking, "Scanpaths")
    fixation_dirs = [os.path.join(root, "fixations"), scan, os.path.join(scan, "L"), os.path.join(scan, "R")]
    entries = []
    names = [n for n in list_stems(video_dir) if _find_prefixed(map_dir, n, _BIN_NAME.search)]
    for name in split_videos(names, split):
        video = find_video(video_dir, name)
        frames = VideoFrames(video, fps=fps, size=size)
        maps = BinMaps(_map_file(map_dir, name))
        maps.check_covers(frames.source_index(frames.num_frames - 1) + 1, video)
        csvs = [p for folder in fixation_dirs
                for p in _find_prefixed(folder, name, lambda f: f.lower().endswith(".csv"))]
        fixations = _SourceFrameMaps(FixationList(csvs, frames.frame_size), frames) if csvs else None
        truth = MapGroundTruth(_SourceFrameMaps(maps, frames), fixations, frames.frame_size, maps.path)
        entries.append(VideoEntry(name, frames.num_frames, frames.fps, frames, truth,
                                  audio=video_audio(video, frames, "auto", short_audio)))
    return make_dataset(entries, options, "salient360")
