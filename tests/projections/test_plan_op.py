"""Projections run as the custom operator ``sphsal::sample_plan``: ``torch.compile`` captures each in
one graph with no breaks (plans are built outside the graph), outputs and gradients equal eager, the
explicit adjoint is differentiable again (double backward), and ``torch.export`` keeps the operator,
also across processes."""

import pytest
import torch

from sphsal.projections import (
    _plan_op,
    cubemap_to_equirect,
    equirect_to_cubemap,
    equirect_to_healpix,
    equirect_to_perspective,
    healpix_to_equirect,
    perspective_to_equirect,
)

# name -> (projection of one tensor, input shape); each plan kind: grid + seam/pole gather (ERP
# source), grid + face-edge gather (cube atlas), gather only (HEALPix source), grid + coverage (view).
PROJECTIONS = {
    "erp_to_cube": (lambda t, mode: equirect_to_cubemap(t, 3, mode=mode), (2, 2, 8, 16)),
    "cube_to_erp": (lambda t, mode: cubemap_to_equirect(t, 8, 16, mode=mode), (2, 6, 2, 3, 3)),
    "erp_to_healpix": (lambda t, mode: equirect_to_healpix(t, 2, mode=mode), (2, 2, 8, 16)),
    "healpix_to_erp": (lambda t, mode: healpix_to_equirect(t, 8, 16, mode=mode), (2, 2, 48)),
    "erp_to_view": (lambda t, mode: equirect_to_perspective(t, 1.2, 2.9, 0.4, 0.1, (3, 4), mode),
                    (2, 2, 8, 16)),
    "view_to_erp": (lambda t, mode: perspective_to_equirect(t, 1.2, 2.9, 0.4, 0.1, 8, 16, mode)[0],
                    (2, 2, 3, 4)),
}


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("name", PROJECTIONS)
def test_compiled_projection_is_one_graph_and_matches_eager(name, mode):
    project, shape = PROJECTIONS[name]
    x = torch.rand(shape, requires_grad=True)

    def f(t):
        return project(t, mode)

    explained = torch._dynamo.explain(f)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    weights = torch.rand_like(f(x))
    out, = torch.autograd.grad((f(x) * weights).sum(), x)
    out_c, = torch.autograd.grad((compiled(x) * weights).sum(), x)
    torch.testing.assert_close(compiled(x), f(x))
    torch.testing.assert_close(out_c, out)


@pytest.mark.parametrize("name", PROJECTIONS)
def test_double_backward(name):
    project, shape = PROJECTIONS[name]
    x = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: project(t, "bilinear"), (x,))


def test_unknown_builder_is_named():
    with pytest.raises(KeyError, match="no_such_plan"):
        _plan_op.sample(torch.zeros(1, 1, 4, 8), "no_such_plan", (1,), (2,))


class _CubeRoundTrip(torch.nn.Module):
    def forward(self, x):
        return cubemap_to_equirect(equirect_to_cubemap(x, 4) * 2, 8, 16)


def test_exported_projections_load_in_a_fresh_process(loads_in_fresh_process):
    """``import sphsal.projections`` registers the operator and the plan builders it names."""
    model, x = _CubeRoundTrip(), torch.rand(1, 2, 8, 16)
    exported = torch.export.export(model, (x,))
    targets = [str(n.target) for n in exported.graph.nodes if n.op == "call_function"]
    assert targets.count("sphsal.sample_plan.default") == 2
    torch.testing.assert_close(exported.module()(x), model(x))
    loads_in_fresh_process(exported, x, "sphsal.projections")
