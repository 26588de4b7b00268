"""``stavis``: the audio-visual eye-tracking databases in the layout of STAViS (shared with AViNet).

On-disk layout (``<DB>`` is a database name such as DIEM, Coutrot_db1, SumMe, ETMD_av, AVAD)::

    <root>/video_frames/<DB>/<vid>/img_00001.jpg ...        frames, numbered from 1
    <root>/video_audio/<DB>/<vid>/<vid>.wav                 soundtrack
    <root>/annotations/<DB>/<vid>/maps/eyeMap_00001.jpg ... saliency maps
    <root>/annotations/<DB>/<vid>/fixMap_00001.mat ...      binary fixation maps (variable eyeMap)
    <root>/fold_lists/<DB>_list_{train,test}_{1,2,3}_fps.txt   lines "<vid> <nframes> <fps>"
    <root>/fold_lists/<DB>_list_{train,test}_fps.txt           the same, one split for every fold (DIEM)

These videos are ordinary (not 360°) videos; frames and maps keep their planar layout. Splits are the
published folds: ``split="train"``/``"test"`` read fold ``fold``'s lists, ``"all"`` joins both. A
database without fold-numbered lists uses its fold-free pair for every fold, as DIEM does (STAViS
``opts.py`` and ``eval_diem.m`` read ``DIEM_list_{train,test}_fps.txt`` for all three splits). Item
``video`` names are ``"<DB>/<vid>"``. Frame ``k`` (0-based) is ``img_{k+1:05d}.jpg``.
"""

from __future__ import annotations

import os
import re
from fractions import Fraction

import numpy as np

from sphsal.data.adapters._common import make_dataset, read_mat, read_text
from sphsal.data.dataset import SPLITS, VideoEntry, check_root
from sphsal.data.groundtruth import MapGroundTruth
from sphsal.data.registry import register_dataset
from sphsal.data.sources import AudioTrack, ImageFrames, ImageMaps

FOLDS = (1, 2, 3)
_LIST_NAME = re.compile(r"^(?P<db>.+)_list_(?P<split>train|test)(?:_(?P<fold>\d))?_fps\.txt$")


def read_fold_list(path: str) -> list[tuple[str, int, Fraction]]:
    """``[(vid, nframes, fps), ...]`` from a fold list; errors (a file that is not UTF-8 text, a malformed
    line, a frame count below 1, a frame rate that is not positive) name the file (and line)."""
    out = []
    for number, line in enumerate(read_text(path, "fold list").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}, line {number}"
        try:
            vid, nframes, fps = parts[0], int(parts[1]), Fraction(parts[2]).limit_denominator(1001)
        except (IndexError, ValueError, ZeroDivisionError) as err:
            raise ValueError(f"{where}: expected '<name> <nframes> <fps>', got {line.strip()!r}") from err
        if nframes < 1:
            raise ValueError(f"{where}: the frame count must be at least 1, got {parts[1]!r}")
        if fps <= 0:
            raise ValueError(f"{where}: the frame rate must be positive, got {parts[2]!r}")
        out.append((vid, nframes, fps))
    return out


class FixationMats:
    """``index -> (H, W)`` binary map from ``fixMap_{index+1:05d}.mat`` files in ``folder``."""

    def __init__(self, folder: str):
        self.folder = folder

    def __call__(self, index: int) -> np.ndarray:
        path = os.path.join(self.folder, f"fixMap_{index + 1:05d}.mat")
        mat = read_mat(path, "fixation map")
        arrays = {k: v for k, v in mat.items() if not k.startswith("__") and np.ndim(v) == 2}
        if not arrays:
            raise ValueError(f"{path} holds no 2-D fixation map")
        return np.asarray(arrays.get("eyeMap", next(iter(arrays.values()))), dtype=np.float32)


def _numbered(folder: str, prefix: str, count: int, ext: str) -> list[str]:
    paths = [os.path.join(folder, f"{prefix}{k:05d}{ext}") for k in range(1, count + 1)]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {count} listed files are missing, e.g. {missing[0]}")
    return paths


@register_dataset("stavis")
def stavis(root, *, databases=None, fold: int = 1, split: str = "all", size=None, short_audio: str = "error",
           **options):
    """Databases in the STAViS layout under ``root``.

    Args:
        databases: a name or list of names (``None``: every database with fold lists).
        fold: which published fold (1, 2 or 3) defines ``train``/``test`` (DIEM: its one split).
        split: ``"train"``, ``"test"`` or ``"all"``.
        size: frame and map size ``(H, W)`` (``None``: the images').
        short_audio: ``"error"`` (default) or ``"silence"``: a wav shorter than its listed frames is read
            as silence past its end (STAViS's released loader clamps its audio windows to the wav; see
            :class:`~sphsal.data.sources.AudioTrack`).
        **options: ``clip_len``, ``frame_step``, ``clip_mode`` (STAViS uses ``"center"``), ``clip_step``,
            ``transform``.
    """
    if fold not in FOLDS:
        raise ValueError(f"fold must be one of {FOLDS}, got {fold!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = check_root(root, "video_frames", "video_audio", "annotations", "fold_lists")
    lists = os.path.join(root, "fold_lists")
    found = sorted({m["db"] for m in map(_LIST_NAME.match, os.listdir(lists)) if m})
    if databases is None:
        databases = found
    elif isinstance(databases, str):
        databases = [databases]
    parts = ("train", "test") if split == "all" else (split,)
    entries = []
    for db in databases:
        for part in parts:
            for vid, nframes, fps in read_fold_list(_list_path(lists, db, part, fold, found)):
                entries.append(_video_entry(root, db, vid, nframes, fps, size, short_audio))
    return make_dataset(entries, options, "stavis")


def _list_path(lists: str, db: str, part: str, fold: int, found: list[str]) -> str:
    """``<db>_list_<part>_<fold>_fps.txt`` in ``lists``, else the fold-free ``<db>_list_<part>_fps.txt``
    (DIEM's, shared by all folds); ``FileNotFoundError`` naming both when neither exists."""
    numbered = os.path.join(lists, f"{db}_list_{part}_{fold}_fps.txt")
    shared = os.path.join(lists, f"{db}_list_{part}_fps.txt")
    for path in (numbered, shared):
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"fold list not found: {numbered} (nor {os.path.basename(shared)}; databases "
                            f"with lists: {found})")


def _video_entry(root: str, db: str, vid: str, nframes: int, fps: Fraction, size,
                 short_audio: str) -> VideoEntry:
    frame_dir = os.path.join(root, "video_frames", db, vid)
    frames = ImageFrames(_numbered(frame_dir, "img_", nframes, ".jpg"), size)
    notes = os.path.join(root, "annotations", db, vid)
    maps = ImageMaps(_numbered(os.path.join(notes, "maps"), "eyeMap_", nframes, ".jpg"))
    truth = MapGroundTruth(maps, FixationMats(notes), frames.frame_size, notes)
    audio = AudioTrack(os.path.join(root, "video_audio", db, vid, f"{vid}.wav"), Fraction(nframes) / fps, fps,
                       short_audio=short_audio)
    return VideoEntry(f"{db}/{vid}", nframes, fps, frames, truth, audio=audio)
