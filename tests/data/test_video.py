import os

import numpy as np
import pytest
import torch
from data_fixtures import frame_number, write_video

from sphsal.data import VideoReader


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(str(tmp_path_factory.mktemp("video") / "clip.mp4"), 40, 20, h=32, w=64)


def test_reads_every_frame_in_order_and_shape(video):
    with VideoReader(video) as reader:
        assert len(reader) == 40 and reader.source_fps == 20 and (reader.height, reader.width) == (32, 64)
        frames = [reader.read_frame(k) for k in range(len(reader))]
    assert frames[0].shape == (3, 32, 64) and frames[0].dtype == torch.float32
    assert [frame_number(f) for f in frames] == list(range(40))
    assert 0.0 <= min(float(f.min()) for f in frames) and max(float(f.max()) for f in frames) <= 1.0


def test_random_access_matches_sequential_reads(video):
    with VideoReader(video) as seq:
        expected = seq.read_frames(range(40), dtype=torch.uint8)
    order = np.random.default_rng(0).permutation(40).tolist() + [39, 0, 20, 20, 5]
    with VideoReader(video, cache_size=1) as reader:
        got = torch.stack([reader.read_frame(k, dtype=torch.uint8) for k in order], dim=1)
    assert torch.equal(got, expected[:, order])


@pytest.mark.parametrize("fps", [10, 8, 30, 24])
def test_target_fps_takes_the_frame_covering_each_time(video, fps):
    with VideoReader(video, fps=fps) as reader:
        assert len(reader) == int(np.ceil(40 * fps / 20))
        clip = reader.read_frames(range(len(reader)))
    got = [frame_number(clip[:, k]) for k in range(clip.shape[1])]
    assert got == [int(np.floor(k * 20 / fps + 1e-9)) for k in range(len(got))]


def test_resize_uses_the_requested_size_and_area_average(video):
    with VideoReader(video) as full, VideoReader(video, size=(16, 32)) as small:
        big, little = full.read_frame(7), small.read_frame(7)
    assert little.shape == (3, 16, 32)
    pooled = torch.nn.functional.avg_pool2d(big[None], 2)[0]
    assert (pooled - little).abs().mean() < 0.02


def test_non_420_sources_take_the_generic_path(tmp_path):
    path = write_video(str(tmp_path / "444.mp4"), 6, 10, h=32, w=64, pix_fmt="yuv444p")
    with VideoReader(path, size=(16, 32)) as reader:
        assert [frame_number(reader.read_frame(k)) for k in range(6)] == list(range(6))


def test_reader_survives_pickling_for_dataloader_workers(video):
    import pickle

    reader = VideoReader(video, fps=10, size=(16, 32))
    clone = pickle.loads(pickle.dumps(reader))
    assert torch.equal(clone.read_frame(3), reader.read_frame(3))
    reader.close()
    clone.close()


def test_the_frame_cache_stays_bounded_however_long_the_video(video):
    # The reader never holds the whole video: at most ``cache_size`` decoded frames stay in memory.
    with VideoReader(video, cache_size=3) as reader:
        for k in range(len(reader)):
            reader.read_frame(k)
            assert len(reader._cache) <= 3
    with VideoReader(video, size=(16, 32)) as reader:
        assert 2 <= reader.cache_size <= 64
        assert reader.cache_size * 3 * 16 * 32 <= max(reader.cache_bytes, 2 * 3 * 16 * 32)
        reader.read_frames(range(len(reader)))
        assert len(reader._cache) <= reader.cache_size
    with pytest.raises(ValueError, match="cache_size"):
        VideoReader(video, cache_size=0)


def test_missing_file_is_named(tmp_path):
    path = str(tmp_path / "nothing.mp4")
    with pytest.raises(FileNotFoundError, match="nothing.mp4"):
        VideoReader(path)


def test_random_bytes_are_rejected_naming_the_file(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="noise.mp4"):
        VideoReader(str(path))


def test_truncated_file_is_rejected_naming_the_file(video, tmp_path):
    data = open(video, "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index ('moov') is at the end: it is lost
    with pytest.raises(ValueError, match="cut.mp4"):
        VideoReader(str(cut)).read_frame(0)


def test_truncated_faststart_file_fails_on_the_missing_frames(tmp_path):
    path = write_video(str(tmp_path / "fast.mp4"), 40, 20, faststart=True)
    data = open(path, "rb").read()
    cut = tmp_path / "fastcut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])  # index intact, media data cut off
    with pytest.raises(ValueError, match="fastcut.mp4"):
        with VideoReader(str(cut)) as reader:
            for k in range(len(reader)):
                reader.read_frame(k)


def test_project_refuses_a_truncated_video_and_odd_frame_sizes(tmp_path, capsys):
    """`sphsal project` on a faststart file cut short: an error naming the file, no output (it wrote
    the frames it could read and reported success)."""
    from sphsal.cli import main

    data = open(write_video(str(tmp_path / "fast.mp4"), 40, 20, faststart=True), "rb").read()
    cut = tmp_path / "fastcut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["project", str(cut), "--to", "cubemap", "--out", str(tmp_path / "c.mp4"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "fastcut.mp4" in err and "of the 40 frames it declares" in err
    assert not (tmp_path / "c.mp4").exists()
    assert main(["project", str(tmp_path / "fast.mp4"), "--to", "cubemap", "--out", str(tmp_path / "c.mp4"),
                 "--quiet"]) == 0
    # odd frame sizes: refused (the encoder cut 51x100 to 50x100 and the command reported success)
    assert main(["project", str(tmp_path / "fast.mp4"), "--to", "viewport", "--size", "51x100", "--out",
                 str(tmp_path / "v.mp4"), "--quiet"]) == 2
    assert "51x100 pixels: an MP4 needs even sizes" in capsys.readouterr().err
    assert not (tmp_path / "v.mp4").exists()


def test_bad_arguments(video):
    with pytest.raises(ValueError, match="size"):
        VideoReader(video, size=(0, 4))
    with VideoReader(video) as reader, pytest.raises(IndexError, match="out of range"):
        reader.read_frame(40)
    assert os.path.isfile(video)


@pytest.mark.parametrize("video_start", [0.0, 0.5])
def test_matroska_video_shorter_than_its_audio_counts_its_own_frames(tmp_path, video_start):
    """A Matroska video stream declares no frame count or duration, only a DURATION tag (the end of its
    last frame); the container's duration is the audio's 2 s. The reader counted 20 frames and failed
    on frame 10."""
    from fractions import Fraction

    import av

    path = str(tmp_path / "v.mkv")
    with av.open(path, "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt, video.time_base = 64, 32, "yuv420p", Fraction(1, 10)
        audio = container.add_stream("pcm_s16le", rate=8000)
        audio.layout, audio.time_base = "mono", Fraction(1, 8000)
        for k in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((32, 64, 3), 20 * k, np.uint8), format="rgb24")
            frame.pts = k + round(video_start * 10)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        for s0 in range(0, 16000, 1000):
            sound = av.AudioFrame.from_ndarray(np.zeros((1, 1000), np.int16), format="s16", layout="mono")
            sound.sample_rate, sound.pts = 8000, s0
            container.mux(audio.encode(sound))
        container.mux(audio.encode())
    with VideoReader(path) as reader:
        assert (reader.source_frames, len(reader)) == (10, 10)
        assert abs(float(reader.read_frame(9).mean()) - 180 / 255) < 0.05


def test_sizes_are_parsed_or_refused_by_name():
    from sphsal.data.video import parse_size

    assert parse_size(np.int64(32)) == (32, 64) and parse_size([np.int32(8), 16.0]) == (8, 16)
    for bad in (True, (True, 2), (0, 4), (2.5, 4), "64", (1, 2, 3), 3.0):  # True was (1, 2)
        with pytest.raises(ValueError, match="size must be"):
            parse_size(bad)
