"""The transposed spherical convolution is the adjoint of the spherical convolution; its fast CPU path
equals the reference (outputs and all gradients); it is the planar transposed convolution where the
stencil is planar, and equivariant to rotations about the polar axis."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from sphsal.ops import (
    neighbour_table,
    sphere_conv2d_reference,
    sphere_conv_transpose2d,
    sphere_conv_transpose2d_reference,
)

OPTIONS = list(itertools.product(["nearest", "bilinear"], ["cap", "gnomonic"], [1, 2]))
# (Ci, Co, groups): dense, grouped, depthwise (one output channel per input channel)
GROUPS = [(3, 4, 1), (4, 6, 2), (4, 4, 4)]


def _data(b=2, ci=3, co=4, h=4, w=8, k=3, groups=1, integer=False, seed=0):
    """Input ``(b, ci, h, w)``, weight ``(ci, co / groups, k, k)``, bias ``(co,)``, float64."""
    g = torch.Generator().manual_seed(seed)
    if integer:
        x = torch.randint(-4, 5, (b, ci, h, w), generator=g).double()
        weight = torch.randint(-3, 4, (ci, co // groups, k, k), generator=g).double()
    else:
        x = torch.randn(b, ci, h, w, generator=g, dtype=torch.float64)
        weight = torch.randn(ci, co // groups, k, k, generator=g, dtype=torch.float64)
    return x, weight, torch.randn(co, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
@pytest.mark.parametrize("ci,co,groups", GROUPS)
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_it_is_the_adjoint_of_the_convolution(interpolation, stencil, stride, ci, co, groups, backend):
    """<conv(u), x> = <conv_transpose(x), u> for every u and x."""
    x, weight, _ = _data(ci=ci, co=co, h=6, w=12, groups=groups)
    u = torch.randn(2, co, 6 * stride, 12 * stride, dtype=torch.float64)
    conv = sphere_conv2d_reference(u, weight, None, stride, 1, interpolation, stencil, groups)
    transposed = sphere_conv_transpose2d(x, weight, None, stride, 1, interpolation, stencil, backend, groups)
    assert transposed.shape == u.shape
    torch.testing.assert_close((transposed * u).sum(), (conv * x).sum(), rtol=1e-12, atol=1e-12)


def _assert_fast_equals_reference(x, weight, bias, stride, dilation, interpolation, stencil, groups):
    params = [t.requires_grad_() for t in (x, weight, bias)]
    args = (stride, dilation, interpolation, stencil)
    ref = sphere_conv_transpose2d_reference(x, weight, bias, *args, groups=groups)
    fast = sphere_conv_transpose2d(x, weight, bias, *args, backend="cpu", groups=groups)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ref, params, g), torch.autograd.grad(fast, params, g)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
@pytest.mark.parametrize("dilation,k,h", [(1, 3, 8), (2, 3, 10), (1, 5, 10)])
def test_fast_cpu_path_equals_reference(interpolation, stencil, stride, dilation, k, h):
    x, weight, bias = _data(h=h // stride, w=2 * h // stride, k=k)
    _assert_fast_equals_reference(x, weight, bias, stride, dilation, interpolation, stencil, 1)


@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
@pytest.mark.parametrize("ci,co,groups", GROUPS[1:])
def test_grouped_fast_path_equals_reference(interpolation, stencil, stride, ci, co, groups):
    x, weight, bias = _data(ci=ci, co=co, h=8 // stride, w=16 // stride, groups=groups)
    _assert_fast_equals_reference(x, weight, bias, stride, 1, interpolation, stencil, groups)


@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
def test_fast_path_equals_reference_on_a_grid_with_every_kind_of_piece(interpolation, stencil, stride):
    """A 60 x 120 output has plain bands, bands of two units and gathered rows (see test_sphere_conv)."""
    x, weight, bias = _data(ci=3, co=2, h=60 // stride, w=120 // stride)
    _assert_fast_equals_reference(x, weight, bias, stride, 1, interpolation, stencil, 1)


@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
def test_gradcheck(interpolation, stencil, stride):
    x, weight, bias = _data(b=1, ci=2, co=2, h=6 // stride, w=12 // stride)
    args = (x.requires_grad_(), weight.requires_grad_(), bias.requires_grad_())
    fn = lambda x, w, b: sphere_conv_transpose2d(x, w, b, stride, 1, interpolation, stencil)
    assert torch.autograd.gradcheck(fn, args, fast_mode=True)


def test_reference_gradcheck_grouped():
    x, weight, bias = _data(b=1, ci=4, co=2, h=3, w=6, groups=2)
    args = (x.requires_grad_(), weight.requires_grad_(), bias.requires_grad_())
    fn = lambda x, w, b: sphere_conv_transpose2d_reference(x, w, b, 2, 1, "bilinear", "cap", 2)
    assert torch.autograd.gradcheck(fn, args)


@pytest.mark.parametrize("grad_of", ["input", "weight"])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_fast_path_gives_one_gradient_when_only_one_is_needed(grad_of, interpolation):
    x, weight, _ = _data(h=8, w=16)
    wanted = x if grad_of == "input" else weight
    wanted.requires_grad_()
    args = (None, 2, 1, interpolation, "cap")
    ref = sphere_conv_transpose2d_reference(x, weight, *args)
    fast = sphere_conv_transpose2d(x, weight, *args, backend="cpu")
    g = torch.randn_like(ref)
    expected = torch.autograd.grad(ref, wanted, g)[0]
    torch.testing.assert_close(torch.autograd.grad(fast, wanted, g)[0], expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("stencil", ["cap", "gnomonic"])
@pytest.mark.parametrize("ci,co,groups", GROUPS)
def test_planar_rows_equal_conv_transpose2d_with_circular_longitude(stencil, ci, co, groups):
    """An input on the rows whose (stride-1) stencil is the planar 3x3 one gives the adjoint of the planar
    convolution with wrapped longitude: ``F.conv_transpose2d`` with its columns folded around."""
    h, w = 24, 48
    x, weight, bias = _data(ci=ci, co=co, h=h, w=w, groups=groups)
    table = neighbour_table(h, w, 3, 1, 1, stencil, "nearest")
    rows = torch.arange(h)[:, None]
    is_planar = (table.rows[..., 0] - rows == torch.tensor([-1] * 3 + [0] * 3 + [1] * 3)).all(1) & (
        table.cols[..., 0] == torch.tensor([-1, 0, 1] * 3)).all(1)
    assert is_planar.sum() >= h // 3
    x = x * is_planar.view(1, 1, h, 1)
    out = sphere_conv_transpose2d(x, weight, bias, 1, 1, "nearest", stencil, groups=groups)
    planar = F.conv_transpose2d(x, weight, groups=groups, padding=(1, 0))  # (B, Co, h, w + 2)
    planar[..., 1] += planar[..., -1]  # the column past the east edge wraps to the west one
    planar[..., -2] += planar[..., 0]
    expected = planar[..., 1:-1] + bias.view(1, -1, 1, 1)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_rolling_the_input_rolls_the_output(interpolation, stencil, stride, backend):
    x, weight, _ = _data(h=4, w=8, integer=True)
    args = (None, stride, 1, interpolation, stencil, backend)
    out = sphere_conv_transpose2d(x, weight, *args)
    for shift in (1, -3, 5):
        rolled = sphere_conv_transpose2d(torch.roll(x, shift, -1), weight, *args)
        expected = torch.roll(out, shift * stride, -1)
        if interpolation == "nearest":  # integer data: every sum exact, equality bit for bit
            assert torch.equal(rolled, expected)
        else:
            torch.testing.assert_close(rolled, expected, rtol=1e-13, atol=1e-12)


def test_a_pole_pixel_reaches_over_the_pole():
    x = torch.zeros(1, 1, 16, 32, dtype=torch.float64)
    x[0, 0, 0, 0] = 1
    out = sphere_conv_transpose2d(x, torch.ones(1, 1, 3, 3, dtype=torch.float64), stride=1)
    cols = {c for _, c in torch.nonzero(out[0, 0]).tolist()}
    assert 16 in cols and len(cols) >= 6  # the opposite meridian, and longitudes all around


def test_channels_last_input_and_float32():
    x, weight, bias = _data(h=8, w=16)
    expected = sphere_conv_transpose2d_reference(x, weight, bias)
    x32 = x.float().contiguous(memory_format=torch.channels_last)
    out = sphere_conv_transpose2d(x32, weight.float(), bias.float())
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    half = sphere_conv_transpose2d(x.bfloat16(), weight.bfloat16(), bias.bfloat16())
    assert half.dtype == torch.bfloat16 and half.shape == expected.shape


def test_a_one_by_one_kernel_at_stride_one_is_the_planar_one():
    x, weight, bias = _data(k=1, h=8, w=16)
    torch.testing.assert_close(sphere_conv_transpose2d(x, weight, bias, stride=1),
                               F.conv_transpose2d(x, weight, bias))
    torch.testing.assert_close(sphere_conv_transpose2d_reference(x, weight, bias, stride=1),
                               F.conv_transpose2d(x, weight, bias))


@pytest.mark.parametrize("call,match", [
    (lambda x, w: sphere_conv_transpose2d(x[0], w), r"x must be \(B, Ci, h, w\)"),
    (lambda x, w: sphere_conv_transpose2d(x, w[:2]), "weight expects 2 input channels, x has 3"),
    (lambda x, w: sphere_conv_transpose2d(x, w[:, :0]), "at least one input and one output channel"),
    (lambda x, w: sphere_conv_transpose2d(x[:, :0], w[:0]), "at least one input and one output channel"),
    (lambda x, w: sphere_conv_transpose2d(x, w[..., :2, :2]), "square and odd"),
    (lambda x, w: sphere_conv_transpose2d(x, w, torch.zeros(3)), r"bias must have shape \(4,\)"),
    (lambda x, w: sphere_conv_transpose2d(x, w, groups=2), "groups must be a positive divisor of the 3"),
    (lambda x, w: sphere_conv_transpose2d(x, w, stride=0), "stride must be a positive int"),
    (lambda x, w: sphere_conv_transpose2d(x, w, backend="cuda"), "backend='cuda' needs a CUDA tensor"),
    (lambda x, w: sphere_conv_transpose2d(x[..., :7], w, stride=1), "W"),
    (lambda x, w: sphere_conv_transpose2d(x.long(), w), "x must be a floating-point tensor"),
    (lambda x, w: sphere_conv_transpose2d(x.float(), w), "but weight is torch.float64"),
])
def test_bad_input_gets_a_clear_error(call, match):
    x, weight, _ = _data()
    with pytest.raises(ValueError, match=match):
        call(x, weight)
