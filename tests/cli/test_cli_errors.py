"""User errors on the command line: one ``sphsal CMD: error: ...`` line and exit code 2, before any work;
real bugs keep their traceback."""

import argparse

import pytest
import torch

from sphsal.cli import main
from sphsal.cli.options import device, non_negative_float, parse_key_values, positive_float, positive_int


def run_error(argv, capsys) -> str:
    """Run ``argv``; it must fail with exit code 2 (returned or by argparse) and print one error line and
    no traceback. Returns that line."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse: usage line(s), then the error line
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"sphsal {argv[0]}: error: "), err
    return line


def test_key_values_parse_fractions_and_name_the_flag():
    values = parse_key_values(["width_mult=1/16", "n=-3/4", "view=both", "size=[16, 32]", "on=true",
                               "frame_size=32x64"], "--m")
    assert values == {"width_mult": 0.0625, "n": -0.75, "view": "both", "size": [16, 32], "on": True,
                      "frame_size": [32, 64]}  # HxW as --size takes it
    with pytest.raises(ValueError, match=r"--m x: division by zero in '1/0'"):
        parse_key_values(["x=1/0"], "--m")
    with pytest.raises(ValueError, match="--m expects KEY=VALUE"):
        parse_key_values(["x"], "--m")


@pytest.mark.parametrize(("kind", "text"), [(positive_int, "0"), (positive_int, "-5"), (positive_int, "1.5"),
                                            (positive_float, "0"), (positive_float, "inf"),
                                            (positive_float, "nan"), (non_negative_float, "-1")])
def test_number_types_refuse_out_of_range_values(kind, text):
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
        kind(text)


def test_number_types_accept_valid_values():
    assert positive_int("3") == 3 and positive_float("0.5") == 0.5 and non_negative_float("0") == 0.0


def test_device_type_checks_the_name_and_cuda(monkeypatch):
    assert device("cpu") == "cpu"
    with pytest.raises(argparse.ArgumentTypeError, match="'banana' is not a torch device"):
        device("banana")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(argparse.ArgumentTypeError, match="CUDA is not available"):
        device("cuda")


def test_an_unknown_option_is_reported_by_its_command(capsys):
    """argparse's top-level parser reported it as "sphsal: error:" with the top-level usage only."""
    line = run_error(["synth", "--out", "ds"], capsys)
    assert line == "sphsal synth: error: unrecognized arguments: --out"


@pytest.mark.parametrize("argv", [
    ["predict", "v.mp4", "--model", "aem_ecb", "--device", "banana"],
    ["predict", "v.mp4", "--model", "aem_ecb", "--batch-size", "0"],
    ["predict", "v.mp4", "--model", "aem_ecb", "--fps", "-3"],
    ["evaluate", "--model", "aem_ecb", "--root", "r", "--frame-step", "0"],
    ["aem", "v.mp4", "--max-height", "0"],
    ["aem", "v.mp4", "--max-height", "-5"],
    ["train", "--model", "aem_ecb", "--root", "r", "--ckpt-every", "0"],
    ["train", "--model", "aem_ecb", "--root", "r", "--log-every", "-1"],
    ["train", "--model", "aem_ecb", "--root", "r", "--epochs", "0"],
    ["train", "--model", "aem_ecb", "--root", "r", "--workers", "-1"],
    ["synth", "root", "--videos", "0"],
])
def test_bad_numbers_and_devices_stop_at_parsing(argv, tmp_path, capsys):
    out = ["--out", str(tmp_path / "out")] if argv[0] != "synth" else []
    line = run_error([*argv, *out], capsys)
    assert "argument --" in line


def test_cuda_without_cuda_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = run_error(["predict", "v.mp4", "--model", "aem_ecb", "--device", "cuda", "--out", str(tmp_path)],
                     capsys)
    assert "argument --device" in line and "CUDA is not available" in line


def test_output_paths_are_checked_before_any_work(tmp_path, capsys):
    existing_file = tmp_path / "v.mp4"
    existing_file.write_bytes(b"not a video")
    folder = str(tmp_path)
    line = run_error(["aem", str(existing_file), "--out", folder], capsys)
    assert f"argument --out: {folder!r} is an existing folder" in line
    line = run_error(["predict", str(existing_file), "--model", "aem_ecb", "--out", str(existing_file)],
                     capsys)
    assert f"argument --out: {str(existing_file)!r} is an existing file" in line
    # evaluate refuses before building the model or reading the (missing) dataset
    line = run_error(["evaluate", "--model", "aem_ecb", "--root", str(tmp_path / "none"), "--out",
                      str(existing_file)], capsys)
    assert "is an existing file; expected a folder" in line
    line = run_error(["synth", str(existing_file)], capsys)
    assert "argument root" in line and "existing file" in line
    line = run_error(["train", "--model", "aem_ecb", "--root", "r", "--out", str(existing_file / "run")],
                     capsys)
    assert f"{str(existing_file)!r} is a file, not a folder" in line


def test_aem_refuses_to_write_over_its_input(tmp_path, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"input")
    line = run_error(["aem", str(video), "--out", str(video)], capsys)
    assert "is the input file" in line and video.read_bytes() == b"input"
    (tmp_path / "w.png").mkdir()
    line = run_error(["aem", str(video), "--out", str(tmp_path / "w.mp4")], capsys)
    assert "PNG still" in line and "existing folder" in line
    line = run_error(["aem", str(video), "--out", str(tmp_path / "v.png")], capsys)  # the still's own name
    assert "--out must name an .mp4 file" in line  # so the still beside it can never be --out itself
    assert not (tmp_path / "v.png").exists()


def test_project_refuses_to_write_over_its_input(tmp_path, capsys):
    image = tmp_path / "a.png"
    assert main(["project", "--to", "cubemap", "--out", str(image)]) == 0
    before = image.read_bytes()
    line = run_error(["project", str(image), "--to", "viewport", "--size", "16x16", "--out", str(image)],
                     capsys)
    assert "--out" in line and "is the input file" in line
    line = run_error(["project", str(image), "--to", "healpix", "--nside", "4", "--out",
                      str(tmp_path / "a.npy")], capsys)
    assert "the PNG preview beside --out" in line and "is the input file" in line
    assert image.read_bytes() == before and not (tmp_path / "a.npy").exists()


def test_unknown_model_option_is_named(tmp_path, capsys):
    line = run_error(["predict", "v.mp4", "--model", "aem_ecb", "--model-arg", "bogus=1", "--out",
                      str(tmp_path)], capsys)
    assert "aem_ecb: unknown option bogus; it takes aem_decoder" in line
    line = run_error(["predict", "v.mp4", "--model", "avs360", "--model-arg", "width_mult=abc", "--out",
                      str(tmp_path)], capsys)
    assert "option width_mult expects a finite number" in line


def test_no_aem_needs_a_model_with_an_aem(tmp_path, capsys):
    line = run_error(["predict", "v.mp4", "--model", "vinet", "--no-aem", "--out", str(tmp_path)], capsys)
    assert "--no-aem: model 'vinet' reads no audio energy map" in line and "avs360" in line
    line = run_error(["predict", "v.mp4", "--model", "avs360", "--no-aem", "--model-arg", "use_aem=true",
                      "--out", str(tmp_path)], capsys)
    assert "--no-aem conflicts with --model-arg use_aem=True" in line


def test_unknown_dataset_option_is_named_before_the_model_is_built(tmp_path, capsys):
    line = run_error(["evaluate", "--model", "aem_ecb", "--root", str(tmp_path), "--dataset-arg", "bogus=1",
                      "--out", str(tmp_path / "ev")], capsys)
    assert "--dataset-arg: dataset '360av-hm' has no option bogus" in line
    assert "clip_len" in line and "condition" in line  # the ClipDataset's and the adapter's own options


@pytest.mark.parametrize("error", [IsADirectoryError(21, "Is a directory", "/tmp/x.tmp", None, "/tmp/x"),
                                   NotADirectoryError(20, "Not a directory", "/tmp/f/v"),
                                   FileExistsError(17, "File exists", "/tmp/e"),
                                   PermissionError(13, "Permission denied", "/tmp/p")])
def test_path_errors_are_one_line_naming_the_path(error, tmp_path, capsys, monkeypatch):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr("sphsal.cli.aem.render_aem", fail)
    line = run_error(["aem", "v.mp4", "--out", str(tmp_path / "a.mp4")], capsys)
    assert error.strerror in line and repr(error.filename) in line
    if error.filename2:
        assert repr(error.filename2) in line


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("a real bug")

    monkeypatch.setattr("sphsal.cli.aem.render_aem", fail)
    with pytest.raises(RuntimeError, match="a real bug"):
        main(["aem", "v.mp4", "--out", str(tmp_path / "a.mp4")])


def test_evaluate_metrics_are_checked_before_any_work(tmp_path, capsys):
    from sphsal.cli.evaluate import parse_metrics

    assert parse_metrics("cc, nss") == ("cc", "nss")
    assert parse_metrics(None) == ("auc_judd", "auc_borji", "nss", "cc", "kld", "sim")
    assert parse_metrics("nss,info_gain, auc_shuffled") == ("nss", "info_gain", "auc_shuffled")
    for text, shown in (("AUC", "'AUC'"), ("", "no metric given"), ("cc,bogus", "'bogus'")):
        line = run_error(["evaluate", "--model", "aem_ecb", "--root", str(tmp_path / "none"), "--out",
                          str(tmp_path / "eval"), "--metrics", text], capsys)
        assert line.startswith("sphsal evaluate: error: --metrics: ") and shown in line
    assert not (tmp_path / "eval").exists()


def test_unwritable_output_folders_are_found_before_any_work(tmp_path, monkeypatch, capsys):
    """An --out folder (or a file's folder) this process may not write into is refused while the command
    line is parsed (evaluate found it only after scoring); faked, as root may write anywhere."""
    import os

    from sphsal.cli.options import output_dir, output_file

    writable = {str(tmp_path / "ok")}
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) in writable)
    (tmp_path / "ok").mkdir()
    (tmp_path / "locked").mkdir()
    assert output_dir(str(tmp_path / "ok")) == str(tmp_path / "ok")
    assert output_file(str(tmp_path / "ok" / "new" / "x.json")) == str(tmp_path / "ok" / "new" / "x.json")
    line = run_error(["evaluate", "--model", "aem_ecb", "--root", "r", "--out", str(tmp_path / "locked")],
                     capsys)
    assert f"no write permission in {str(tmp_path / 'locked')!r}" in line
    line = run_error(["aem", "v.mp4", "--out", str(tmp_path / "locked" / "sub" / "x.mp4")], capsys)
    assert f"no write permission in {str(tmp_path / 'locked')!r}" in line


def test_the_cli_metrics_are_the_library_metrics():
    from sphsal.cli.evaluate import CLI_DEFAULT_METRICS, CLI_METRICS
    from sphsal.metrics import DEFAULT_METRICS, METRICS

    assert CLI_DEFAULT_METRICS == DEFAULT_METRICS and sorted(CLI_METRICS) == sorted(METRICS)
