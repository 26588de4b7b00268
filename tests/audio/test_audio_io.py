import math
import os
import struct
import subprocess
import sys

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
    layout = {1: "mono", 2: "stereo", 4: "quad", 6: "5.1", 8: "7.1"}.get(audio.shape[0],
                                                                       f"{audio.shape[0]} channels")
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


_LOAD_IN_CHILD = """
import sys
import numpy as np
from sphsal.audio.io import load_audio
for path in sys.argv[1:]:
    np.save(path + ".npy", load_audio(path, ambisonic=path.endswith(".mov"))[0])
"""


def _load_in_child(paths) -> list[np.ndarray]:
    """``load_audio`` of each path, run in a child process: files that crashed PyAV or FFmpeg (the
    process aborted) then fail the test instead of killing the test run."""
    paths = [str(p) for p in paths]
    done = subprocess.run([sys.executable, "-c", _LOAD_IN_CHILD, *paths], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"load_audio failed (exit {done.returncode}): {done.stderr[-2000:]}"
    return [np.load(p + ".npy") for p in paths]


def test_pcm_containers_with_8_or_more_channels_load_their_samples(tmp_path):
    # PyAV crashed the process (exit 139) converting planar frames of >= 8 channels.
    cases = {"hoa2.mov": 9, "hoa2.mkv": 9, "hoa3.mov": 16, "surround71.mkv": 8}
    sources = {}
    for k, (name, channels) in enumerate(cases.items()):
        rng = np.random.default_rng(k)
        sources[name] = np.round(rng.uniform(-0.5, 0.5, (channels, RATE // 4)) * 32768) / 32768
        _write_container(tmp_path / name, sources[name])
    for loaded, source in zip(_load_in_child(tmp_path / name for name in cases), sources.values()):
        np.testing.assert_array_equal(loaded, source.astype(np.float32))
    assert probe_audio(tmp_path / "hoa3.mov").num_channels == 16


def test_sa3d_head_locked_stereo_is_dropped_and_reordering_maps_load(tmp_path):
    # Google's injector writes channel_map 0..5 and sets the head-locked bit of ambisonic_type; track
    # channels mapped past the 4 ambisonic components are the stereo pair, wherever they sit. FFmpeg 8
    # aborted the process opening any SN3D file whose map is not the identity.
    ambix = _ambix_scene(seed=6) * 0.5
    stereo = np.random.default_rng(7).uniform(-0.3, 0.3, (2, ambix.shape[1]))
    components = np.concatenate([ambix, stereo])  # component c: ACN 0-3, then L, R
    paths = []
    for k, mapping in enumerate([(0, 1, 2, 3, 4, 5), (4, 5, 0, 1, 2, 3), (0, 3, 1, 2)]):
        paths.append(tmp_path / f"spatial{k}.mov")
        _write_container(paths[-1], components[list(mapping)])
        insert_sa3d(paths[-1], SpatialAudioMetadata(ambisonic_order=1, channel_map=mapping,
                                                    ambisonic_type=0x80 if len(mapping) == 6 else 0))
    for audio in _load_in_child(paths):
        np.testing.assert_allclose(audio, ambix, atol=1 / 32768)
    info = probe_audio(paths[0])  # the identity map: FFmpeg opens it in this process too
    assert (info.num_channels, info.output_channels) == (6, 4)
    # A map missing a component (N3D, which FFmpeg leaves alone) is an error naming the file.
    insert_sa3d(paths[0], SpatialAudioMetadata(ambisonic_order=1, channel_map=(0, 1, 2, 4, 5, 6),
                                               ambisonic_normalization=1))
    with pytest.raises(ValueError, match="spatial0.mov.*each of the 4 ambisonic components"):
        load_audio(paths[0])


def test_nan_samples_are_rejected_naming_the_file(tmp_path):
    b = _ambix_scene().astype(np.float32)
    b[1, 100] = np.nan
    path = tmp_path / "broken.wav"
    soundfile.write(path, b.T, RATE, subtype="FLOAT")
    for ambisonic in (False, True):
        with pytest.raises(ValueError, match="broken.wav.*NaN"):
            load_audio(path, ambisonic=ambisonic)


def test_truncated_container_audio_is_an_error_naming_both_lengths(tmp_path):
    path = tmp_path / "cut.mp4"
    _write_container(path, _ambix_scene(samples=RATE), codec="aac", options={"movflags": "faststart"})
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(container.streams.audio[0]) if p.size]
    cut = packets[len(packets) // 5]  # truncate at a packet boundary, a fifth into the media
    path.write_bytes(data[:cut.pos + cut.size])
    assert probe_audio(path).num_samples >= RATE  # the container still declares 1 s (plus codec padding)
    with pytest.raises(ValueError, match=r"cut.mp4 is shorter than its declared length: 0\.\d+ s .*"
                                         r"for 1\.\d+ s; the file is truncated"):
        load_audio(path)


def test_write_audio_errors_name_the_real_file_and_the_layout(tmp_path):
    nine = np.zeros((9, 1000), dtype=np.float32)
    with pytest.raises(ValueError, match="hoa.flac: FLAC stores at most 8 channels.*wav") as err:
        write_audio(tmp_path / "hoa.flac", nine, RATE)
    assert ".tmp" not in str(err.value)
    write_audio(tmp_path / "hoa.wav", nine, RATE)
    assert load_audio(tmp_path / "hoa.wav")[0].shape == (9, 1000)
    with pytest.raises(ValueError, match=r"frames.wav: b must be \(channels, samples\).*\(512, 4\)"):
        write_audio(tmp_path / "frames.wav", np.zeros((512, 4)), RATE)
    with pytest.raises(ValueError, match="many.wav.*at most 64 channels"):
        write_audio(tmp_path / "many.wav", np.zeros((65, 1000)), RATE)
    with pytest.raises(ValueError, match="odd.wav: subtype 'FOO'"):
        write_audio(tmp_path / "odd.wav", nine[:4], RATE, subtype="FOO")
    with pytest.raises(ValueError, match="sample_rate"):
        write_audio(tmp_path / "flag.wav", nine[:4], True)
    with pytest.raises(ValueError, match="huge.wav: cannot write audio") as err:
        write_audio(tmp_path / "huge.wav", nine[:4], 10**10)
    assert ".tmp" not in str(err.value)
    assert sorted(os.listdir(tmp_path)) == ["hoa.wav"]


def test_corrupt_chunk_offset_table_is_named(tmp_path):
    path = tmp_path / "bad.mp4"
    _write_container(path, _ambix_scene(), codec="aac", options={"movflags": "faststart"})
    data = bytearray(path.read_bytes())
    at = data.find(b"stco")
    struct.pack_into(">I", data, at + 8, 0x7FFFFFFF)  # entry count far beyond the box
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="bad.mp4: corrupt 'stco' box"):
        insert_sa3d(path, SpatialAudioMetadata.ambix(1), out=tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def _offset_container(path, video_start: float, audio_start: float, click: float, rate=8000, fps=10):
    """An MKV whose video stream starts at ``video_start`` s and PCM audio at ``audio_start`` s (container
    time), with one click at container time ``click`` s."""
    from fractions import Fraction

    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt, video.time_base = 64, 32, "yuv420p", Fraction(1, fps)
        audio = container.add_stream("pcm_s16le", rate=rate)
        audio.layout, audio.time_base = "mono", Fraction(1, rate)
        for k in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 64, 3), np.uint8), format="rgb24")
            frame.pts = k + round(video_start * fps)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        samples = np.zeros((1, 2 * rate), np.int16)
        samples[0, round((click - audio_start) * rate)] = 20000
        for s0 in range(0, samples.shape[1], 1000):
            frame = av.AudioFrame.from_ndarray(samples[:, s0:s0 + 1000], format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, s0 + round(audio_start * rate)
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return str(path)


@pytest.mark.parametrize("video_start, audio_start", [(0.5, 0.0), (0.0, 0.25)])
def test_audio_is_aligned_to_the_first_video_frame(tmp_path, video_start, audio_start):
    """Streams of one container may start at different times; aligned, the audio's sample 0 is heard
    with the video's first frame (a click at container time 0.6 s lands 0.1 s after a video start at 0.5
    s, and 0.6 s after one at 0 whatever the audio's own start)."""
    from sphsal.data.sources import AudioTrack

    path = _offset_container(tmp_path / "v.mkv", video_start, audio_start, click=0.6)
    raw, rate = load_audio(path)
    aligned, _ = load_audio(path, align_to_video=True)
    assert int(np.argmax(np.abs(raw[0]))) == round((0.6 - audio_start) * rate)  # counted from its own start
    assert int(np.argmax(np.abs(aligned[0]))) == round((0.6 - video_start) * rate)
    assert np.array_equal(AudioTrack(path, 1, 10).load()[0], aligned)  # what the datasets read
