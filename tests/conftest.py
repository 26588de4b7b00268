"""Fixtures shared by test folders."""

import subprocess
import sys

import pytest
import torch


@pytest.fixture
def loads_in_fresh_process(tmp_path):
    """``check(exported, x, module)``: save a ``torch.export`` program, then load it in a new Python
    process that imports only ``module`` (which must register the program's operators) and compare
    its output on ``x`` with the program's own; fails with the process's stderr."""

    def check(exported, x: torch.Tensor, module: str) -> None:
        torch.export.save(exported, tmp_path / "net.pt2")
        torch.save({"x": x, "y": exported.module()(x)}, tmp_path / "io.pt")
        script = (f"import torch, {module}\n"
                  f"program = torch.export.load({str(tmp_path / 'net.pt2')!r})\n"
                  f"io = torch.load({str(tmp_path / 'io.pt')!r}, weights_only=True)\n"
                  f"torch.testing.assert_close(program.module()(io['x']), io['y'])\n")
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]

    return check
