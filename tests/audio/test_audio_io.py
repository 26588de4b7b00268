import math
import os
import struct

import av
import numpy as np
import pytest
import soundfile

from sphsal.audio.ambisonics import convert_normalization, encode
from sphsal.audio.io import load_audio, probe_audio, write_audio
from sphsal.audio.sa3d import SpatialAudioMetadata, insert_sa3d, read_sa3d

RATE = 8000


def _write_container(path, audio, rate=RATE, codec="pcm_s16le", options=None):
    """Write (channels, samples) float audio in [-1, 1) with PyAV: int16 PCM or a float codec."""
    layout = {1: "mono", 2: "stereo", 4: "quad"}[audio.shape[0]]
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        if codec == "pcm_s16le":
            data = np.round(audio.T * 32768).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
        else:
            frame = av.AudioFrame.from_ndarray(audio.astype(np.float32), format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _ambix_scene(samples=RATE // 2, seed=0):
    rng = np.random.default_rng(seed)
    s = (0.2 * rng.standard_normal(samples)).clip(-0.9, 0.9)
    return encode(s, 0.8, 0.3, order=1) * 0.9


def test_wav_round_trip_and_atomic_write(tmp_path):
    b = _ambix_scene().astype(np.float32)
    path = tmp_path / "scene.wav"
    write_audio(path, b, RATE)
    assert sorted(os.listdir(tmp_path)) == ["scene.wav"]
    audio, rate, info = load_audio(path, return_info=True)
    assert rate == RATE and audio.dtype == np.float32 and audio.shape == b.shape
    np.testing.assert_array_equal(audio, b)
    assert info.num_channels == 4 and info.num_samples == b.shape[1] and info.spatial is None
    assert probe_audio(path).duration == pytest.approx(b.shape[1] / RATE)


def test_flac_and_ogg(tmp_path):
    b = _ambix_scene().astype(np.float32)
    write_audio(tmp_path / "scene.flac", b, RATE)
    np.testing.assert_allclose(load_audio(tmp_path / "scene.flac")[0], b, atol=2 ** -22)
    soundfile.write(tmp_path / "scene.ogg", b.T, RATE)
    audio, rate = load_audio(tmp_path / "scene.ogg")
    assert audio.shape[0] == 4 and rate == RATE and abs(audio.shape[1] - b.shape[1]) < 1024


def test_write_audio_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="out.mp3"):
        write_audio(tmp_path / "out.mp3", np.zeros((1, 10)), RATE)
    with pytest.raises(ValueError, match="sample_rate"):
        write_audio(tmp_path / "out.wav", np.zeros((1, 10)), 0)
    assert os.listdir(tmp_path) == []


def test_resampling_keeps_frequency(tmp_path):
    t = np.arange(RATE) / RATE
    write_audio(tmp_path / "tone.wav", np.sin(2 * math.pi * 440 * t)[None], RATE)
    audio, rate = load_audio(tmp_path / "tone.wav", sample_rate=16000)
    assert rate == 16000 and audio.shape == (1, 16000)
    spectrum = np.abs(np.fft.rfft(audio[0]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) <= 1


@pytest.mark.parametrize("ext", [".mov", ".mkv"])
def test_container_decoding(tmp_path, ext):
    b = _ambix_scene()
    path = tmp_path / f"clip{ext}"
    _write_container(path, b)
    audio, rate, info = load_audio(path, return_info=True)
    assert rate == RATE and audio.shape == b.shape and info.codec == "pcm_s16le"
    np.testing.assert_allclose(audio, b, atol=1 / 32768)
    assert probe_audio(path).num_channels == 4


def test_sa3d_channel_map_and_n3d_are_converted_to_ambix(tmp_path):
    ambix = _ambix_scene(seed=3)
    n3d = convert_normalization(ambix, "sn3d", "n3d") / math.sqrt(3)  # keep within [-1, 1)
    mapping = (0, 3, 1, 2)  # track channel i holds ACN component mapping[i]
    track = n3d[list(mapping)]
    path = tmp_path / "spatial.mov"
    _write_container(path, track)
    metadata = SpatialAudioMetadata(ambisonic_order=1, channel_map=mapping, ambisonic_normalization=1)
    insert_sa3d(path, metadata)
    assert read_sa3d(path) == metadata
    audio, rate, info = load_audio(path, return_info=True)
    assert info.spatial == metadata and probe_audio(path).spatial == metadata
    np.testing.assert_allclose(audio, ambix / math.sqrt(3), atol=2 / 32768)


def test_sa3d_insertion_keeps_media_playable_with_moov_first(tmp_path):
    src, dst = tmp_path / "plain.mp4", tmp_path / "tagged.mp4"
    _write_container(src, _ambix_scene(seed=4), codec="aac", options={"movflags": "faststart"})
    data = src.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # chunk offsets must move with the new box
    assert read_sa3d(src) is None
    insert_sa3d(src, SpatialAudioMetadata.ambix(1), out=dst)
    assert read_sa3d(dst) == SpatialAudioMetadata.ambix(1)
    np.testing.assert_array_equal(load_audio(dst)[0], load_audio(src)[0])
    # Writing the same box again replaces it: the file does not change.
    tagged = dst.read_bytes()
    insert_sa3d(dst, SpatialAudioMetadata.ambix(1))
    assert dst.read_bytes() == tagged


def test_sa3d_box_bytes():
    metadata = SpatialAudioMetadata(ambisonic_order=2, channel_map=tuple(range(9)), ambisonic_normalization=1)
    box = metadata.to_box()
    assert box[4:8] == b"SA3D" and struct.unpack(">I", box[:4])[0] == len(box) == 8 + 12 + 36
    version, kind, order, ordering, norm, count = struct.unpack_from(">BBIBBI", box, 8)
    assert (version, kind, order, ordering, norm, count) == (0, 0, 2, 0, 1, 9)
    parsed = SpatialAudioMetadata.from_payload(box[8:], "x.mp4")
    assert parsed.normalization == "n3d" and parsed.num_channels == 9
    with pytest.raises(ValueError, match="x.mp4"):
        SpatialAudioMetadata.from_payload(box[8:20], "x.mp4")


def test_unsupported_sa3d_ordering(tmp_path):
    path = tmp_path / "fuma.mov"
    _write_container(path, _ambix_scene())
    insert_sa3d(path, SpatialAudioMetadata(ambisonic_order=1, channel_map=(0, 1, 2, 3),
                                           ambisonic_channel_ordering=1))
    with pytest.raises(ValueError, match="fuma.mov"):
        load_audio(path)


@pytest.mark.parametrize("name", ["absent.wav", "absent.mp4"])
def test_missing_file_is_named(tmp_path, name):
    with pytest.raises(FileNotFoundError, match=name):
        load_audio(tmp_path / name)
    with pytest.raises(FileNotFoundError, match=name):
        probe_audio(tmp_path / name)


@pytest.mark.parametrize("name", ["broken.wav", "broken.mp4", "broken.flac"])
def test_corrupt_file_is_named(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(64) if name.endswith(".wav")
                     else b"\x00\x00\x00\x18ftypisom" + os.urandom(200))
    with pytest.raises(ValueError, match=name):
        load_audio(path)


def test_stereo_file_where_ambisonics_is_required(tmp_path):
    path = tmp_path / "music.wav"
    write_audio(path, np.zeros((2, RATE), dtype=np.float32), RATE)
    audio, _ = load_audio(path)  # plain loading works
    assert audio.shape == (2, RATE)
    with pytest.raises(ValueError, match="stereo") as err:
        load_audio(path, ambisonic=True)
    assert "music.wav" in str(err.value)
    mono = tmp_path / "voice.mov"
    _write_container(mono, np.zeros((1, RATE)))
    with pytest.raises(ValueError, match="mono") as err:
        load_audio(mono, ambisonic=True)
    assert "voice.mov" in str(err.value)
