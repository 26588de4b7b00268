"""The scripts in examples/ run as their docstrings say (in a fresh process, from an empty folder)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(tmp_path, script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, MPLBACKEND="Agg"))
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_spherical_conv_in_your_model(tmp_path):
    out = _run(tmp_path, "spherical_conv_in_your_model.py")
    # Equal up to float32 rounding (2.4e-7 measured on a 2-core AMD EPYC with AVX-512, 0.0 on a Xeon: the
    # order of oneDNN's sums depends on the column and the CPU), while zero padding shows the seam (0.64).
    spherical = float(out.split("max |conv(roll x) - roll(conv x)|:")[1].split()[0])
    planar = float(out.split("(the seam shows):")[1].split()[0])
    assert spherical < 1e-5 and planar > 0.1
    assert "['SphericalConv2d', 'SphericalConvTranspose2d', 'SphericalMaxPool2d']" in out


def test_spherical_vs_planar_timing(tmp_path):
    out = _run(tmp_path, "spherical_vs_planar_timing.py", "--channels", "4", "--size", "16x32",
               "--batch", "1")
    lines = [line for line in out.splitlines() if "ratio" in line]
    assert [line.split()[0] for line in lines] == ["nearest", "bilinear"]


def test_avs360_on_a_synthetic_video(tmp_path):
    """Without arguments: a synthetic 3 s video (24 frames), then the AEM x ECB prior and AVS360 on it."""
    _run(tmp_path, "avs360_on_a_video.py")
    for model in ("aem_ecb", "avs360"):
        folder = tmp_path / "examples_out" / model / "synthetic"
        record = json.loads((folder / "done.json").read_text())
        assert record["frames"] == 24 and record["overlay"]
        assert len(list((folder / "maps").glob("*.png"))) == 24
        assert (folder / "overlay.mp4").stat().st_size > 0
