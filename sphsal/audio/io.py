"""Audio files: load (wav/flac/ogg through soundfile; mp4/mkv/webm/mov/m4a through PyAV), probe, write.

Loaded audio is a float32 array ``(channels, samples)``. For MP4/MOV files with Google's spatial-audio
``SA3D`` box (:mod:`sphsal.audio.sa3d`) the channels are reordered by the box's channel map and
rescaled to ambiX (ACN order, SN3D), so the result is ready for :func:`sphsal.audio.energy_map`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import av
import librosa
import numpy as np
import soundfile

from sphsal.atomic import atomic_path
from sphsal.audio._signal import as_signal
from sphsal.audio.ambisonics import require_ambisonic
from sphsal.audio.harmonics import normalization_gains, num_channels
from sphsal.audio.sa3d import SpatialAudioMetadata, read_sa3d

__all__ = ["AudioInfo", "probe_audio", "load_audio", "write_audio"]

SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg")
CONTAINER_EXTENSIONS = (".mp4", ".m4a", ".mov", ".mkv", ".webm")
_SA3D_EXTENSIONS = (".mp4", ".m4a", ".mov")
WRITE_EXTENSIONS = (".wav", ".flac")


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


def _check_exists(path) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    return path


def _uses_soundfile(path: str) -> bool:
    return path.lower().endswith(SOUNDFILE_EXTENSIONS)


def _read_spatial(path: str) -> SpatialAudioMetadata | None:
    return read_sa3d(path) if path.lower().endswith(_SA3D_EXTENSIONS) else None


def probe_audio(path) -> AudioInfo:
    """Stream parameters and spatial metadata of ``path`` without decoding the audio.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file when it cannot be
    read or has no audio stream.
    """
    path = _check_exists(path)
    if _uses_soundfile(path):
        try:
            info = soundfile.info(path)
        except (soundfile.LibsndfileError, RuntimeError) as err:
            raise ValueError(f"{path}: cannot read audio ({err})") from err
        return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames), info.subtype)
    try:
        with av.open(path) as container:
            stream = _first_audio_stream(container, path)
            rate = int(stream.rate)
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            else:
                seconds = (container.duration or 0) / av.time_base
            channels, codec = int(stream.codec_context.channels), stream.codec_context.name
    except av.FFmpegError as err:
        raise ValueError(f"{path}: cannot read audio ({err})") from err
    return AudioInfo(path, rate, channels, round(seconds * rate), codec, _read_spatial(path))


def _first_audio_stream(container, path: str):
    if not container.streams.audio:
        raise ValueError(f"{path}: the file has no audio stream")
    return container.streams.audio[0]


def _decode_container(path: str) -> tuple[np.ndarray, int, str]:
    """All frames of the first audio stream as planar float32 ``(channels, samples)``, the sample rate
    and the codec name."""
    try:
        with av.open(path) as container:
            stream = _first_audio_stream(container, path)
            resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout,
                                          rate=stream.codec_context.sample_rate)
            chunks = []
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray() for f in resampler.resample(None))
            rate = int(stream.codec_context.sample_rate)
            channels, codec = int(stream.codec_context.channels), stream.codec_context.name
    except av.FFmpegError as err:
        raise ValueError(f"{path}: cannot decode audio ({err})") from err
    if not chunks:
        raise ValueError(f"{path}: the audio stream holds no samples")
    return np.concatenate(chunks, axis=1).astype(np.float32, copy=False).reshape(channels, -1), rate, codec


def _to_ambix(audio: np.ndarray, spatial: SpatialAudioMetadata, path: str) -> np.ndarray:
    """Reorder and rescale track channels to ambiX as the SA3D box describes."""
    if spatial.ambisonic_channel_ordering != 0:
        raise ValueError(f"{path}: SA3D channel ordering {spatial.ambisonic_channel_ordering} is not "
                         "supported (only 0 = ACN is defined)")
    expected = num_channels(spatial.ambisonic_order)
    mapping = spatial.channel_map
    if spatial.num_channels != expected or sorted(mapping) != list(range(expected)):
        raise ValueError(f"{path}: SA3D channel map {list(mapping)} is not a permutation of the "
                         f"{expected} channels of order {spatial.ambisonic_order}")
    if audio.shape[0] < expected:
        raise ValueError(f"{path}: SA3D declares {expected} ambisonic channels but the track has "
                         f"{audio.shape[0]}")
    ambix = np.empty((expected, audio.shape[1]), dtype=np.float32)
    ambix[list(mapping)] = audio[:expected]
    gains = normalization_gains(spatial.ambisonic_order, spatial.normalization, "sn3d").numpy()
    return (ambix * gains[:, None].astype(np.float32)).astype(np.float32, copy=False)


def load_audio(path, sample_rate: int | None = None, *, ambisonic: bool = False, return_info: bool = False):
    """Read an audio file as float32 ``(channels, samples)``.

    Args:
        path: wav/flac/ogg (soundfile) or mp4/m4a/mov/mkv/webm (PyAV, first audio stream; any other
            extension is tried with PyAV too).
        sample_rate: resample to this rate (librosa with soxr, high quality); default keep the file's.
        ambisonic: require ambisonic audio: mono, stereo or other non-ambisonic channel counts raise
            ``ValueError`` naming the file (:func:`sphsal.audio.require_ambisonic`).
        return_info: also return the :class:`AudioInfo` of the file.

    Returns:
        ``(audio, sample_rate)`` or ``(audio, sample_rate, info)``. With an ``SA3D`` box the channels
        are converted to ambiX (ACN/SN3D) and any channels after the ambisonic ones (head-locked
        stereo) are dropped; ``info`` keeps the original metadata.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        ValueError: the file is corrupt, has no audio, carries unsupported metadata, or is not
            ambisonic when ``ambisonic=True`` (the message names it).
    """
    path = _check_exists(path)
    if sample_rate is not None and (int(sample_rate) != sample_rate or sample_rate <= 0):
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if _uses_soundfile(path):
        try:
            data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError) as err:
            raise ValueError(f"{path}: cannot read audio ({err})") from err
        audio = np.ascontiguousarray(data.T)
        info = AudioInfo(path, int(rate), audio.shape[0], audio.shape[1], soundfile.info(path).subtype)
    else:
        audio, rate, codec = _decode_container(path)
        spatial = _read_spatial(path)
        info = AudioInfo(path, rate, audio.shape[0], audio.shape[1], codec, spatial)
        if spatial is not None:
            audio = _to_ambix(audio, spatial, path)
    if audio.shape[1] == 0:
        raise ValueError(f"{path}: the audio holds no samples")
    if ambisonic:
        require_ambisonic(audio, path=path)
    if sample_rate is not None and int(sample_rate) != rate:
        audio = librosa.resample(audio, orig_sr=rate, target_sr=int(sample_rate), res_type="soxr_hq", axis=-1)
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        rate = int(sample_rate)
    return (audio, rate, info) if return_info else (audio, rate)


def write_audio(path, b, sample_rate: int, subtype: str | None = None) -> None:
    """Write ``b`` ``(channels, samples)`` (array or tensor) to a wav or flac file, atomically.

    ``subtype`` is soundfile's (default: ``"FLOAT"`` for wav, ``"PCM_24"`` for flac, whose samples
    are clipped to [-1, 1)). The file appears complete or not at all (temporary file + rename).
    """
    path = os.fspath(path)
    if not path.lower().endswith(WRITE_EXTENSIONS):
        raise ValueError(f"{path}: write_audio writes {', '.join(WRITE_EXTENSIONS)} files")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    data = as_signal(b, "b").cpu().numpy().T
    if subtype is None:
        subtype = "FLOAT" if path.lower().endswith(".wav") else "PCM_24"
    with atomic_path(path) as tmp:
        soundfile.write(tmp, data, int(sample_rate), subtype=subtype)
