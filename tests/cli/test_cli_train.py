import json

import pytest

from sphsal.cli import build_parser, main
from sphsal.data import make_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """One short synthetic video in the 360AV-HM layout."""
    root = tmp_path_factory.mktemp("cli_train") / "data"
    make_dataset(root, n_videos=1, duration=1.0, fps=4, height=16, width=32, n_viewers=2, seed=1)
    return str(root)


def train_argv(root: str, out: str, *extra: str) -> list[str]:
    """``sphsal train`` of a tiny planar U-Net (width given as a fraction) for two steps."""
    return ["train", "--model", "planar_unet", "--model-arg", "width_mult=1/16", "--model-arg",
            "frame_size=[16, 32]", "--root", root, "--dataset-arg", "cache_dir=false", "--out", out,
            "--max-steps", "2", "--ckpt-every", "1", "--log-every", "2", "--device", "cpu", "--quiet", *extra]


def test_train_refuses_an_existing_run_unless_overwrite(dataset, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(train_argv(dataset, out)) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model_kwargs"]["width_mult"] == 0.0625
    assert (config["ckpt_every"], config["log_every"], config["overwrite"]) == (1, 2, False)
    assert config["dataset_kwargs"]["split"] == "train"  # never the videos `evaluate` scores by default
    capsys.readouterr()

    assert main(train_argv(dataset, out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("sphsal train: error: ") and "last.pt" in err and "Traceback" not in err

    assert main(train_argv(dataset, out, "--overwrite")) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["overwrite"] is True
    assert "trained planar_unet: step 2" in capsys.readouterr().out


def test_augmentation_flags_reach_the_run(dataset, tmp_path, capsys):
    """The synthetic videos carry first-order ambiX: mirrored and turned clips train end to end."""
    out = tmp_path / "run"
    assert main(train_argv(dataset, str(out), "--hflip", "0.5", "--random-yaw")) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["hflip"], config["random_yaw"]) == (0.5, True)
    with pytest.raises(SystemExit):
        main(train_argv(dataset, str(tmp_path / "other"), "--hflip", "2"))
    assert "--hflip: expected a probability in [0, 1], got '2'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(train_argv(dataset, str(tmp_path / "other"), "--hflip", "-1"))
    assert "--hflip: expected a probability in [0, 1], got '-1'" in capsys.readouterr().err


def test_the_split_is_an_option_of_its_own(dataset, tmp_path, capsys):
    assert main(train_argv(dataset, str(tmp_path / "run"), "--dataset-arg", "split=test")) == 2
    assert "--dataset-arg split: give it as --split instead" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_run_that_fails_its_checks_writes_nothing(dataset, tmp_path, capsys):
    """Options the dataset items check only when built fail before the run folder is touched: an
    overwritten run keeps its config.json and log.csv, a new one creates no folder."""
    out = tmp_path / "run"
    assert main(train_argv(dataset, str(out))) == 0
    before = {name: (out / name).read_bytes() for name in ("config.json", "log.csv", "last.pt")}
    bad = ("--dataset-arg", "sigma_deg=-1")
    assert main(train_argv(dataset, str(out), "--overwrite", *bad)) == 2
    assert "sigma_deg must be a finite number > 0" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in before} == before
    assert main(train_argv(dataset, str(tmp_path / "new"), *bad)) == 2
    assert not (tmp_path / "new").exists()
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:  # a missing optional dependency: its one-line error, nothing written
        assert main(train_argv(dataset, str(tmp_path / "tb"), "--tensorboard")) == 2
        assert "TensorBoard logging needs: pip install" in capsys.readouterr().err
        assert not (tmp_path / "tb").exists()


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    import sphsal.cli.models as models_cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(models_cli, "run", interrupted)
    assert main(["models"]) == 130
    assert capsys.readouterr().err.startswith("sphsal models: interrupted")


def test_models_lists_the_audio_each_needs_and_its_recipe(monkeypatch, capsys):
    import sphsal.models

    monkeypatch.setattr(sphsal.models, "list_models", lambda: ["aem_ecb", "planar_unet", "stavis_visual"])
    assert main(["models", "--recipe"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("aem_ecb") and lines[0].endswith("ambiX audio")
    assert lines[2].endswith("no audio, reads its map of 5 frame(s) earlier")
    assert lines[3].strip() == "loss sphere_sse, sgd lr 0.0001, momentum 0.9, weight_decay 1e-05"
    assert lines[5].strip().endswith("1e-05 (lr_scales: 9 patterns of parameters at other rates)")


def test_an_untrained_model_is_the_same_in_every_run():
    """evaluate / predict without --weights build the model from seed 0 (predict refused its second run
    into the same folder: other weights), and leave the caller's random state alone."""
    import argparse

    import torch

    from sphsal.cli.evaluate import load_model

    args = argparse.Namespace(model="planar_unet", model_arg=["width_mult=1/16"], weights=None,
                              original_weights=None)
    state = torch.random.get_rng_state()
    first, second = load_model(args).state_dict(), load_model(args).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_weights_bring_the_options_they_were_trained_with(tmp_path):
    """evaluate / predict with --weights of a run trained with --model-arg options failed unless the same
    options were given again ("its model options differ"); explicit ones still override them."""
    import argparse
    import warnings

    import torch

    from sphsal.cli.evaluate import load_model
    from sphsal.models import create_model
    from sphsal.models.checkpoints import save_checkpoint

    trained = create_model("planar_unet", width_mult=1 / 16, frame_size=(32, 64))
    save_checkpoint(tmp_path / "run.pt", trained)
    args = argparse.Namespace(model="planar_unet", model_arg=None, weights=str(tmp_path / "run.pt"),
                              original_weights=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = load_model(args)
    assert model.frame_size == (32, 64)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.warns(UserWarning, match="frame_size"):  # the weights fit; the options differ, as asked
        assert load_model(args, {"frame_size": [64, 128]}).frame_size == (64, 128)


def test_sigterm_runs_the_clean_up(monkeypatch):
    """`kill` / `timeout` end a command as SystemExit(143) with its finally blocks run (make_dataset's
    staging folder was left behind), and the previous SIGTERM handler is restored."""
    import os
    import signal

    import sphsal.cli.models as models_cli

    cleaned = []

    def killed(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            cleaned.append(True)

    monkeypatch.setattr(models_cli, "run", killed)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exit_info:
        main(["models"])
    assert exit_info.value.code == 143 and cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is before


def test_conflicting_or_empty_requests_are_refused(dataset, tmp_path, capsys):
    from sphsal.engine.train import LR_SCHEDULES

    out = str(tmp_path / "run")
    assert main(train_argv(dataset, out, "--resume", "--overwrite")) == 2
    assert "give one of them" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(train_argv(dataset, out, "--lr-schedule", "linear"))
    assert "invalid choice: 'linear'" in capsys.readouterr().err
    train_parser = build_parser(only="train")._subparsers._group_actions[0].choices["train"]
    [schedule] = [a for a in train_parser._actions if a.dest == "lr_schedule"]
    assert tuple(schedule.choices) == LR_SCHEDULES  # the CLI's literal list, kept equal to the engine's
    assert main(["predict", "v.mp4", "--model", "aem_ecb", "--no-png", "--no-overlay", "--out", out]) == 2
    assert "leave nothing to write" in capsys.readouterr().err
    # one epoch of one video is fewer steps than --max-steps 5: said, not silent
    argv = [a if a != "2" else "5" for a in train_argv(dataset, out)]
    assert main(argv) == 0
    assert "ended before --max-steps 5" in capsys.readouterr().out


def test_only_the_main_process_reports(dataset, tmp_path, capsys, monkeypatch):
    """Under torchrun every rank runs the command; rank 0 alone prints the summary."""
    import sphsal.engine.train as engine_train

    def other_rank(config, resume=False):
        return {"step": 2, "epoch": 0, "loss": 0.5, "checkpoint": "last.pt", "model": None, "main": False}

    monkeypatch.setattr(engine_train, "train", other_rank)
    assert main(train_argv(dataset, str(tmp_path / "run"))) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("argv, hint", [
    (["models"], None),
    (["evaluate", "--model", "aem_ecb", "--root", "r"], None),
    (["train", "--model", "aem_ecb", "--root", "r"],
     "; `sphsal train --resume` continues the run from its last checkpoint)"),
    (["predict", "v.mp4", "--model", "aem_ecb"], "; running it again without --overwrite skips the videos "
                                                 "already finished)"),
])
def test_ctrl_c_says_what_continues_that_command(argv, hint, monkeypatch, capsys, tmp_path):
    """Every command said "`sphsal train --resume` continues a run", also predict and evaluate."""
    import importlib

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(f"sphsal.cli.{argv[0]}"), "run", interrupted)
    out = [] if argv[0] == "models" else ["--out", str(tmp_path / "out")]
    assert main([*argv, *out]) == 130
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"sphsal {argv[0]}: interrupted (every file written is complete")
    assert line.endswith(hint or "complete)"), line


def test_a_diverging_run_is_one_line_with_the_step_and_advice(dataset, tmp_path, capsys):
    """A learning rate of 1e20 made the loss refuse a NaN prediction (no step, no advice), and the
    engine's own FloatingPointError ended in a traceback."""
    argv = ["train", "--model", "spherical_unet", "--model-arg", "width_mult=1/16", "--model-arg",
            "frame_size=[16, 32]", "--root", dataset, "--dataset-arg", "cache_dir=false",
            "--out", str(tmp_path / "run"), "--epochs", "3", "--max-steps", "6", "--device", "cpu", "--quiet",
            "--lr", "1e20"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip() == ("sphsal train: error: the model's prediction became non-finite (NaN or inf) at "
                           "step 2; lower the learning rate or check the data")


def test_a_model_without_trainable_parameters_is_refused_before_anything_is_written(dataset, tmp_path,
                                                                                     capsys):
    """aem_ecb (a fixed audio energy map) failed with torch's "optimizer got an empty parameter list"."""
    out = tmp_path / "run"
    assert main(["train", "--model", "aem_ecb", "--root", dataset, "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == ("sphsal train: error: model 'aem_ecb' has no trainable "
                                               "parameters: there is nothing to train")
    assert not out.exists()
