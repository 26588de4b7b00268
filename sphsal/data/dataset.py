"""The torch Dataset all adapters build: clips of target frames with their audio window and ground truth.

An item is a dict:

* ``frames``: ``(3, T, H, W)`` float32 RGB in ``[0, 1]``, the clip of the target frame
  (:func:`sphsal.data.clips.clip_indices`);
* ``audio``: ``(channels, samples)`` float32, the audio under the clip's time span
  (:func:`sphsal.data.clips.clip_span`, zeros before the video starts); ``(0, 0)`` when the dataset
  has no audio;
* ``sample_rate``: int (0 without audio);
* ``saliency``: ``(H, W)`` float32 ground-truth map of the target frame; ``fixations``: ``(H, W)``
  float32 in ``{0, 1}``;
* ``video``: the video's name; ``frame_index``: the target frame (at the dataset's ``fps``).

Splits are deterministic: unless a dataset ships its own lists, videos are sorted by name and every
fifth one (positions 4, 9, 14, ... of the sorted list) is the test set; the rest is the train set.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from torch.utils.data import Dataset

from sphsal._checks import check_integer, check_sample_rate
from sphsal.data.clips import CLIP_MODES, audio_window, clip_indices, clip_span, slice_audio
from sphsal.data.groundtruth import EmptyGroundTruth

__all__ = ["VideoEntry", "ClipDataset", "split_videos", "SPLITS", "EMPTY_TRUTH", "PREV_SALIENCY_STARTS",
           "prev_saliency_start", "check_root"]

SPLITS = ("train", "test", "all")
#: What :class:`ClipDataset` does with a target whose ground truth is empty (its ``empty_truth``).
EMPTY_TRUTH = ("error", "next")
#: What ``prev_saliency`` holds for a video's first frames, which have no earlier frame (see
#: :func:`prev_saliency_start`).
PREV_SALIENCY_STARTS = ("zeros", "centre")
#: Sigma (degrees) of the ``"centre"`` start map: the released U-Net loader's ``gaussian_sigma = pi / 20``.
CENTRE_START_SIGMA_DEG = 9.0


def prev_saliency_start(kind: str, size) -> torch.Tensor:
    """The ``(H, W)`` float32 map a video's first frames get as ``prev_saliency``: ``"zeros"``, or
    ``"centre"``: the map of one fixation at the front (azimuth and elevation 0), a spherical Gaussian of
    :data:`CENTRE_START_SIGMA_DEG` summing to 1, as the released U-Net loader gives frames without an
    earlier one. ``ValueError`` for another ``kind``."""
    if kind not in PREV_SALIENCY_STARTS:
        raise ValueError(f"prev_saliency_start must be one of {PREV_SALIENCY_STARTS}, got {kind!r}")
    h, w = (int(n) for n in size)
    return torch.zeros(h, w) if kind == "zeros" else _centre_start(h, w).clone()


@functools.lru_cache(maxsize=8)
def _centre_start(h: int, w: int) -> torch.Tensor:
    from sphsal.data.groundtruth import _single_numba_thread
    from sphsal.metrics.density import density_from_fixations

    with _single_numba_thread():  # as the ground truth: no parallel numba region in loader processes
        return density_from_fixations(torch.zeros(1, 2), h, w, CENTRE_START_SIGMA_DEG, norm="sum")
TEST_EVERY = 5


def check_root(root, *required: str) -> str:
    """Return ``root`` as a string after checking that it and the ``required`` entries inside exist."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset root not found (or not a folder): {root}")
    for name in required:
        if not os.path.exists(os.path.join(root, name)):
            raise FileNotFoundError(f"dataset root {root} lacks {name!r}: {os.path.join(root, name)}")
    return root


def split_videos(names, split: str) -> list[str]:
    """Deterministic split of video names: sorted, every fifth (index 4, 9, ...) is ``"test"``.
    ``ValueError`` for a ``"test"`` split of one to four videos, which would be empty (saying to use
    ``"all"``)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    names = sorted(names)
    if split == "all":
        return names
    if split == "test" and 0 < len(names) < TEST_EVERY:
        raise ValueError(f"the 'test' split holds every {TEST_EVERY}th video by sorted name, so none of "
                         f"these {len(names)}; use split 'all' to take every video")
    test = split == "test"
    return [n for i, n in enumerate(names) if (i % TEST_EVERY == TEST_EVERY - 1) == test]


@dataclass
class VideoEntry:
    """One video of a dataset.

    Attributes:
        name: video name (the ``video`` field of items).
        num_frames: number of frames at ``fps``.
        fps: frame rate (``Fraction``) at which frames are indexed.
        frames: ``indices -> (3, T, H, W)`` float32 clip.
        ground_truth: ``index -> (saliency (H, W), fixations (H, W))``.
        audio: an object with ``load(sample_rate=None) -> (audio (channels, samples), sample_rate)``
            (resampled to ``sample_rate`` Hz when one is given), or ``None``.
        targets: the frame indices that may be targets (``None``: all frames).
    """

    name: str
    num_frames: int
    fps: Fraction
    frames: Callable
    ground_truth: Callable
    audio: object = None
    targets: list[int] | None = None


class ClipDataset(Dataset):
    """Items of (video, target frame) pairs; see the module docstring for the item layout.

    Args:
        entries: the videos (already restricted to the split).
        clip_len: frames ``T`` per clip.
        frame_step: stride between target frames (e.g. 5 to evaluate every 5th frame).
        clip_mode: ``"end"`` (the clip ends at the target, causal) or ``"center"``.
        clip_step: spacing between the frames of a clip.
        transform: optional callable applied to each item dict.
        prev_saliency: also give each item ``prev_saliency`` ``(H, W)``, the ground-truth map of an
            earlier frame, for models that take it as input (the spherical U-Net): ``True`` or ``1`` the
            frame before the target, an integer ``k`` the frame ``k`` before it (``False`` or ``0``:
            none). For the first ``k`` frames of a video :func:`prev_saliency_start` of
            ``prev_saliency_start`` (zeros by default); zeros where that frame has no ground truth (is
            not among the video's ``targets``, or is empty).
        sample_rate: resample every video's audio to this rate (Hz) when it is loaded, so that videos
            recorded at other rates share batches; ``None``: each at its stored rate.
        empty_truth: what an item does whose target's ground truth is empty
            (:class:`~sphsal.data.groundtruth.EmptyGroundTruth`: an all-zero map, or a frame without gaze
            samples): ``"error"`` raises it, naming the file and the frame; ``"next"`` gives the item of
            the next target (in this dataset's index order, wrapping around; a ``Subset`` of it may so
            get an item outside the subset) whose ground truth is not empty, as ViNet's loader draws
            another clip, with a warning once per copy of the dataset (each DataLoader worker has
            one): datasets that ship a few blank maps train. :func:`sphsal.engine.evaluate.evaluate_model`
            does not score the replacing items, so such targets are left out of its scores. An empty
            earlier frame's ``prev_saliency`` is zeros either way.
    """

    def __init__(self, entries: list[VideoEntry], clip_len: int = 16, frame_step: int = 1,
                 clip_mode: str = "end", clip_step: int = 1, transform=None,
                 prev_saliency: bool | int = False, sample_rate: int | None = None,
                 empty_truth: str = "error", prev_saliency_start: str = "zeros"):
        if clip_len < 1 or frame_step < 1 or clip_step < 1:
            raise ValueError(f"clip_len, frame_step and clip_step must be >= 1, got {clip_len}, "
                             f"{frame_step}, {clip_step}")
        if clip_mode not in CLIP_MODES:
            raise ValueError(f"clip_mode must be one of {CLIP_MODES}, got {clip_mode!r}")
        if empty_truth not in EMPTY_TRUTH:
            raise ValueError(f"empty_truth must be one of {EMPTY_TRUTH}, got {empty_truth!r}")
        if prev_saliency_start not in PREV_SALIENCY_STARTS:
            raise ValueError(f"prev_saliency_start must be one of {PREV_SALIENCY_STARTS}, "
                             f"got {prev_saliency_start!r}")
        self.empty_truth, self.prev_saliency_start = empty_truth, prev_saliency_start
        self._warned_empty = False
        self.entries = list(entries)
        self.clip_len, self.frame_step = int(clip_len), int(frame_step)
        self.clip_mode, self.clip_step = clip_mode, int(clip_step)
        self.transform = transform
        self.prev_saliency = check_integer(int(prev_saliency) if isinstance(prev_saliency, bool) else
                                           prev_saliency, "prev_saliency", minimum=0)
        self.sample_rate = None if sample_rate is None else check_sample_rate(sample_rate)
        self.index: list[tuple[int, int]] = []
        self._has_truth: list[set[int] | None] = []  # per video: frames with ground truth (None: all)
        for v, entry in enumerate(self.entries):
            targets = range(entry.num_frames) if entry.targets is None else entry.targets
            self.index.extend((v, t) for t in list(targets)[::self.frame_step])
            self._has_truth.append(None if entry.targets is None else set(entry.targets))

    @property
    def videos(self) -> list[str]:
        """Names of the videos in this dataset (its split)."""
        return [e.name for e in self.entries]

    def __len__(self) -> int:
        return len(self.index)

    def clip(self, v: int, t: int) -> dict:
        """The model's inputs for frame ``t`` of video ``v`` (``frames``, ``audio``, ``sample_rate``,
        ``video``, ``frame_index``), for any frame of the video, with or without ground truth; no
        transform applied."""
        entry = self.entries[v]
        indices = clip_indices(t, self.clip_len, entry.num_frames, self.clip_mode, self.clip_step)
        if entry.audio is not None:
            track, sample_rate = (entry.audio.load() if self.sample_rate is None
                                  else entry.audio.load(sample_rate=self.sample_rate))
            t0, t1 = clip_span(t, self.clip_len, entry.fps, self.clip_mode, self.clip_step)
            audio = torch.from_numpy(slice_audio(track, *audio_window(t0, t1, sample_rate)))
        else:
            audio, sample_rate = torch.zeros((0, 0)), 0
        return {"frames": entry.frames(indices), "audio": audio, "sample_rate": int(sample_rate),
                "video": entry.name, "frame_index": int(t)}

    def truth(self, v: int, t: int) -> dict:
        """The ground truth of frame ``t`` of video ``v``: ``saliency`` and ``fixations`` tensors."""
        saliency, fixations = self.entries[v].ground_truth(t)
        return {"saliency": torch.from_numpy(np.ascontiguousarray(saliency, dtype=np.float32)),
                "fixations": torch.from_numpy(np.ascontiguousarray(fixations, dtype=np.float32))}

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for a dataset of {len(self)} items")
        i %= len(self)
        for step in range(len(self)):
            try:
                return self._item(*self.index[(i + step) % len(self)])
            except EmptyGroundTruth as err:
                self.on_empty_truth(err)
        raise ValueError(f"no target of this dataset has ground truth ({len(self)} items, all empty)")

    def on_empty_truth(self, err: EmptyGroundTruth) -> None:
        """What ``empty_truth`` asks for a target whose ground truth is empty (``err``): ``"error"`` raises
        it with a hint; ``"next"`` warns once per dataset and returns (the caller leaves the target out)."""
        if self.empty_truth == "error":
            raise EmptyGroundTruth(f"{err}; pass empty_truth='next' (--dataset-arg empty_truth=next) to skip "
                                   "such targets") from None
        if not self._warned_empty:
            warnings.warn(f"{err}: targets with empty ground truth are skipped (empty_truth='next': training "
                          "takes the next target with ground truth, evaluation leaves them out)",
                          stacklevel=3)
            self._warned_empty = True

    def _item(self, v: int, t: int) -> dict:
        """The item of frame ``t`` of video ``v`` (:class:`EmptyGroundTruth` when its truth is empty,
        raised before any frame is decoded)."""
        truth = self.truth(v, t)
        item = {**self.clip(v, t), **truth}
        if self.prev_saliency:
            known = self._has_truth[v]
            previous = None
            earlier = t - self.prev_saliency
            if earlier < 0:
                previous = prev_saliency_start(self.prev_saliency_start, item["saliency"].shape)
            elif known is None or earlier in known:
                try:
                    previous = self.truth(v, earlier)["saliency"]
                except EmptyGroundTruth:
                    pass
            item["prev_saliency"] = torch.zeros_like(item["saliency"]) if previous is None else previous
        return self.transform(item) if self.transform is not None else item

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(videos={len(self.entries)}, items={len(self)}, "
                f"clip_len={self.clip_len}, frame_step={self.frame_step}, clip_mode={self.clip_mode!r})")
