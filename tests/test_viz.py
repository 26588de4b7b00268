"""Heatmaps, overlays and atomic PNG / MP4 writing (sphsal/viz.py)."""

import av
import cv2
import numpy as np
import pytest
import torch

from sphsal.viz import heatmap, overlay, write_png, write_video


def test_heatmap_and_overlay():
    m = torch.zeros(1, 1, 4, 6)
    m[..., 1, 2] = 3.0
    pic = heatmap(m)
    assert pic.shape == (4, 6, 3) and pic.dtype == np.uint8
    assert pic[1, 2, 0] > 100 and pic[1, 2, 2] < 50  # the peak is red (RGB order)
    assert pic[0, 0, 2] > 100 and pic[0, 0, 0] < 50  # zero is blue
    frame = np.full((8, 12, 3), 100, np.uint8)
    assert np.array_equal(overlay(frame, np.zeros((4, 6))), frame)  # nothing salient: the frame
    for alpha in (1.5, -1.0):  # the blend wrapped around in uint8 (200 grey became 92, 156, 156)
        with pytest.raises(ValueError, match="alpha must be"):
            overlay(frame, np.ones((4, 6)), alpha=alpha)
    with pytest.raises(ValueError, match="saliency contains NaN"):
        heatmap(np.full((2, 2), np.nan))


def test_write_png_colours_and_bad_images(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 255  # red
    write_png(tmp_path / "rgb.png", rgb)
    assert cv2.imread(str(tmp_path / "rgb.png"))[0, 0].tolist() == [0, 0, 255]  # BGR on disk
    write_png(tmp_path / "grey.png", np.full((2, 3), 7, np.uint8))
    assert cv2.imread(str(tmp_path / "grey.png"), cv2.IMREAD_UNCHANGED).tolist() == [[7] * 3] * 2
    # a float image failed inside OpenCV's cvtColor, a bool one inside imwrite
    for bad in (np.random.rand(2, 3, 3), np.zeros((2, 3), bool), np.zeros((2, 3, 4), np.uint8)):
        with pytest.raises(ValueError, match=r"image must be an \(H, W, 3\) uint8 RGB image"):
            write_png(tmp_path / "bad.png", bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.png", "rgb.png"]


def test_write_video_with_ambisonic_audio(tmp_path):
    frames = [np.full((31, 63, 3), 10 * k, np.uint8) for k in range(20)]  # odd sizes are padded
    t = np.arange(32000) / 16000
    audio = np.stack([0.5 * np.sin(2 * np.pi * 440 * t)] * 4).astype(np.float32)
    assert write_video(tmp_path / "v.mp4", frames, 10, audio, 16000) == 20
    with av.open(str(tmp_path / "v.mp4")) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert (video.frames, video.width, video.height, video.average_rate) == (20, 64, 32, 10)
        assert sound.codec_context.channels == 4 and sound.rate == 16000
        assert float(sound.duration * sound.time_base) == pytest.approx(2.0, abs=0.1)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_write_video_cuts_audio_longer_than_its_frames(tmp_path):
    """An overlay of a video whose audio outlasts its frames lasted as long as the audio (the last frame
    held): the audio now ends with the video."""
    frames = [np.zeros((16, 32, 3), np.uint8)] * 10  # 1 s at 10 fps
    audio = np.full((1, 48000), 0.1, np.float32)  # 3 s
    write_video(tmp_path / "v.mp4", frames, 10, audio, 16000)
    with av.open(str(tmp_path / "v.mp4")) as container:
        sound = container.streams.audio[0]
        decoded = sum(frame.samples for frame in container.decode(sound))
        assert float(sound.duration * sound.time_base) == pytest.approx(1.0, abs=0.1)
    assert 16000 <= decoded <= 16000 + 2048  # AAC pads to whole 1024-sample frames (+ priming)


def test_write_video_refuses_bad_input(tmp_path):
    frame = np.zeros((8, 8, 3), np.uint8)
    cases = [
        # fps 0 wrote a 24 fps video; NaN and inf failed inside fractions.Fraction
        (dict(frames=[frame], fps=0), "fps must be a finite number > 0"),
        (dict(frames=[frame], fps=float("nan")), "fps must be a finite number > 0"),
        # a frame of another size was rescaled to the first one's without a word
        (dict(frames=[frame, np.zeros((4, 4, 3), np.uint8)], fps=10),
         r"frames\[1\] is \(4, 4, 3\), but frames\[0\] is \(8, 8, 3\)"),
        # PyAV's dtype error and a NumPy broadcasting error named no frame
        (dict(frames=[frame, frame.astype(np.float32)], fps=10),
         r"frames\[1\] must be an \(H, W, 3\) uint8 RGB image, got \(8, 8, 3\) float32"),
        (dict(frames=[frame[..., 0]], fps=10), r"frames\[0\] must be an \(H, W, 3\) uint8 RGB image"),
        (dict(frames=[frame], fps=10, audio=np.zeros(100, np.float32), sample_rate=16000),
         r"audio must be \(channels, samples\), got shape \(100,\)"),
        (dict(frames=[frame], fps=10, audio=np.full((1, 100), np.nan, np.float32), sample_rate=16000),
         "audio contains NaN"),
        (dict(frames=[frame], fps=10, audio=np.zeros((1, 100), np.float32), sample_rate=-8),
         "sample_rate must be an integer >= 1"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            write_video(tmp_path / "v.mp4", **kwargs)
    assert list(tmp_path.iterdir()) == []
