"""Video edge cases: a variable-frame-rate video whose last frame lasts long, an MKV whose audio
outlasts its video (``sphsal project``), and prediction overlays across the +-180 deg seam."""

from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from torch import nn

from sphsal.data import VideoReader
from sphsal.models.registry import InputSpec


def _frame(k: int, h: int = 32, w: int = 64) -> np.ndarray:
    """A frame whose grey level tells its index ``k``."""
    return np.full((h, w, 3), 20 * (k % 12) + 10, dtype=np.uint8)


def _long_last_frame(path, fmt, n=10, last=10):
    """``n`` frames at 10 fps; the last one lasts ``last`` frame periods (a still at the end, as screen
    recordings and phone videos have): the declared frames at the average rate outnumber the frames."""
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.options = {"x264-params": "bframes=0:keyint=4", "crf": "10"}
        packets = []
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(_frame(k), format="rgb24")
            frame.pts = k
            packets += s.encode(frame)
        packets += s.encode(None)
        for p in packets:
            if p.pts == n - 1:
                p.duration = last
            c.mux(p)
    return str(path)


def _grey(x: torch.Tensor) -> int:
    """The frame index of a ``(3, H, W)`` uint8 frame written by :func:`_frame`."""
    return round((float(x.float().mean()) - 10) / 20)


@pytest.mark.parametrize("fmt, suffix", [("mp4", ".mp4"), ("matroska", ".mkv")])
def test_a_long_last_frame_is_read_not_called_truncated(tmp_path, fmt, suffix):
    path = _long_last_frame(tmp_path / f"still{suffix}", fmt)
    with VideoReader(path) as reader:
        # "frame 6 of video ... could not be decoded: the file is truncated or corrupt" before
        sequential = [reader.read_frame(k, dtype=torch.uint8) for k in range(len(reader))]
    assert _grey(sequential[-1]) == 9  # the final frame is still showing at the end
    assert [_grey(x) for x in sequential] == sorted(_grey(x) for x in sequential)
    with VideoReader(path, cache_size=1) as reader:  # seeks: the same frames as read in order
        for k in reversed(range(len(reader))):
            assert torch.equal(reader.read_frame(k, dtype=torch.uint8), sequential[k]), k


def test_a_truncated_long_video_still_fails(tmp_path):
    path = _long_last_frame(tmp_path / "still.mkv", "matroska", n=40, last=1)
    data = open(path, "rb").read()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.mkv"):
        with VideoReader(str(cut)) as reader:
            for k in range(len(reader)):
                reader.read_frame(k)


def test_project_reads_an_mkv_whose_audio_outlasts_the_video(tmp_path, capsys):
    """OpenCV counted the frames from the container's duration (the audio's, 0.1 s longer): 'ends after
    30 of the 33 frames it declares: the file is truncated or corrupt'."""
    from sphsal.cli import main

    path = tmp_path / "talk.mkv"
    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        a = c.add_stream("aac", rate=16000, layout="mono")
        for k in range(30):
            for p in s.encode(av.VideoFrame.from_ndarray(_frame(k % 12), format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
        for i in range(0, int(1.1 * 16000), 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, i, Fraction(1, 16000)
            for p in a.encode(frame):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
    out = tmp_path / "cube.mp4"
    assert main(["project", str(path), "--to", "cubemap", "--out", str(out), "--quiet"]) == 0, \
        capsys.readouterr().err
    with VideoReader(str(out)) as reader:
        assert len(reader) == 30 and reader.fps == 30


class _SeamPeak(nn.Module):
    """A map that is 1 in its first column (just right of the +-180 deg seam), 0 elsewhere."""

    input_spec = InputSpec(clip_len=1, frame_size=(32, 64), output_size=(8, 16))

    def prepare_inputs(self, batch):
        return {"frames": batch["frames"]}

    def forward(self, frames):
        out = torch.zeros(frames.shape[0], 1, 8, 16)
        out[..., 0] = 1.0
        return out


def test_predict_overlay_wraps_across_the_seam(tmp_path):
    """The overlay upsampled the map with cv2 (clamped at the image border), while the PNG maps wrap
    across the seam: a peak on the seam showed on one side of the overlay only."""
    from sphsal.engine.predict import predict_video
    from sphsal.viz import write_video

    video = tmp_path / "dark.mp4"
    write_video(str(video), [np.zeros((64, 128, 3), np.uint8)] * 2, 8)
    predict_video(_SeamPeak(), video, tmp_path / "out", progress=False, device="cpu")
    png = np.asarray(__import__("cv2").imread(str(tmp_path / "out" / "dark" / "maps" / "00000.png"), 0))
    assert png[:, -1].mean() > 60  # the PNG: the last column is half-way to the peak across the seam
    with VideoReader(str(tmp_path / "out" / "dark" / "overlay.mp4")) as reader:
        frame = reader.read_frame(0, dtype=torch.uint8).float()
    first, last = frame[:, :, :2].mean(), frame[:, :, -2:].mean()
    assert last > 0.5 * first > 0  # was ~0: the heat stopped at the right border
