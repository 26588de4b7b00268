import os
import re

import av
import numpy as np
import pytest

from sphsal.cli import main
from sphsal.data import make_video
from sphsal.viz import write_video


def test_aem_renders_video_with_audio_and_still(tmp_path, capsys):
    video = str(tmp_path / "foa.mp4")
    scene = make_video(video, duration=1.0, fps=8, height=32, width=64, seed=2)
    assert main(["aem", video, "--out", str(tmp_path / "aem.mp4"), "--map-size", "16x32"]) == 0
    assert os.path.exists(tmp_path / "aem.png")
    with av.open(str(tmp_path / "aem.mp4")) as c:
        assert c.streams.video[0].frames == 8
        assert c.streams.audio[0].codec_context.channels == 4
    assert scene is not None and "aem.png" in capsys.readouterr().out
    assert main(["aem", video, "--out", str(tmp_path / "aem.avi")]) == 2  # an MP4 under another name
    assert "--out must name an .mp4 file" in capsys.readouterr().err and not (tmp_path / "aem.avi").exists()


def test_aem_map_of_one_row_or_column(tmp_path):
    """--map-size 1x4: a map of one row is still a map (viz squeezed it to a vector and refused it)."""
    video = str(tmp_path / "foa.mp4")
    make_video(video, duration=0.5, fps=8, height=32, width=64, seed=2)
    for size in ("1x4", "2x1"):
        assert main(["aem", video, "--out", str(tmp_path / f"aem{size}.mp4"), "--map-size", size]) == 0


def test_aem_stereo_video_is_a_clear_error(tmp_path, capsys):
    video = str(tmp_path / "stereo.mp4")
    frames = [np.zeros((16, 32, 3), np.uint8)] * 4
    write_video(video, frames, 8, audio=np.zeros((2, 8000), np.float32), sample_rate=16000)
    assert main(["aem", video, "--out", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err
    assert "stereo" in err and "stereo.mp4" in err and "--allow-non-ambisonic renders a uniform map" in err
    assert main(["aem", video, "--out", str(tmp_path / "x.mp4"), "--allow-non-ambisonic"]) == 0
    err = capsys.readouterr().err  # the warning is one line naming the command, not a source line
    assert re.search(r"^sphsal aem: warning: audio file '.*stereo\.mp4': the audio is stereo", err, re.M)
    assert "UserWarning" not in err


def test_aem_missing_file(tmp_path, capsys):
    assert main(["aem", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "none.mp4" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_top_level_flags(flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main([flag])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "sphsal" in out


def test_aem_window_longer_than_the_audio_is_refused(tmp_path, capsys):
    video = str(tmp_path / "foa.mp4")
    make_video(video, duration=0.5, fps=8, height=32, width=64, seed=2)
    for window in ("1e300", "2"):
        assert main(["aem", video, "--out", str(tmp_path / "x.mp4"), "--window", window]) == 2
        assert "is longer than the audio of" in capsys.readouterr().err
