"""torch.compile and torch.export capture spherical layers on the CPU as single operators: one graph,
no breaks, the same outputs and gradients as eager (``aot_eager``: dynamo, fake tensors and AOT
autograd, no C++ code generation, so no compiler is needed)."""

import pytest
import torch
from torch import nn

from sphsal.nn import (
    SphericalAvgPool2d,
    SphericalConv2d,
    SphericalConv3d,
    SphericalConvTranspose2d,
    SphericalMaxPool2d,
)


def _image_net() -> nn.Module:
    return nn.Sequential(SphericalConv2d(3, 8), nn.ReLU(), SphericalMaxPool2d(3),
                         SphericalConv2d(8, 8, stride=2, interpolation="bilinear"), SphericalAvgPool2d(3),
                         SphericalConv2d(8, 4, stencil="gnomonic"))


def _layer_kinds_net() -> nn.Module:
    """1x1 kernels (stride 1: the planar shortcut; stride 2: the operator), depthwise and grouped 3x3,
    a stride-1 pool, a transposed convolution back to the input grid."""
    return nn.Sequential(SphericalConv2d(3, 8, 1), SphericalConv2d(8, 8, groups=8, interpolation="bilinear"),
                         SphericalMaxPool2d(3, 1), SphericalConv2d(8, 8, groups=2),
                         SphericalConv2d(8, 4, 1, 2), SphericalConvTranspose2d(4, 3, 3, 2))


class _ClipNet(nn.Module):
    """A clip layer (T >= kt: folded taps) and a short-clip layer (T < kt: frames as channels)."""

    def __init__(self):
        super().__init__()
        self.a = SphericalConv3d(3, 6, 3)
        self.b = SphericalConv3d(6, 4, (5, 3, 3), stride=(2, 2, 2))

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _run(model, x):
    x = x.detach().requires_grad_()
    out = model(x)
    grads = torch.autograd.grad(out.square().sum(), [x, *model.parameters()])
    return out, grads


@pytest.mark.parametrize("make,shape", [(_image_net, (2, 3, 16, 32)), (_ClipNet, (2, 3, 3, 16, 32)),
                                        (_layer_kinds_net, (2, 3, 16, 32))],
                         ids=["images", "clips", "layer kinds"])
def test_compiled_model_is_one_graph_and_matches_eager(make, shape):
    torch.manual_seed(0)
    model = make()
    x = torch.randn(shape)
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    out, grads = _run(model, x)
    out_c, grads_c = _run(compiled, x)
    torch.testing.assert_close(out_c, out)
    for g_c, g in zip(grads_c, grads):
        torch.testing.assert_close(g_c, g)


def test_compiled_with_dynamic_shapes_takes_other_erp_sizes():
    torch.manual_seed(0)
    model = _image_net()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=True)
    for shape in [(1, 3, 16, 32), (2, 3, 32, 64)]:
        x = torch.randn(shape)
        torch.testing.assert_close(compiled(x), model(x))


def test_torch_export_keeps_the_spherical_operators():
    torch.manual_seed(0)
    model = nn.Sequential(_image_net(), SphericalConvTranspose2d(4, 2, 3, 2))
    x = torch.randn(1, 3, 16, 32)
    exported = torch.export.export(model, (x,))
    targets = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert {"sphsal.sphere_conv_cpu.default", "sphsal.sphere_pool.default",
            "sphsal.sphere_conv_transpose_cpu.default"} <= targets
    torch.testing.assert_close(exported.module()(x), model(x))


def test_an_exported_program_loads_in_a_fresh_process(loads_in_fresh_process):
    """``import sphsal.ops`` registers the operators an exported program refers to."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 16, 32)
    loads_in_fresh_process(torch.export.export(_image_net(), (x,)), x, "sphsal.ops")
