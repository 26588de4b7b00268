"""Random access to the frames of a video file at a target frame rate and size, through PyAV.

Frame ``k`` of the output (at ``fps`` frames per second) is the source frame that covers the time
``k / fps``: source frame ``floor(k * source_fps / fps)`` (exact rational arithmetic, no drift). A read
seeks to the keyframe at or before the wanted frame and decodes forward; decoded, resized frames stay in
a small LRU cache and the decoder is kept open, so reading clips in order decodes each frame once. The
whole video is never held in memory.

Frames come out as ``(C, H, W)`` (one frame) or ``(C, T, H, W)`` (a clip), RGB, ``float32`` in
``[0, 1]`` (or ``uint8`` on request). Resizing is an area (box) average: for 4:2:0 YUV sources (nearly
all H.264/HEVC video) libswscale's ``AREA`` filter shrinks the Y, U and V planes and OpenCV converts
the small picture to RGB (BT.601); other pixel formats are converted to RGB and shrunk with
``cv2.resize(INTER_AREA)``. Both filters average the same source pixels (mean difference about one
grey level at 960x1920 -> 256x512); at such non-integer factors OpenCV's area resize of the full
planes costs about three times the whole libswscale path, which would make resizing, not decoding,
the bottleneck.
"""

from __future__ import annotations

import gc
import math
import numbers
import os
import weakref
from collections import OrderedDict
from fractions import Fraction

import av
import cv2
import numpy as np
import torch

from sphsal._checks import check_input_file, check_integer

__all__ = ["VideoReader", "check_video_file", "source_frame", "parse_size"]

# Pixel formats whose planes can be resized before a BT.601 limited-range colour conversion.
_I420_FORMATS = ("yuv420p",)
# Decoders inherited from a parent process (fork): never used nor freed here (see _park_inherited).
_INHERITED: list = []
# Every reader with an open decoder in this process (weak: readers still die normally).
_LIVE_READERS: weakref.WeakSet = weakref.WeakSet()


def _park_inherited() -> None:
    """In a forked child, take every inherited decoder out of use before any code can touch it.

    A forked child (a DataLoader worker) inherits copies of the parent's FFmpeg decoders without their
    worker threads: decoding with such a copy, or even freeing it, blocks forever (freeing destroys a
    condition variable those threads were waiting on; a garbage collection in any thread of the child
    can trigger it while holding the GIL). So each copy is parked in :data:`_INHERITED`, which is never
    freed (workers leave through ``os._exit``), and its reader reopens the file on its next read.
    A dropped reader's decoder sits in PyAV's own reference cycles until the next garbage collection;
    such garbage is collected in the parent just before the fork, where its threads still exist.
    """
    for reader in list(_LIVE_READERS):
        _INHERITED.append((reader._container, reader._stream, reader._frames, reader._last))
        reader._container = reader._stream = reader._frames = reader._last = None


os.register_at_fork(before=gc.collect, after_in_child=_park_inherited)


def check_video_file(path: str | os.PathLike) -> str:
    """Return ``path`` as a string, or raise ``FileNotFoundError`` naming it when it does not exist
    (``IsADirectoryError`` for a folder)."""
    return check_input_file(path, "video file")


def source_frame(index: int, source_fps, fps) -> int:
    """Source frame covering the time ``index / fps``: ``floor(index * source_fps / fps)`` (exact)."""
    return int(index * Fraction(source_fps) / Fraction(fps))


def _duration_tag(text) -> Fraction | None:
    """Seconds of a Matroska ``DURATION`` tag ``"HH:MM:SS.fffffffff"``; None if absent or malformed."""
    parts = [] if text is None else str(text).split(":")
    try:
        hours, minutes, seconds = (Fraction(p) for p in parts)
    except ValueError:  # not three fields, or one that is not a number
        return None
    return hours * 3600 + minutes * 60 + seconds


def parse_size(size) -> tuple[int, int] | None:
    """``(H, W)`` from ``(H, W)``, an int ``H`` (meaning ``(H, 2H)``) or ``None`` (kept)."""
    if size is None:
        return None
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, 2 * size)
    try:
        sides = [check_integer(s, "size", whole_floats=True) for s in size]
    except (TypeError, ValueError):
        sides = []
    if len(sides) != 2:
        raise ValueError(f"size must be (H, W) positive integers, an integer H or None, got {size!r}")
    return sides[0], sides[1]


class VideoReader:
    """Seekable frame reader for one video file.

    Args:
        path: video file (any container PyAV reads: mp4, mkv, mov, avi, ...).
        fps: output frame rate (frames per second; ``None`` keeps the source rate). Frame ``k`` of the
            output is the source frame covering time ``k / fps``.
        size: output ``(H, W)`` in pixels, an int ``H`` for ``(H, 2H)``, or ``None`` for the source size.
        cache_size: how many decoded, resized frames to keep (LRU); ``None``: as many as fit in
            :attr:`cache_bytes` (at most 64).
        threads: let FFmpeg decode with frame/slice threads.

    Attributes:
        source_fps, fps: ``Fraction`` frame rates of the file and of the output.
        source_frames: number of frames in the file; ``len(reader)``: number of output frames.
        height, width: output frame size in pixels.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable video (corrupt, truncated, no video stream), naming it.
    """

    #: Forward gaps (in source frames) up to this many are decoded through instead of seeking.
    max_forward_decode = 48
    #: Memory budget of the frame cache when ``cache_size`` is ``None``.
    cache_bytes = 256 * 2**20

    def __init__(self, path, fps=None, size=None, cache_size: int | None = None, threads: bool = True):
        self.path = check_video_file(path)
        self._size = parse_size(size)
        if cache_size is not None and cache_size < 1:
            raise ValueError(f"cache_size must be >= 1 or None, got {cache_size}")
        if fps is not None and not Fraction(fps) > 0:
            raise ValueError(f"fps must be positive or None, got {fps!r}")
        try:
            self._container = av.open(self.path)
        except (av.error.FFmpegError, UnicodeDecodeError) as err:
            raise ValueError(f"cannot open video {self.path}: the file is corrupt or not a video ({err})") \
                from err
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"video file {self.path} has no video stream")
        self._stream = self._container.streams.video[0]
        self._threads = bool(threads)
        if threads:
            self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        if not rate or rate <= 0:
            self._container.close()
            raise ValueError(f"video file {self.path} has no usable frame rate")
        self.source_fps = Fraction(rate)
        self.fps = self.source_fps if fps is None else Fraction(fps).limit_denominator(1_000_000)
        self._time_base = Fraction(self._stream.time_base)
        self._start_pts = self._stream.start_time or 0
        self.source_frames = self._count_source_frames()
        if self.source_frames < 1:
            self._container.close()
            raise ValueError(f"video file {self.path} contains no frames")
        self.source_height = self._stream.codec_context.height
        self.source_width = self._stream.codec_context.width
        self.height, self.width = self._size or (self.source_height, self.source_width)
        self._cache_arg = cache_size
        fitting = self.cache_bytes // (3 * self.height * self.width)
        self.cache_size = int(cache_size or max(2, min(64, fitting)))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._frames = None  # live decode iterator (None: the next read seeks)
        self._last = None  # (source index, av.VideoFrame) most recently decoded
        _LIVE_READERS.add(self)

    # ----------------------------------------------------------------------------------------------
    def _count_source_frames(self) -> int:
        """The frame count the video stream declares, else its duration times its frame rate: the
        stream's duration, else (Matroska / WebM) its ``DURATION`` tag, the end of its last frame, less
        its start, else the container's end less the stream's start (an audio track that outlasts the
        video makes that one too long)."""
        if self._stream.frames:
            return int(self._stream.frames)
        start = Fraction(self._start_pts) * self._time_base
        tag = _duration_tag(self._stream.metadata.get("DURATION"))
        if self._stream.duration is not None:
            duration = Fraction(self._stream.duration) * self._time_base
        elif tag is not None:
            duration = tag - start
        elif self._container.duration is not None:
            origin = Fraction(self._container.start_time or 0, av.time_base)
            duration = Fraction(self._container.duration, av.time_base) - (start - origin)
        else:
            raise ValueError(f"video file {self.path} declares neither a frame count nor a duration")
        return int(math.floor(duration * self.source_fps + Fraction(1, 2)))

    def __len__(self) -> int:
        return int(math.ceil(Fraction(self.source_frames) * self.fps / self.source_fps))

    @property
    def duration(self) -> float:
        """Duration of the output frames in seconds, ``len(self) / fps``."""
        return float(len(self) / self.fps)

    def source_index(self, index: int) -> int:
        """Source frame shown at output frame ``index``: ``floor(index * source_fps / fps)``."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame index {index} out of range [0, {len(self)}) for {self.path}")
        return min(source_frame(index, self.source_fps, self.fps), self.source_frames - 1)

    # ----------------------------------------------------------------------------------------------
    def read_frame(self, index: int, dtype=torch.float32) -> torch.Tensor:
        """Output frame ``index`` as ``(3, H, W)`` RGB: float in ``[0, 1]`` or ``torch.uint8``."""
        return self.read_frames([index], dtype=dtype)[:, 0]

    def read_frames(self, indices, dtype=torch.float32) -> torch.Tensor:
        """Output frames ``indices`` (any order, repeats allowed) as a clip ``(3, T, H, W)``."""
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError("indices must name at least one frame")
        arrays = {}
        for src in sorted({self.source_index(i) for i in indices}):
            arrays[src] = self._get(src)
        clip = np.stack([arrays[self.source_index(i)] for i in indices])  # (T, H, W, 3) uint8
        out = torch.from_numpy(clip).permute(3, 0, 1, 2)
        if dtype == torch.uint8:
            return out.contiguous()
        return out.to(dtype).div_(255.0)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.read_frame(index)

    def __iter__(self):
        for k in range(len(self)):
            yield self.read_frame(k)

    # ----------------------------------------------------------------------------------------------
    def _own_decoder(self) -> None:
        """Open the file again when the decoder was closed or parked after a fork (see _park_inherited)."""
        if self._container is not None:
            return
        self._container = av.open(self.path)
        self._stream = self._container.streams.video[0]
        if self._threads:
            self._stream.thread_type = "AUTO"
        self._frames, self._last = None, None
        _LIVE_READERS.add(self)

    def _get(self, src: int) -> np.ndarray:
        if src in self._cache:
            self._cache.move_to_end(src)
            return self._cache[src]
        self._own_decoder()
        array = self._to_array(self._decode(src))
        self._cache[src] = array
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return array

    def _frame_index(self, frame) -> int:
        if frame.pts is None:
            return 0 if self._last is None else self._last[0] + 1
        seconds = (Fraction(frame.pts) - self._start_pts) * self._time_base
        return int(math.floor(seconds * self.source_fps + Fraction(1, 2)))

    def _covers(self, last, src: int) -> bool:
        """Whether the decoded frame ``last = (index, frame)`` still shows at source frame ``src > index``:
        its duration reaches past it (a long final frame of a variable-frame-rate video, whose
        declared frames at the average rate outnumber the frames that start in it)."""
        index, frame = last
        duration = getattr(frame, "duration", None)
        if frame.pts is None or not duration or duration <= 0:
            return False
        seconds = (Fraction(frame.pts) + duration - self._start_pts) * self._time_base
        return index < src < int(math.floor(seconds * self.source_fps + Fraction(1, 2)))

    def _seek(self, src: int) -> None:
        target = self._start_pts + int(Fraction(src) / self.source_fps / self._time_base)
        try:
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        except av.error.FFmpegError as err:
            raise ValueError(f"cannot seek to frame {src} in video {self.path}: the file is truncated or "
                             f"corrupt ({err})") from err
        self._frames = self._container.decode(self._stream)
        self._last = None

    def _decode(self, src: int):
        """The ``av.VideoFrame`` of source frame ``src`` (the last frame starting at or before it)."""
        last = self._last
        if last is not None and (last[0] == src or (self._frames is None and self._covers(last, src))):
            return last[1]  # (the final frame, decoded to the end of the file, still showing at src)
        if self._frames is None or last is None or not last[0] < src <= last[0] + self.max_forward_decode:
            self._seek(src)
        frame = self._decode_forward(src)
        if frame is None:  # the seek landed after the frame (index/timestamp mismatch): start over
            self._seek(0)
            frame = self._decode_forward(src)
        if frame is None:
            raise ValueError(f"frame {src} of video {self.path} could not be decoded: the file is truncated "
                             f"or corrupt (it declares {self.source_frames} frames)")
        return frame

    def _decode_forward(self, src: int):
        """Decode on from the current position up to source frame ``src``; ``None`` if passed or absent."""
        try:
            for frame in self._frames:
                index = self._frame_index(frame)
                previous, self._last = self._last, (index, frame)
                if index == src:
                    return frame
                if index > src:
                    return previous[1] if previous is not None and previous[0] < src else None
        except (av.error.FFmpegError, EOFError) as err:
            self._frames = None
            raise ValueError(f"error decoding video {self.path} near frame {src}: the file is truncated "
                             f"or corrupt ({err})") from err
        self._frames = None  # exhausted: the next read seeks
        last = self._last
        return last[1] if last is not None and self._covers(last, src) else None

    def _to_array(self, frame) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB of a decoded frame at the output size."""
        h, w = self.height, self.width
        resize = (h, w) != (frame.height, frame.width)
        if frame.format.name in _I420_FORMATS and frame.height % 2 == 0 and frame.width % 2 == 0 \
                and h % 2 == 0 and w % 2 == 0:
            if resize:  # libswscale's area filter on the planes, then colour at the small size
                frame = frame.reformat(width=w, height=h, format="yuv420p", interpolation="AREA")
            return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
        rgb = frame.to_ndarray(format="rgb24")
        if resize:
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(rgb)

    # ----------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the file and the decoder (a later read opens the file again)."""
        self._cache.clear()
        if self._container is not None:
            self._container.close()
        _LIVE_READERS.discard(self)
        self._container = self._stream = self._frames = self._last = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        # Readers travel to DataLoader workers as their arguments and reopen the file there.
        return {"path": self.path, "fps": self.fps, "size": self._size, "cache_size": self._cache_arg,
                "threads": self._threads}

    def __setstate__(self, state):
        self.__init__(**state)

    def __repr__(self) -> str:
        return (f"VideoReader({self.path!r}, fps={float(self.fps):g}, size=({self.height}, {self.width}), "
                f"frames={len(self)})")
