"""Spatial audio for 360-degree video: ambisonics, audio energy maps, audio I/O and features.

* :mod:`~sphsal.audio.harmonics`: real spherical harmonics (ACN; SN3D, N3D, orthonormal).
* :mod:`~sphsal.audio.ambisonics`: encode, FuMa <-> ambiX, normalisation, rotation.
* :mod:`~sphsal.audio.energy_map`: per-frame beam energy maps on ERP grids, pseudo-intensity DOA.
* :mod:`~sphsal.audio.io`, :mod:`~sphsal.audio.sa3d`: load/probe/write audio, spatial-audio metadata.
* :mod:`~sphsal.audio.features`: VGGish log-mel examples and waveform windows per video frame.
* :mod:`~sphsal.audio.timing`: audio <-> video frame alignment.

Signals are ``(channels, samples)``, ambiX (ACN/SN3D) unless stated; directions follow
:mod:`sphsal.sphere`.
"""

from sphsal.audio.ambisonics import (
    ambix_to_fuma,
    convert_normalization,
    encode,
    fuma_to_ambix,
    require_ambisonic,
    rotate,
    sh_rotation_matrix,
)
from sphsal.audio.energy_map import (
    DECODERS,
    beam_weights,
    decoder_degree_weights,
    doa_intensity,
    energy_map,
    temporal_smooth,
    window_covariance,
)
from sphsal.audio.features import (
    log_mel,
    log_mel_example_ends,
    log_mel_spectrogram,
    mono_downmix,
    waveform_windows,
)
from sphsal.audio.harmonics import NORMALIZATIONS, acn_degrees, normalization_gains, num_channels, sh_matrix
from sphsal.audio.io import AudioInfo, load_audio, probe_audio, write_audio
from sphsal.audio.sa3d import SpatialAudioMetadata, insert_sa3d, read_sa3d
from sphsal.audio.timing import frame_sample_positions, num_video_frames

__all__ = [
    "sh_matrix", "num_channels", "acn_degrees", "normalization_gains", "NORMALIZATIONS",
    "encode", "rotate", "sh_rotation_matrix", "fuma_to_ambix", "ambix_to_fuma", "convert_normalization",
    "require_ambisonic",
    "energy_map", "doa_intensity", "window_covariance", "temporal_smooth", "beam_weights",
    "decoder_degree_weights", "DECODERS",
    "load_audio", "probe_audio", "write_audio", "AudioInfo",
    "read_sa3d", "insert_sa3d", "SpatialAudioMetadata",
    "log_mel", "log_mel_spectrogram", "log_mel_example_ends", "waveform_windows", "mono_downmix",
    "num_video_frames", "frame_sample_positions",
]
