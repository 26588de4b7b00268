from sphsal.cli import main
from sphsal.cli.bench import available


def test_bench_lists_and_runs_scripts(capsys):
    assert {"conv", "projections", "audio", "metrics", "data", "models"} <= set(available())
    assert main(["bench", "audio", "--help"]) == 0


def test_bench_unknown_name_is_a_clear_error(capsys):
    assert main(["bench", "nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err
