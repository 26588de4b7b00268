import json

import pytest
import torch

from sphsal.cli import main
from sphsal.cli.bench import available


def test_bench_lists_and_runs_scripts(capsys):
    assert {"conv", "projections", "audio", "metrics", "data", "models"} <= set(available())
    assert main(["bench", "audio", "--help"]) == 0


# A line every benchmark's --quick run prints (its table's header or summary).
QUICK_MARKERS = {"conv": "sph-nearest is", "projections": "ERP -> healpix", "audio": "energy_map RTF",
                 "metrics": "all metrics", "data": "dataset clips, shuffled",
                 "models": "Every registered model"}


def test_every_cpu_benchmark_has_a_quick_check():
    assert set(available()) - {"conv_gpu"} == set(QUICK_MARKERS)


@pytest.mark.parametrize("name", sorted(QUICK_MARKERS))
def test_quick_benchmark_runs(name, tmp_path, monkeypatch, capfd):
    """``sphsal bench NAME --quick``: every benchmark script has a smoke run that completes (5-30 s)."""
    monkeypatch.chdir(tmp_path)
    assert main(["bench", name, "--quick"]) == 0
    assert QUICK_MARKERS[name] in capfd.readouterr().out


def test_bench_unknown_name_is_a_clear_error(capsys):
    assert main(["bench", "nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_conv_benchmark_saves_both_tables(tmp_path):
    out = tmp_path / "gpu.json"
    assert main(["bench", "conv_gpu", "--quick", "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert {r["method"] for r in saved["results"]} == {"planar", "sph-nearest", "sph-bilinear", "gather-3x",
                                                       "grid_sample-3x"}
    assert {r["method"] for r in saved["transposed"]} == {"planar", "sph-nearest", "sph-bilinear"}
    assert all(r["forward_ms"] > 0 and r["backward_ms"] > 0 for r in saved["results"] + saved["transposed"])
