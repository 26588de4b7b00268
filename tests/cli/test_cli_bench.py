import json

import pytest
import torch

from sphsal.cli import main
from sphsal.cli.bench import available


def test_bench_lists_and_runs_scripts(capsys):
    assert {"conv", "projections", "audio", "metrics", "data", "models"} <= set(available())
    assert main(["bench", "audio", "--help"]) == 0


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
