"""`sphsal demo` end to end on a tiny configuration (the numbers of a quick run mean nothing; the
full demo's figures are in README.md)."""

import json
import shutil

import pytest

from sphsal.cli import main
from sphsal.engine.demo import demo_model_options, run_demo

TINY = {
    "avs360_visual": {"width_mult": 1 / 16, "clip_len": 2, "frame_size": (64, 128), "face_size": 32},
    "vinet": {"width_mult": 1 / 16, "clip_len": 8, "frame_size": (64, 128)},
}


def test_quick_demo_trains_evaluates_and_writes_its_outputs(tmp_path):
    lines = []
    report = run_demo(str(tmp_path), models=tuple(TINY), quick=True, progress=False, model_options=TINY,
                      train_options={"batch_size": 8}, log=lines.append)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["results"].keys() == {"avs360_visual", "vinet", "aem_ecb"}
    for result in saved["results"].values():
        assert result["n_frames"] > 0
        assert -1 <= result["mean"]["cc"] <= 1 and result["mean"]["kld"] >= 0
    assert saved["model_options"]["vinet"]["frame_size"] == [64, 128]
    test_videos, train_videos = set(saved["data"]["test_videos"]), set(saved["data"]["train_videos"])
    assert test_videos and train_videos and not test_videos & train_videos
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "overlay.mp4").stat().st_size > 0
    assert report["results"] == saved["results"]
    assert any("reduced vinet configuration" in line for line in lines)
    assert any(line.startswith("model") and "cc" in line for line in lines)  # the printed table
    again = run_demo(str(tmp_path), models=("vinet",), quick=True, progress=False, model_options=TINY,
                     train_options={"batch_size": 8}, log=lines.append)  # a rerun into the same folder
    assert again["results"].keys() == {"vinet", "aem_ecb"}


def test_an_interrupted_copy_of_the_overlay_keeps_the_previous_one(tmp_path, monkeypatch):
    (tmp_path / "overlay.mp4").write_bytes(b"the overlay of an earlier run")

    def torn_copy(src, dst):
        with open(dst, "wb") as f:
            f.write(b"half a vid")
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copyfile", torn_copy)
    with pytest.raises(OSError, match="disk full"):
        run_demo(str(tmp_path), models=("vinet",), quick=True, progress=False, model_options=TINY,
                 train_options={"batch_size": 8}, log=lambda line: None)
    assert (tmp_path / "overlay.mp4").read_bytes() == b"the overlay of an earlier run"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".overlay")]


def test_every_family_has_demo_options_and_unknown_models_are_errors(tmp_path):
    assert demo_model_options("avs360_visual") == demo_model_options("avs360")
    assert demo_model_options("vinet_sph") == demo_model_options("vinet")
    with pytest.raises(ValueError, match="registered trainable models.*nope"):
        run_demo(str(tmp_path), models=("nope",), progress=False)
    with pytest.raises(ValueError, match="aem_ecb"):
        run_demo(str(tmp_path), models=("aem_ecb",), progress=False)
    assert main(["demo", "--models", "nope", "--out", str(tmp_path)]) != 0


def test_demo_avs360_uses_the_output_aem_and_its_visual_ablation_ignores_it():
    from sphsal.models import create_model

    full = create_model("avs360", **demo_model_options("avs360"))
    visual = create_model("avs360_visual", **demo_model_options("avs360_visual"))
    assert full.output_aem and full.input_spec.output_size == (16, 32)
    assert not visual.output_aem and visual.input_spec.output_size == full.input_spec.output_size


def test_demo_data_folder_is_reused_or_replaced_but_a_user_folder_is_never_deleted(tmp_path):
    from sphsal.engine.demo import _make_data

    tiny = {"n_videos": 1, "duration": 0.5, "fps": 4, "height": 16, "width": 32, "n_objects": 2,
            "n_viewers": 1}
    (tmp_path / "data" / "mystuff").mkdir(parents=True)
    (tmp_path / "data" / "mystuff" / "thesis.txt").write_text("precious")
    with pytest.raises(ValueError, match="data holds no synthetic.json"):
        _make_data(str(tmp_path), 0, tiny)
    assert (tmp_path / "data" / "mystuff" / "thesis.txt").read_text() == "precious"
    root = _make_data(str(tmp_path / "run"), 0, tiny)
    video = tmp_path / "run" / "data" / "videos" / "synth_000.mp4"
    first = video.stat().st_mtime_ns
    assert _make_data(str(tmp_path / "run"), 0, tiny) == root and video.stat().st_mtime_ns == first  # reused
    # an earlier version's stamp inside the data folder is moved out, not taken for a user's file
    (tmp_path / "run" / "data_params.json").rename(tmp_path / "run" / "data" / "params.json")
    assert _make_data(str(tmp_path / "run"), 0, tiny) == root and video.stat().st_mtime_ns == first
    assert not (tmp_path / "run" / "data" / "params.json").exists()
    stamp = json.loads((tmp_path / "run" / "data_params.json").read_text())
    (tmp_path / "run" / "data_params.json").write_text(json.dumps({**stamp, "generator": 1}))
    _make_data(str(tmp_path / "run"), 0, tiny)  # data of an earlier generator version: regenerated
    assert video.stat().st_mtime_ns != first
    _make_data(str(tmp_path / "run"), 1, tiny)  # other parameters: the synthetic folder is replaced
    assert json.loads((tmp_path / "run" / "data" / "synthetic.json").read_text())["seed"] == 1
