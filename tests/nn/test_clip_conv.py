"""ClipConv3d: nn.Conv3d's results and parameters, one Conv2d over the frames for short clips."""

import shutil
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from sphsal.nn import ClipConv3d, SphericalConv3d, convert_to_spherical


def _pair(**kwargs):
    torch.manual_seed(0)
    planar = nn.Conv3d(**kwargs).double()
    clip = ClipConv3d(**kwargs).double()
    clip.load_state_dict(planar.state_dict())
    return planar, clip


@pytest.mark.parametrize("frames,kwargs", [
    (3, dict(in_channels=3, out_channels=4, kernel_size=7, stride=(1, 2, 2), padding=3)),
    (3, dict(in_channels=3, out_channels=4, kernel_size=7, stride=(1, 2, 2), padding=(3, 0, 0))),
    (1, dict(in_channels=4, out_channels=5, kernel_size=3, padding=1, bias=False)),
    (2, dict(in_channels=4, out_channels=5, kernel_size=3, stride=2, padding=1)),
    (2, dict(in_channels=2, out_channels=3, kernel_size=(5, 3, 3), stride=(2, 1, 1), padding=(2, 1, 1))),
    (4, dict(in_channels=2, out_channels=3, kernel_size=3, padding=1)),  # T >= kt: nn.Conv3d itself
    (2, dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, groups=2)),  # grouped: nn.Conv3d
    # Padding of kt frames or more: output frames wholly in the padding after the clip (only the bias)
    (1, dict(in_channels=2, out_channels=3, kernel_size=3, stride=(2, 1, 1), padding=(4, 1, 1))),
    (1, dict(in_channels=2, out_channels=3, kernel_size=(2, 3, 3), padding=(3, 1, 1))),
])
def test_clip_conv3d_equals_conv3d(frames, kwargs):
    planar, clip = _pair(**kwargs)
    x = torch.randn(2, kwargs["in_channels"], frames, 10, 12, dtype=torch.float64, requires_grad=True)
    expected, got = planar(x), clip(x)
    assert got.shape == expected.shape and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(expected)
    params = [p for p in planar.parameters()]
    for a, b in zip(torch.autograd.grad(expected, [x, *params], g),
                    torch.autograd.grad(got, [x, *clip.parameters()], g)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


def test_clip_conv3d_runs_one_conv2d_on_short_clips_only(monkeypatch):
    calls = []
    original = torch.nn.functional.conv2d
    monkeypatch.setattr(torch.nn.functional, "conv2d", lambda *a, **k: calls.append(1) or original(*a, **k))
    layer = ClipConv3d(3, 4, 3, padding=1)
    layer(torch.randn(1, 3, 2, 8, 8))
    assert calls == [1]
    layer(torch.randn(1, 3, 3, 8, 8))
    assert calls == [1]


def test_clip_conv3d_is_an_nn_conv3d_for_checkpoints_and_conversion():
    layer = ClipConv3d(3, 4, 3, padding=1)
    assert isinstance(layer, nn.Conv3d)
    assert set(layer.state_dict()) == set(nn.Conv3d(3, 4, 3, padding=1).state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own forward computes nn.Conv3d's: it converts
        converted = convert_to_spherical(nn.Sequential(layer))[0]
    assert isinstance(converted, SphericalConv3d) and converted.weight is layer.weight


_INDUCTOR_SCRIPT = """
import torch
from sphsal.models.backbones.resnet3d import BasicBlock3d
torch.manual_seed(0)
model = torch.nn.Sequential(BasicBlock3d(8, 8, 2), BasicBlock3d(8, 8))  # T = 2, then 1: folded frames
compiled = torch.compile(model)
x = torch.randn(4, 8, 2, 16, 16, requires_grad=True)
for _ in range(2):
    out = compiled(x)
    out.square().mean().backward()
    torch.testing.assert_close(out, model(x))
"""


@pytest.mark.skipif(shutil.which("c++") is None, reason="inductor needs a C++ compiler")
def test_short_clips_train_under_inductor():
    """Compiled with inductor and trained, two short-clip ResNet blocks run (in a subprocess, where a
    crash fails the test): the folded weight used to be built by tensor indexing, whose compiled
    backward crashed (segfault / heap corruption) on torch 2.13."""
    result = subprocess.run([sys.executable, "-c", _INDUCTOR_SCRIPT], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]


def test_fx_symbolic_trace_of_clip_conv3d():
    """The folding depends on the clip's length: torch.fx traces the layer as one call (it failed on
    the length comparison) whose traced module computes the layer's output for short and long clips."""
    layer = nn.Sequential(ClipConv3d(3, 4, 3, padding=1), nn.ReLU())
    traced = torch.fx.symbolic_trace(layer)
    calls = [n.target.__name__ for n in traced.graph.nodes if n.op == "call_function"]
    assert calls == ["_zero_padded_conv3d"]
    replicate = ClipConv3d(3, 4, 3, padding=1, padding_mode="replicate")  # always nn.Conv3d's forward
    traced_replicate = torch.fx.symbolic_trace(replicate)
    for frames in (1, 2, 5):
        x = torch.randn(2, 3, frames, 8, 8)
        torch.testing.assert_close(traced(x), layer(x))
        torch.testing.assert_close(traced_replicate(x), replicate(x))
