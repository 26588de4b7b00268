"""A bad option of a benchmark script stops it while its command line is parsed: one argparse error that
names the option (exit code 2), no traceback, and nothing benchmarked. The scripts' ``main(argv)`` run in
this process (each exits while parsing); one command goes through ``sphsal bench`` (a subprocess) to show
that the error and its exit code reach the user."""

import importlib
import os

import pytest

from sphsal.cli import main
from sphsal.cli.bench import available, benchmark_dir
from sphsal.cli.options import output_file


@pytest.fixture
def load(monkeypatch):
    """``load(name)``: the module of ``benchmarks/bench_<name>.py`` (or of ``benchmarks/<name>.py``)."""
    monkeypatch.syspath_prepend(benchmark_dir())
    return lambda name: importlib.import_module(name if name.startswith("_") else f"bench_{name}")


# (benchmark, arguments, the option the error names); {file} is an existing file, {folder} a folder.
BAD_COMMAND_LINES = [
    ("conv", ["--quick", "--threads", "0"], "--threads"),
    ("conv", ["--repeats", "0"], "--repeats"),
    ("conv", ["--quick", "--shape", "1,2,3"], "--shape"),
    ("conv", ["--shape", "1,8,8,0,16"], "--shape"),
    ("conv", ["--shape", "1,8,8,x,16"], "--shape"),
    ("conv", ["--quick", "--json", "{file}/x.json"], "--json"),
    ("conv_gpu", ["--repeats", "0"], "--repeats"),
    ("conv_gpu", ["--json", "{folder}"], "--json"),
    ("metrics", ["--repeats", "0"], "--repeats"),
    ("metrics", ["--batch", "0"], "--batch"),
    ("metrics", ["--height", "0"], "--height"),
    ("metrics", ["--width", "-1"], "--width"),
    ("metrics", ["--fixations", "0"], "--fixations"),
    ("metrics", ["--density-fixations", "0"], "--density-fixations"),
    ("metrics", ["--density-height", "0"], "--density-height"),
    ("metrics", ["--dense-fixations", "0"], "--dense-fixations"),
    ("metrics", ["--threads", "0"], "--threads"),
    ("metrics", ["--threads", "100000"], "--threads"),  # more than numba's NUMBA_NUM_THREADS
    ("data", ["--repeats", "0"], "--repeats"),
    ("data", ["--seconds", "0"], "--seconds"),
    ("data", ["--seconds", "0.01"], "--seconds"),  # less than one frame
    ("audio", ["--repeats", "0"], "--repeats"),
    ("models", ["--repeats", "0"], "--repeats"),
    ("models", ["--device", "nope"], "--device"),
    ("models", ["--json", "{file}/x.json"], "--json"),
    ("projections", ["--quick", "--json", "{file}/x.json"], "--json"),
    ("projections", ["--batch", "0"], "--batch"),
    ("projections", ["--repeat", "0"], "--repeat"),
    ("projections", ["--face-size", "0"], "--face-size"),
    ("projections", ["--nside", "3"], "--nside"),
    ("projections", ["--threads", "0"], "--threads"),
    ("projections", ["--size", "1024"], "--size"),
    ("projections", ["--size", "64x127"], "--size"),
]


def _argv(args: list[str], tmp_path) -> list[str]:
    file = tmp_path / "file.txt"
    file.write_text("")
    return [a.format(file=file, folder=tmp_path) for a in args]


def _assert_parse_error(load, name: str, argv: list[str], flag: str, capsys) -> str:
    """``bench_<name>.py argv`` exits with code 2 and one error naming ``flag``, having printed nothing;
    returns that error."""
    with pytest.raises(SystemExit) as stop:
        load(name).main(argv)
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"error: argument {flag}: " in err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("name, args, flag", BAD_COMMAND_LINES,
                         ids=[f"{n} {' '.join(a)}" for n, a, _ in BAD_COMMAND_LINES])
def test_bad_option_stops_before_the_benchmark(name, args, flag, load, tmp_path, capsys):
    _assert_parse_error(load, name, _argv(args, tmp_path), flag, capsys)


def test_every_benchmark_has_a_bad_command_line_here():
    assert {name for name, _, _ in BAD_COMMAND_LINES} == set(available())


def test_json_folder_without_write_permission(load, tmp_path, monkeypatch, capsys):
    """The nearest existing folder of ``--json`` must be writable (faked here: root may write anywhere)."""
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    err = _assert_parse_error(load, "projections", ["--json", str(tmp_path / "new" / "x.json")], "--json",
                              capsys)
    assert f"no write permission in {str(tmp_path)!r}" in err


def test_json_in_missing_folders_is_accepted_without_creating_them(load, tmp_path):
    path = str(tmp_path / "a" / "b" / "x.json")
    assert output_file(path) == path
    assert not (tmp_path / "a").exists()  # write_text creates them when the results are saved


def test_bench_passes_the_scripts_error_on(capfd):
    """Through ``sphsal bench`` the script runs in a subprocess: its argparse error and exit code 2."""
    assert main(["bench", "conv", "--quick", "--threads", "0"]) == 2
    err = capfd.readouterr().err
    assert "bench_conv.py: error: argument --threads: expected an integer >= 1, got '0'" in err
    assert "Traceback" not in err


def test_bench_without_a_name_asks_only_for_the_name(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["bench"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.rstrip().endswith("error: the following arguments are required: name")
