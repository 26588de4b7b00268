"""``sphsal predict``: the video each output folder was made from, folders given as VIDEO, and --no-aem
for a model that is built on the audio energy map."""

import os

import numpy as np

from sphsal.cli import main
from sphsal.viz import write_video


def _video(path, seed):
    """A 2-frame first-order ambisonic mp4 of random frames (``seed``)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    audio = (0.1 * rng.standard_normal((4, 4000))).astype(np.float32)
    frames = [(rng.random((32, 64, 3)) * 255).astype(np.uint8) for _ in range(2)]
    write_video(str(path), frames, 8, audio=audio, sample_rate=16000)
    return str(path)


def _predict(video, out, *more):
    return main(["predict", video, "--model", "aem_ecb", "--model-arg", "output_size=[16, 32]", "--out", out,
                 "--no-overlay", "--quiet", *more])


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_a_video_of_the_same_name_is_redone_only_with_overwrite_and_reported_by_its_path(tmp_path, capsys,
                                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, other = _video("vid/amb.mp4", 0), _video("vid2/amb.mp4", 1)
    assert _predict(first, "pr") == 0
    assert capsys.readouterr().out == "vid/amb.mp4: 2 frames\n"
    assert _predict(other, "pr") == 2  # was "vid/amb.mp4: skipped (already done)"
    line = _error_line(capsys)
    assert line.startswith("sphsal predict: error: ") and "from another video file" in line
    assert "'vid/amb.mp4' as recorded" in line and "--overwrite" in line
    assert _predict(other, "pr", "--overwrite") == 0
    assert capsys.readouterr().out == "vid2/amb.mp4: 2 frames\n"
    assert _predict(os.path.abspath(other), "pr") == 0
    assert capsys.readouterr().out == f"{os.path.abspath(other)}: skipped (already done)\n"


def test_a_folder_given_as_video_is_named_as_the_video_argument(tmp_path, capsys):
    folder = tmp_path / "vid"
    folder.mkdir()
    code = main(["predict", str(folder), "--model", "planar_unet", "--out", str(tmp_path / "pr"), "--quiet"])
    assert code == 2
    line = _error_line(capsys)
    assert f"video argument {folder} is a folder, not a video file" in line and "audio file" not in line


def test_no_aem_for_the_aem_prior_says_it_cannot_run_without_ambisonic_audio(tmp_path, capsys):
    code = main(["predict", "v.mp4", "--model", "aem_ecb", "--no-aem", "--out", str(tmp_path)])
    assert code == 2
    line = _error_line(capsys)
    assert "--no-aem: model 'aem_ecb' has no use_aem option" in line
    assert "cannot run without ambisonic audio" in line and "avs360" in line
    assert "reads no audio energy map" not in line and "needs no --no-aem" not in line
