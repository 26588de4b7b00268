"""Per-video sources the datasets draw from: frames (video file or image sequence) and audio tracks.

Every source opens its files lazily and reopens them after pickling, so a dataset built in the main
process works in DataLoader workers.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from fractions import Fraction

import cv2
import numpy as np
import torch

from sphsal.data.video import VideoReader, parse_size, source_frame

__all__ = ["VideoFrames", "ImageFrames", "AudioTrack", "ImageMaps", "read_image", "resize_map"]

# Decoded audio tracks, most recently used last: {(path, requested sample rate or None): (audio,
# sample_rate)} (per process).
_AUDIO_CACHE: OrderedDict[tuple[str, int | None], tuple[np.ndarray, int]] = OrderedDict()
_AUDIO_CACHE_TRACKS = 4
#: What :class:`AudioTrack` does with a track shorter than its video.
SHORT_AUDIO = ("error", "silence")


def check_short_audio(value) -> str:
    """``value`` when it is one of :data:`SHORT_AUDIO`, else ``ValueError``."""
    if value not in SHORT_AUDIO:
        raise ValueError(f"short_audio must be one of {SHORT_AUDIO}, got {value!r}")
    return value


def read_image(path: str, size=None, flags=cv2.IMREAD_COLOR) -> np.ndarray:
    """Read an image file (``(H, W, 3)`` RGB uint8, or ``(H, W)`` with ``cv2.IMREAD_GRAYSCALE``), resized
    to ``size = (H, W)`` with ``INTER_AREA``. Raises naming the file when it is missing or unreadable."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    image = cv2.imread(path, flags)
    if image is None:
        raise ValueError(f"cannot decode image {path}: the file is corrupt or not an image")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if size is not None and image.shape[:2] != tuple(size):
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return image


def resize_map(saliency: np.ndarray, size) -> np.ndarray:
    """Resize a saliency map ``(H, W)`` to ``size`` with ``INTER_AREA`` (area averaging)."""
    saliency = np.asarray(saliency, dtype=np.float32)
    if size is None or saliency.shape == tuple(size):
        return saliency
    return cv2.resize(saliency, (size[1], size[0]), interpolation=cv2.INTER_AREA)


class VideoFrames:
    """Clips ``(3, T, H, W)`` float32 from a video file at ``fps`` and ``size`` (see :class:`VideoReader`)."""

    def __init__(self, path: str, fps=None, size=None):
        self.path, self.fps, self.size = path, fps, parse_size(size)
        self._reader = None
        with VideoReader(path, fps=fps, size=size) as reader:  # validates the file now
            self.num_frames = len(reader)
            self.fps, self.source_fps = reader.fps, reader.source_fps
            self.frame_size = (reader.height, reader.width)

    def source_index(self, index: int) -> int:
        """Frame of the file shown at output frame ``index`` (see :meth:`VideoReader.source_index`)."""
        return source_frame(index, self.source_fps, self.fps)

    def __call__(self, indices) -> torch.Tensor:
        if self._reader is None:
            self._reader = VideoReader(self.path, fps=self.fps, size=self.size)
        return self._reader.read_frames(indices)

    def __getstate__(self):
        return {**self.__dict__, "_reader": None}


class ImageFrames:
    """Clips ``(3, T, H, W)`` float32 from an ordered list of image files (one per frame)."""

    def __init__(self, paths: list[str], size=None):
        if not paths:
            raise ValueError("an image sequence needs at least one frame file")
        self.paths, self.size = list(paths), parse_size(size)
        self.num_frames = len(self.paths)
        first = read_image(self.paths[0], self.size)
        self.frame_size = first.shape[:2]
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __call__(self, indices) -> torch.Tensor:
        frames = []
        for k in indices:
            if not 0 <= k < len(self.paths):
                raise IndexError(f"frame {k} out of range for the {len(self.paths)} frames in "
                                 f"{os.path.dirname(self.paths[0])}")
            if k not in self._cache:
                self._cache[k] = read_image(self.paths[k], self.frame_size)
                if len(self._cache) > 64:
                    self._cache.popitem(last=False)
            frames.append(self._cache[k])
        return torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2).float().div_(255.0)

    def __getstate__(self):
        return {**self.__dict__, "_cache": OrderedDict()}


class AudioTrack:
    """The audio of one video, ``(channels, samples)`` float32, decoded on first use and kept in a small
    per-process cache of the most recently used tracks. Sample 0 is heard with the video's first frame
    (``load_audio(..., align_to_video=True)``: streams of one container that start at different times
    are aligned).

    Args:
        path: audio or video file (anything ``sphsal.audio.load_audio`` reads; ambiX on output).
        duration: duration of the video in seconds (exact ``Fraction`` preferred). The track must cover
            it: a shortfall of more than one video frame (``1 / fps``) raises ``ValueError`` naming the
            file, at construction from the declared length (``sphsal.audio.probe_audio``; a container
            that declares none is not checked there) and again from the decoded samples; a smaller one
            (codec padding) is read as silence.
        fps: frame rate of the video, for that tolerance.
        ambisonic: the dataset needs ambisonic audio: a file whose (probed) channel count is not
            ``(N+1)^2`` with ``N >= 1`` (mono, stereo, 5.1, ...) raises ``ValueError`` naming it at
            construction, not when the first item is read.
        short_audio: ``"error"`` (the shortfall above raises) or ``"silence"``: a track shorter than the
            video is read as silence past its end, with a warning naming the file (once per copy of
            the track: each DataLoader worker has one; the behaviour of STAViS's released loader, which
            clamps its audio windows to the track).

    Attributes:
        num_channels: channels of the loaded track (from the probe, SA3D conversion included).
    """

    def __init__(self, path: str, duration, fps, ambisonic: bool = False, short_audio: str = "error"):
        from sphsal.audio import probe_audio
        from sphsal.audio.ambisonics import require_ambisonic_channels

        check_short_audio(short_audio)
        self.path, self.duration, self.fps = path, Fraction(duration), Fraction(fps)
        self.short_audio, self._warned = short_audio, False
        if not os.path.isfile(path):
            raise FileNotFoundError(f"audio file not found: {path}")
        info = probe_audio(path)
        self.num_channels = info.output_channels
        if ambisonic:
            where = f"audio file '{path}' (this dataset needs ambisonic audio)"
            require_ambisonic_channels(self.num_channels, where)
        if info.num_samples > 0:  # 0: the container declares no length; the decoded samples are checked
            self._check_length(info.num_samples, info.sample_rate)

    def _check_length(self, samples: int, sample_rate: int) -> None:
        from sphsal.audio.io import check_audio_length

        try:
            check_audio_length(self.path, samples, sample_rate, self.duration, 1 / self.fps, "the video")
        except ValueError as err:
            if self.short_audio == "error":
                raise ValueError(f"{err}; pass short_audio='silence' (--dataset-arg short_audio=silence) "
                                 "to read it as silence past its end") from None
            if not self._warned:
                self._warned = True
                warnings.warn(f"{err}; read as silence past its end (short_audio='silence')", stacklevel=3)

    def load(self, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
        """``(audio (channels, samples) float32, sample_rate)``; resampled to ``sample_rate`` (Hz) when
        one is given (``None``: the stored rate)."""
        key = (self.path, sample_rate)
        if key in _AUDIO_CACHE:
            _AUDIO_CACHE.move_to_end(key)
        else:
            from sphsal.audio import load_audio

            data, rate = load_audio(self.path, sample_rate=sample_rate, align_to_video=True)
            _AUDIO_CACHE[key] = (np.asarray(data, dtype=np.float32), int(rate))
            if len(_AUDIO_CACHE) > _AUDIO_CACHE_TRACKS:
                _AUDIO_CACHE.popitem(last=False)
        data, rate = _AUDIO_CACHE[key]
        self._check_length(data.shape[-1], rate)  # this track's duration, also on a cache hit
        return data, rate


class ImageMaps:
    """``index -> (H, W)`` float32 map read from a grayscale image file.

    ``paths`` is a list (the ``index``-th file is frame ``index``'s map) or a ``{frame index: path}``
    dict for maps that do not cover every frame. Asking for a frame without a map raises ``ValueError``.
    """

    def __init__(self, paths: list[str] | dict[int, str]):
        self.paths = dict(paths) if isinstance(paths, dict) else dict(enumerate(paths))

    def __len__(self) -> int:
        return len(self.paths)

    def __call__(self, index: int) -> np.ndarray:
        if index not in self.paths:
            folder = os.path.dirname(next(iter(self.paths.values()), ""))
            raise ValueError(f"no map for frame {index} in {folder} ({len(self.paths)} frames have one)")
        return read_image(self.paths[index], flags=cv2.IMREAD_GRAYSCALE).astype(np.float32)
