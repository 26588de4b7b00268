"""Helpers shared by the dataset adapters: options, file discovery, tables, coordinate conversion."""

from __future__ import annotations

import csv
import os
import re
from fractions import Fraction

import av
import numpy as np

from sphsal.data.dataset import ClipDataset, VideoEntry
from sphsal.data.groundtruth import GazeGroundTruth, GazeSamples, default_cache_dir
from sphsal.data.sources import AudioTrack, VideoFrames, check_short_audio
from sphsal.sphere import pixels_to_directions

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")
#: Keyword options every adapter passes on to :class:`~sphsal.data.dataset.ClipDataset`.
CLIP_OPTIONS = ("clip_len", "frame_step", "clip_mode", "clip_step", "transform", "prev_saliency",
                "prev_saliency_start", "sample_rate", "empty_truth")


def clip_options(options: dict, adapter: str) -> dict:
    """Check that ``options`` holds only :data:`CLIP_OPTIONS`; return them."""
    unknown = sorted(set(options) - set(CLIP_OPTIONS))
    if unknown:
        raise TypeError(f"{adapter}: unknown option(s) {', '.join(unknown)}; besides the adapter's own "
                        f"options (see its docstring) it takes {', '.join(CLIP_OPTIONS)}")
    return options


def make_dataset(entries: list[VideoEntry], options: dict, adapter: str) -> ClipDataset:
    """The :class:`ClipDataset` of ``entries`` with the clip options in ``options``."""
    if not entries:
        raise ValueError(f"{adapter}: the selected split contains no video")
    return ClipDataset(entries, **clip_options(options, adapter))


def read_mat(path: str, what: str) -> dict:
    """``scipy.io.loadmat(path)``; ``FileNotFoundError`` ("<what> not found") or ``ValueError`` naming the
    file when it is missing or not a MATLAB file."""
    import scipy.io

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return scipy.io.loadmat(path)
    except (ValueError, OSError, TypeError) as err:
        raise ValueError(f"cannot read {path}: not a MATLAB .mat file ({err})") from err


def resolve_cache_dir(cache_dir) -> str | None:
    """``cache_dir`` as given; ``None`` -> :func:`default_cache_dir`; ``False`` -> no cache."""
    if cache_dir is False:
        return None
    return default_cache_dir() if cache_dir is None else os.fspath(cache_dir)


def find_video(folder: str, stem: str) -> str:
    """Path of the video ``<stem>.<ext>`` in ``folder`` (mp4, mkv, mov, avi, webm, m4v)."""
    for ext in VIDEO_EXTENSIONS:
        path = os.path.join(folder, stem + ext)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"no video file for {stem!r}: expected {os.path.join(folder, stem)}.mp4 "
                            f"(or {', '.join(VIDEO_EXTENSIONS[1:])})")


def find_folder(root: str, *names: str) -> str:
    """The first of ``root/<name>`` that is a folder (names tried in order), else FileNotFoundError."""
    for name in names:
        path = os.path.join(root, name)
        if os.path.isdir(path):
            return path
    raise FileNotFoundError(f"dataset root {root} has no {' or '.join(repr(n) for n in names)} folder")


def list_stems(folder: str, extensions=VIDEO_EXTENSIONS) -> list[str]:
    """Sorted file stems in ``folder`` with one of ``extensions``."""
    return sorted(os.path.splitext(n)[0] for n in os.listdir(folder)
                  if os.path.splitext(n)[1].lower() in extensions and not n.startswith("."))


def numbered_file_map(folder: str, extensions) -> dict[int, str]:
    """``{number: path}`` of the files of ``folder`` with ``extensions``, keyed by the last integer in
    their names (``0001.png`` and ``frame_1.jpg`` are both number 1), sorted by number.

    Raises ``FileNotFoundError`` when the folder is missing or holds no such file, and ``ValueError``
    naming both files when two of them carry the same number.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder not found: {folder}")
    found: dict[int, str] = {}
    for name in sorted(os.listdir(folder)):
        digits = re.findall(r"\d+", os.path.splitext(name)[0])
        if os.path.splitext(name)[1].lower() not in extensions or not digits or name.startswith("."):
            continue
        number, path = int(digits[-1]), os.path.join(folder, name)
        if number in found:
            raise ValueError(f"two files carry the number {number}: {found[number]} and {path}; "
                             "keep one file per number")
        found[number] = path
    if not found:
        raise FileNotFoundError(f"no numbered {'/'.join(extensions)} files in {folder}")
    return dict(sorted(found.items()))


def numbered_files(folder: str, extensions) -> list[str]:
    """Files of ``folder`` with ``extensions``, sorted by the last integer in their names (see
    :func:`numbered_file_map`, whose errors it raises)."""
    return list(numbered_file_map(folder, extensions).values())


def has_audio_stream(path: str) -> bool:
    """Whether the media file at ``path`` has an audio stream."""
    try:
        with av.open(path) as container:
            return bool(container.streams.audio)
    except av.error.FFmpegError as err:
        raise ValueError(f"cannot open {path}: the file is corrupt or not a media file ({err})") from err


#: Normalised coordinates may leave ``[0, 1]`` by this much (rounding in published files); such values
#: are clipped. Anything further out (pixels, degrees) is an error.
UV_TOLERANCE = 1e-3


def check_normalised(values, source: str, column: str) -> np.ndarray:
    """``values`` (normalised image coordinates) as float64, clipped to ``[0, 1]``; ``ValueError`` naming
    ``source`` and ``column`` when a finite value lies more than :data:`UV_TOLERANCE` outside. NaN
    passes (the samples drop it)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size and (finite.min() < -UV_TOLERANCE or finite.max() > 1 + UV_TOLERANCE):
        raise ValueError(f"{source}: column {column!r} holds values from {finite.min():.6g} to "
                         f"{finite.max():.6g}, but it must hold normalised coordinates in [0, 1] (pixels or "
                         "degrees instead?)")
    return np.clip(values, 0.0, 1.0)


def uv_to_directions(u, v, source: str = "gaze coordinates", columns: tuple[str, str] = ("u", "v")):
    """ERP normalised coordinates (``u`` right, ``v`` down from the top-left, in ``[0, 1]``) ->
    ``(az, el)`` radians (1-D float64 arrays), through :func:`sphsal.sphere.pixels_to_directions` on a
    1x1 grid. Values outside ``[0, 1]`` raise ``ValueError`` naming ``source`` and the column
    (``columns``: the names of ``u`` and ``v`` in the file), see :func:`check_normalised`."""
    u = check_normalised(u, source, columns[0])
    v = check_normalised(v, source, columns[1])
    az, el = pixels_to_directions(v - 0.5, u - 0.5, 1, 1)
    return az.numpy(), el.numpy()


def read_text(path: str, what: str) -> str:
    """The UTF-8 text of ``path`` (a byte-order mark dropped, line ends kept); ``ValueError`` naming the
    file, a ``what``, when it is not UTF-8 text (corrupt or binary)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return f.read()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a text {what} (corrupt or binary file?): {err}") from err


def read_table(path: str, required: dict[str, tuple[str, ...]], delimiter: str | None = None) -> dict:
    """Read a CSV file with a header row; return ``{key: float64 array}`` for each ``required`` key.

    ``required`` maps a key to the accepted header names (compared case-insensitively, spaces trimmed).
    A file that is not UTF-8 text, a missing column or a non-numeric value raises ``ValueError`` naming
    the file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"table not found: {path}")
    text = read_text(path, "table")
    if delimiter is None:
        try:
            first_line = text.splitlines()[0] if text else ","
            delimiter = csv.Sniffer().sniff(first_line, delimiters=",;\t ").delimiter
        except csv.Error:
            delimiter = ","
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter, skipinitialspace=True) if r]
    if not rows:
        raise ValueError(f"{path} is empty: expected a header row with columns "
                         f"{', '.join(names[0] for names in required.values())}")
    header = [h.strip().lower() for h in rows[0]]
    out = {}
    for key, names in required.items():
        col = next((header.index(n.lower()) for n in names if n.lower() in header), None)
        if col is None:
            raise ValueError(f"{path} has wrong columns: expected a column {names[0]!r} (found {rows[0]})")
        try:
            out[key] = np.array([float(r[col]) for r in rows[1:]], dtype=np.float64)
        except (ValueError, IndexError) as err:
            raise ValueError(f"{path}: column {names[0]!r} holds a missing or non-numeric value ({err})") \
                from err
    if not rows[1:]:
        raise ValueError(f"{path} has a header but no data rows")
    return out


def gaze_video_entry(name: str, video_path: str, samples: GazeSamples, *, fps, size, sigma_deg: float,
                     cache_dir: str | None, key: str, audio: bool | str = "auto",
                     short_audio: str = "error") -> VideoEntry:
    """A :class:`VideoEntry` whose frames come from ``video_path`` and whose ground truth is built from
    gaze ``samples`` (see :class:`GazeGroundTruth`; ``cache_dir`` as resolved by
    :func:`resolve_cache_dir`). ``audio``, ``short_audio``: as for :func:`video_audio`."""
    frames = VideoFrames(video_path, fps=fps, size=size)
    truth = GazeGroundTruth(samples, frames.fps, frames.frame_size, sigma_deg, cache_dir, key)
    return VideoEntry(name, frames.num_frames, frames.fps, frames, truth,
                      audio=video_audio(video_path, frames, audio, short_audio))


def video_audio(path: str, frames: VideoFrames, audio: bool | str,
                short_audio: str = "error") -> AudioTrack | None:
    """The :class:`AudioTrack` of the video file ``path`` per the ``audio`` policy: ``"ambisonic"``
    (required and ambisonic: a missing stream or a non-ambisonic channel count raises ``ValueError``
    naming the video now, from a probe), ``True`` (required, any channels), ``False`` (none) or
    ``"auto"`` (used when the file has an audio stream). ``short_audio``: see :class:`AudioTrack`."""
    if audio not in (True, False, "auto", "ambisonic"):
        raise ValueError(f"audio must be True, False, 'auto' or 'ambisonic', got {audio!r}")
    check_short_audio(short_audio)  # also when the file has no audio
    if audio == "auto":
        audio = has_audio_stream(path)
    elif audio and not has_audio_stream(path):
        raise ValueError(f"video {path} has no audio stream, but this dataset needs its audio")
    if not audio:
        return None
    duration = Fraction(frames.num_frames) / frames.fps
    return AudioTrack(path, duration, frames.fps, ambisonic=audio == "ambisonic", short_audio=short_audio)
