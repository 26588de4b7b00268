"""Audio files: load (wav/flac/ogg through soundfile; mp4/mkv/webm/mov/m4a through PyAV), probe, write.

Loaded audio is a float32 array ``(channels, samples)``. For MP4/MOV files with Google's spatial-audio
``SA3D`` box (:mod:`sphsal.audio.sa3d`) the channels are reordered by the box's channel map and
rescaled to ambiX (ACN order, SN3D), so the result is ready for :func:`sphsal.audio.energy_map`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction

import av
import librosa
import numpy as np
import soundfile

from sphsal._checks import check_input_file, check_sample_rate
from sphsal.atomic import atomic_path
from sphsal.audio._signal import as_signal
from sphsal.audio.ambisonics import require_ambisonic
from sphsal.audio.harmonics import normalization_gains, num_channels
from sphsal.audio.sa3d import SpatialAudioMetadata, open_media, read_sa3d

__all__ = ["AudioInfo", "probe_audio", "load_audio", "write_audio", "check_audio_length", "check_sample_rate"]

SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg")
CONTAINER_EXTENSIONS = (".mp4", ".m4a", ".mov", ".mkv", ".webm")
_SA3D_EXTENSIONS = (".mp4", ".m4a", ".mov")
WRITE_EXTENSIONS = (".wav", ".flac")
#: soundfile's format name of each writable extension.
_WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
#: FLAC stores at most 8 channels.
FLAC_MAX_CHANNELS = 8
#: A Matroska track's ``DURATION`` tag, ``HH:MM:SS.fraction``.
_DURATION_TAG = re.compile(r"(\d+):(\d{2}):(\d{2}(?:\.\d*)?)")
#: :func:`write_audio` refuses more channels than this (a (samples, channels) array passed the wrong way
#: round would otherwise become a file with thousands of channels).
MAX_WRITE_CHANNELS = 64
#: A decoded container track may fall short of its declared length by this many samples (codec priming
#: and padding: a few AAC frames) plus :data:`LENGTH_TOLERANCE_FRACTION` of the declared length.
LENGTH_TOLERANCE_SAMPLES = 4096
LENGTH_TOLERANCE_FRACTION = 0.01


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe_audio` reports about an audio file (before any conversion).

    ``num_channels`` and ``sample_rate`` are those stored in the file; ``num_samples`` is exact for
    soundfile formats and the container's estimate (duration x rate) for PyAV ones. ``spatial`` is
    the ``SA3D`` metadata of MP4/MOV files that carry it, else ``None``.
    """

    path: str
    sample_rate: int
    num_channels: int
    num_samples: int
    codec: str
    spatial: SpatialAudioMetadata | None = None

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.num_samples / self.sample_rate

    @property
    def output_channels(self) -> int:
        """Number of channels :func:`load_audio` returns: the ambisonic components an ``SA3D`` box
        describes (head-locked stereo dropped), else :attr:`num_channels`."""
        if self.spatial is None:
            return self.num_channels
        return num_channels(self.spatial.ambisonic_order)


def _uses_soundfile(path: str) -> bool:
    return path.lower().endswith(SOUNDFILE_EXTENSIONS)


def _read_spatial(path: str) -> SpatialAudioMetadata | None:
    return read_sa3d(path) if path.lower().endswith(_SA3D_EXTENSIONS) else None


def probe_audio(path) -> AudioInfo:
    """Stream parameters and spatial metadata of ``path`` without decoding the audio.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file when it cannot be
    read or has no audio stream.
    """
    path = check_input_file(path, "audio file")
    if _uses_soundfile(path):
        try:
            info = soundfile.info(path)
        except (soundfile.LibsndfileError, RuntimeError) as err:
            raise ValueError(f"{path}: cannot read audio ({err})") from err
        return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames), info.subtype)
    try:
        with open_media(path) as container:
            info = _stream_info(container, path)
    except av.FFmpegError as err:
        raise ValueError(f"{path}: cannot read audio ({err})") from err
    return info


def _first_audio_stream(container, path: str):
    if not container.streams.audio:
        raise ValueError(f"{path}: the file has no audio stream")
    return container.streams.audio[0]


def _stream_info(container, path: str) -> AudioInfo:
    """:class:`AudioInfo` of the first audio stream of an open PyAV container; ``num_samples`` is the
    declared duration times the sample rate: the stream's, else its Matroska ``DURATION`` tag, else (a
    file without video) the container's; 0 (unknown) otherwise: a container's duration is its longest
    stream's, which may be the video."""
    stream = _first_audio_stream(container, path)
    context = stream.codec_context
    rate = int(context.sample_rate)
    if rate <= 0:
        raise ValueError(f"{path}: the audio stream declares no sample rate")
    tagged = _DURATION_TAG.fullmatch(str(stream.metadata.get("DURATION", "")).strip())
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif tagged:
        hours, minutes, rest = tagged.groups()
        seconds = 3600 * int(hours) + 60 * int(minutes) + float(rest)
    elif not container.streams.video:
        seconds = (container.duration or 0) / av.time_base
    else:
        seconds = 0.0
    channels = int(context.channels)
    return AudioInfo(path, rate, channels, round(seconds * rate), context.name, _read_spatial(path))


def _decode_container(path: str) -> tuple[np.ndarray, AudioInfo, Fraction]:
    """All frames of the first audio stream as float32 ``(channels, samples)``, the stream's
    :class:`AudioInfo` (declared length) and the time of the first sample relative to the first video
    frame (:func:`_video_offset`).

    Frames are converted to packed (interleaved) float32 and de-interleaved here: PyAV's ``to_ndarray``
    of planar frames with 8 or more channels crashes the process (second- and third-order ambisonics,
    7.1), the packed layout is one plane at any channel count.
    """
    try:
        with open_media(path) as container:
            info = _stream_info(container, path)
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout=stream.codec_context.layout,
                                          rate=info.sample_rate)
            chunks, first = [], None
            for frame in container.decode(stream):
                if first is None and frame.pts is not None:
                    first = Fraction(frame.pts) * Fraction(frame.time_base)
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
            offset = _video_offset(container, first)
    except av.FFmpegError as err:
        raise ValueError(f"{path}: cannot decode audio ({err})") from err
    if not chunks:
        raise ValueError(f"{path}: the audio stream holds no samples")
    packed = np.concatenate(chunks).astype(np.float32, copy=False)  # (samples * channels,) interleaved
    return np.ascontiguousarray(packed.reshape(-1, info.num_channels).T), info, offset


def _video_offset(container, first_audio: Fraction | None) -> Fraction:
    """Seconds from the container's first video frame (its video stream's start time, where
    :class:`sphsal.data.VideoReader` counts frame 0) to the first decoded audio sample; 0 without a
    video stream or a known start time."""
    if first_audio is None or not container.streams.video:
        return Fraction(0)
    video = container.streams.video[0]
    if video.start_time is None or video.time_base is None:
        return Fraction(0)
    return first_audio - Fraction(video.start_time) * Fraction(video.time_base)


def _align_to_video(audio: np.ndarray, rate: int, offset: Fraction) -> np.ndarray:
    """``audio`` whose first sample lies ``offset`` seconds after the first video frame, shifted so that
    sample 0 is at that frame: zeros before a late start, the samples before an early one dropped."""
    shift = math.floor(offset * rate + Fraction(1, 2))
    if shift > 0:
        return np.concatenate((np.zeros((audio.shape[0], shift), audio.dtype), audio), axis=1)
    return np.ascontiguousarray(audio[:, -shift:]) if shift < 0 else audio


def check_audio_length(path, samples: int, sample_rate: int, expected_seconds, tolerance_seconds,
                       what: str) -> None:
    """Raise ``ValueError`` naming ``path`` when ``samples`` at ``sample_rate`` Hz fall short of
    ``expected_seconds`` by more than ``tolerance_seconds``.

    ``what`` names the expected length in the message (``"the video"``, ``"its declared length"``).
    Times may be floats or exact ``Fraction``s; the comparison is exact (sample ``round(t * rate)``).
    """
    needed = Fraction(expected_seconds) - Fraction(tolerance_seconds)
    if samples < math.floor(needed * int(sample_rate) + Fraction(1, 2)):
        raise ValueError(f"audio of {path} is shorter than {what}: {samples / sample_rate:.3f} s of audio "
                         f"({samples} samples at {sample_rate} Hz) for {float(expected_seconds):.3f} s; "
                         "the file is truncated or corrupt")


def _check_declared_length(audio: np.ndarray, info: AudioInfo) -> None:
    """Decoded container audio must cover the length the container declares (see
    :data:`LENGTH_TOLERANCE_SAMPLES`); an unknown (zero) declared length is not checked."""
    if info.num_samples <= 0:
        return
    rate = info.sample_rate
    tolerance = Fraction(LENGTH_TOLERANCE_SAMPLES + LENGTH_TOLERANCE_FRACTION * info.num_samples) / rate
    check_audio_length(info.path, audio.shape[1], rate, Fraction(info.num_samples, rate), tolerance,
                       "its declared length")


def _check_finite(audio: np.ndarray, path: str) -> None:
    """``ValueError`` naming ``path`` when a sample is NaN or infinite."""
    # A sum is NaN or infinite whenever an element is (the exact test runs only to confirm).
    if not np.isfinite(audio.sum(dtype=np.float64)) and not np.isfinite(audio).all():
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise ValueError(f"{path}: the audio holds {bad} NaN or infinite sample(s); the file is corrupt")


def _to_ambix(audio: np.ndarray, spatial: SpatialAudioMetadata, path: str) -> np.ndarray:
    """Reorder and rescale track channels ``(channels, samples)`` to ambiX ``((N+1)^2, samples)`` as the
    SA3D box describes.

    Track channel ``i`` holds ambisonic component ``channel_map[i]``; entries ``>= (N+1)^2`` are
    head-locked stereo (Google's injector and FFmpeg map them to ``(N+1)^2`` and ``(N+1)^2 + 1``) and
    are dropped, as are track channels past the end of the map.
    """
    if spatial.ambisonic_channel_ordering != 0:
        raise ValueError(f"{path}: SA3D channel ordering {spatial.ambisonic_channel_ordering} is not "
                         "supported (only 0 = ACN is defined)")
    mapping = spatial.channel_map
    if audio.shape[0] < len(mapping):
        raise ValueError(f"{path}: SA3D describes {len(mapping)} channels but the track has {audio.shape[0]}")
    expected = (spatial.ambisonic_order + 1) ** 2
    tracks = [i for i, component in enumerate(mapping) if component < expected]
    # (the length test first: a corrupt order must not build a huge list)
    if len(tracks) != expected or sorted(mapping[i] for i in tracks) != list(range(expected)):
        raise ValueError(f"{path}: SA3D channel map {list(mapping)} must hold each of the {expected} "
                         f"ambisonic components of order {spatial.ambisonic_order} exactly once "
                         "(entries past them are head-locked stereo)")
    ambix = np.empty((expected, audio.shape[1]), dtype=np.float32)
    ambix[[mapping[i] for i in tracks]] = audio[tracks]
    gains = normalization_gains(spatial.ambisonic_order, spatial.normalization, "sn3d").numpy()
    return (ambix * gains[:, None].astype(np.float32)).astype(np.float32, copy=False)


def load_audio(path, sample_rate: int | None = None, *, ambisonic: bool = False, return_info: bool = False,
               align_to_video: bool = False):
    """Read an audio file as float32 ``(channels, samples)``.

    Args:
        path: wav/flac/ogg (soundfile) or mp4/m4a/mov/mkv/webm (PyAV, first audio stream; any other
            extension is tried with PyAV too).
        sample_rate: resample to this rate (librosa with soxr, high quality); default keep the file's.
        ambisonic: require ambisonic audio: mono, stereo or other non-ambisonic channel counts raise
            ``ValueError`` naming the file (:func:`sphsal.audio.require_ambisonic`).
        return_info: also return the :class:`AudioInfo` of the file.
        align_to_video: in a container that also holds video, start the audio at the first video frame
            (the time :class:`sphsal.data.VideoReader` calls frame 0): zeros where the audio starts
            later, its samples before that frame dropped where it starts earlier, so that sample
            ``round(t * rate)`` is heard at video time ``t``. No effect on audio-only files.

    Returns:
        ``(audio, sample_rate)`` or ``(audio, sample_rate, info)``. With an ``SA3D`` box the channels
        are converted to ambiX (ACN/SN3D) and head-locked stereo channels (map entries past the
        ambisonic components) are dropped; ``info`` keeps the original metadata. For PyAV files
        ``info.num_samples`` is the declared length (as :func:`probe_audio` reports it).

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ValueError: the file is corrupt, has no audio, holds NaN or infinite samples, decodes to
            clearly less than the length its container declares (truncated; more than
            :data:`LENGTH_TOLERANCE_SAMPLES` plus 1% short), carries unsupported metadata, or is not
            ambisonic when ``ambisonic=True`` (the message names it).
    """
    path = check_input_file(path, "audio file")
    if sample_rate is not None:
        sample_rate = check_sample_rate(sample_rate)
    if _uses_soundfile(path):
        audio, info = _read_soundfile(path)
    else:
        audio, info, offset = _decode_container(path)
        _check_declared_length(audio, info)
        if info.spatial is not None:
            audio = _to_ambix(audio, info.spatial, path)
        if align_to_video:
            audio = _align_to_video(audio, info.sample_rate, offset)
    if audio.shape[1] == 0:
        raise ValueError(f"{path}: the audio holds no samples")
    _check_finite(audio, path)
    if ambisonic:
        require_ambisonic(audio, path=path)
    rate = info.sample_rate
    if sample_rate is not None and sample_rate != rate:
        audio = librosa.resample(audio, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq", axis=-1)
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        rate = sample_rate
    return (audio, rate, info) if return_info else (audio, rate)


def _read_soundfile(path: str) -> tuple[np.ndarray, AudioInfo]:
    """A wav/flac/ogg file as float32 ``(channels, samples)`` and its :class:`AudioInfo`."""
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        subtype = soundfile.info(path).subtype
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise ValueError(f"{path}: cannot read audio ({err})") from err
    audio = np.ascontiguousarray(data.T)
    return audio, AudioInfo(path, int(rate), audio.shape[0], audio.shape[1], subtype)


def write_audio(path, b, sample_rate: int, subtype: str | None = None) -> None:
    """Write ``b`` ``(channels, samples)`` (array or tensor) to a wav or flac file, atomically.

    ``subtype`` is soundfile's (default: ``"FLOAT"`` for wav, ``"PCM_24"`` for flac, whose samples
    are clipped to [-1, 1)). The file appears complete or not at all (temporary file + rename).

    Raises ``ValueError`` naming ``path`` (never the temporary file) or the argument when the extension
    is not .wav/.flac, ``sample_rate`` is not a positive integer, ``b`` is not ``(channels, samples)``
    (at least one sample, at most :data:`MAX_WRITE_CHANNELS` channels and no more channels than
    samples: a ``(samples, channels)`` array is refused, not written transposed), a FLAC file would
    get more than 8 channels (use .wav), ``subtype`` does not suit the format, or writing fails.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in WRITE_EXTENSIONS:
        raise ValueError(f"{path}: write_audio writes {', '.join(WRITE_EXTENSIONS)} files")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder; write_audio needs a file path")
    rate = check_sample_rate(sample_rate)
    data = as_signal(b, "b").cpu().numpy()
    _check_write_layout(data.shape, ext, path)
    fmt = _WRITE_FORMATS[ext]
    if subtype is None:
        subtype = "FLOAT" if ext == ".wav" else "PCM_24"
    if not soundfile.check_format(fmt, subtype):
        raise ValueError(f"{path}: subtype {subtype!r} is not available for {ext} files; choose one of "
                         f"{', '.join(soundfile.available_subtypes(fmt))}")
    with atomic_path(path) as tmp:
        try:
            soundfile.write(tmp, data.T, rate, subtype=subtype, format=fmt)
        except (soundfile.LibsndfileError, RuntimeError, ValueError, OverflowError) as err:
            raise ValueError(f"{path}: cannot write audio ({str(err).replace(tmp, path)})") from err


def _check_write_layout(shape: tuple[int, int], ext: str, path: str) -> None:
    """``ValueError`` naming ``path`` unless ``shape`` is a plausible ``(channels, samples)`` for ``ext``."""
    channels, samples = shape
    layout = "b must be (channels, samples)"
    if samples == 0:
        raise ValueError(f"{path}: {layout} with at least one sample, got shape {shape}")
    if channels > MAX_WRITE_CHANNELS or channels > samples:
        raise ValueError(f"{path}: {layout}; got shape {shape}, i.e. {channels} channels of {samples} "
                         f"samples (at most {MAX_WRITE_CHANNELS} channels and no more channels than samples "
                         "are accepted); transpose a (samples, channels) array first")
    if ext == ".flac" and channels > FLAC_MAX_CHANNELS:
        raise ValueError(f"{path}: FLAC stores at most {FLAC_MAX_CHANNELS} channels, got {channels}; "
                         "write a .wav file instead")
