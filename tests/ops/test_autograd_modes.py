"""The fast operators under every way torch differentiates: forward mode (``torch.func.jvp``,
``forward_ad``), ``torch.func`` transforms, double backward; and the other tools that dispatch through
them (meta tensors, ``FlopCounterMode``), plus empty batches."""

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from torch.autograd import gradgradcheck
from torch.utils.flop_counter import FlopCounterMode

from sphsal.ops import (
    sphere_avg_pool2d,
    sphere_conv2d,
    sphere_conv2d_reference,
    sphere_conv3d,
    sphere_conv3d_reference,
    sphere_conv_transpose2d,
    sphere_conv_transpose2d_reference,
    sphere_max_pool2d,
)


def _weights(*shape):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


W2, W3, WT = _weights(3, 2, 3, 3), _weights(3, 2, 3, 3, 3), _weights(2, 3, 3, 3)
# (name, fast op of x, the same by the reference, input shape); pools have no separate reference: their
# gradients are checked against finite differences and plain backward
OPS = [
    ("conv2d-nearest", lambda x: sphere_conv2d(x, W2), lambda x: sphere_conv2d_reference(x, W2),
     (1, 2, 8, 16)),
    ("conv2d-bilinear-s2", lambda x: sphere_conv2d(x, W2, None, 2, 1, "bilinear"),
     lambda x: sphere_conv2d_reference(x, W2, None, 2, 1, "bilinear"), (1, 2, 8, 16)),
    ("conv3d", lambda x: sphere_conv3d(x, W3, None, (2, 1)),
     lambda x: sphere_conv3d_reference(x, W3, None, (2, 1)), (1, 2, 3, 8, 16)),
    ("transpose", lambda x: sphere_conv_transpose2d(x, WT, None, 2),
     lambda x: sphere_conv_transpose2d_reference(x, WT, None, 2), (1, 2, 4, 8)),
    ("max-pool", lambda x: sphere_max_pool2d(x, 3, 2), None, (1, 2, 8, 16)),
    ("avg-pool", lambda x: sphere_avg_pool2d(x, 3, 1), None, (1, 2, 8, 16)),
]
IDS = [op[0] for op in OPS]


def _input(shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("name", "fast", "reference", "shape"), OPS, ids=IDS)
def test_forward_mode_tangents_are_the_directional_derivative(name, fast, reference, shape):
    """The fast path's tangents were all zero under torch.func.jvp (its operators have no forward-mode
    formula): they now equal the central difference (the operators are linear or piecewise linear)."""
    x, t = _input(shape), _input(shape, seed=1)
    out, tangent = torch.func.jvp(fast, (x,), (t,))
    difference = (fast(x + 1e-6 * t) - fast(x - 1e-6 * t)) / 2e-6
    torch.testing.assert_close(tangent, difference, rtol=1e-6, atol=1e-6)
    assert tangent.abs().max() > 0.1
    with fwAD.dual_level():
        dual = fast(fwAD.make_dual(x, t))
        torch.testing.assert_close(fwAD.unpack_dual(dual).tangent, tangent)
    if reference is not None:
        torch.testing.assert_close(out, reference(x))


@pytest.mark.parametrize(("name", "fast", "reference", "shape"), OPS, ids=IDS)
def test_func_transforms_agree_with_plain_autograd(name, fast, reference, shape):
    """torch.func.grad failed inside torch ("must override the setup_context staticmethod")."""
    x = _input(shape)
    grad = torch.func.grad(lambda v: (fast(v) ** 2).sum())(x)
    leaf = x.clone().requires_grad_()
    (fast(leaf) ** 2).sum().backward()
    torch.testing.assert_close(grad, leaf.grad)
    batched = torch.func.vmap(fast)(torch.stack((x, 2 * x)))
    torch.testing.assert_close(batched, torch.stack((fast(x), fast(2 * x))))


@pytest.mark.parametrize(("name", "fast", "reference", "shape"), OPS, ids=IDS)
def test_double_backward_gives_the_hessian_vector_product(name, fast, reference, shape):
    """A gradient taken with create_graph=True failed: the backward operators have no derivative."""
    x, t = _input(shape), _input(shape, seed=1)

    def grad_of(v):
        v = v.clone().requires_grad_()
        return torch.autograd.grad((fast(v) ** 2).sum(), v, create_graph=True)[0], v

    grad, leaf = grad_of(x)
    hvp = torch.autograd.grad((grad * t).sum(), leaf)[0]
    difference = (grad_of(x + 1e-6 * t)[0] - grad_of(x - 1e-6 * t)[0]) / 2e-6
    torch.testing.assert_close(hvp, difference, rtol=1e-5, atol=1e-5)


def _leaves(*shapes):
    return [_input(shape, seed=i).requires_grad_() for i, shape in enumerate(shapes)]


def test_gradgradcheck_in_input_weight_and_bias():
    args = _leaves((1, 2, 4, 8), (2, 2, 3, 3), (2,))
    assert gradgradcheck(lambda x, w, b: sphere_conv2d(x, w, b, 1, 1, "bilinear", backend="cpu"), args)
    clip = _leaves((1, 1, 3, 4, 8), (2, 1, 3, 3, 3))
    assert gradgradcheck(lambda x, w: sphere_conv3d(x, w, None, (2, 2), backend="cpu"), clip)
    small = _leaves((1, 2, 2, 4), (2, 2, 3, 3))
    assert gradgradcheck(lambda x, w: sphere_conv_transpose2d(x, w, None, 2, backend="cpu"), small)


def test_tables_built_inside_a_transform_serve_later_calls():
    """The cached neighbour table of a size first met inside torch.func.jvp held the transform's
    wrapper tensors, and the next fast call of that size failed ("doesn't have storage")."""
    x, weight = _input((1, 2, 6, 12)), _weights(3, 2, 3, 3)
    torch.func.jvp(lambda v: sphere_conv2d(v, weight, None, 1, 1, "bilinear"), (x,), (x,))
    fast = sphere_conv2d(x.float(), weight.float(), None, 1, 1, "bilinear", backend="cpu")
    torch.testing.assert_close(fast, sphere_conv2d_reference(x, weight, None, 1, 1, "bilinear").float())


@pytest.mark.parametrize("op", [lambda x: sphere_conv_transpose2d(x, WT.float(), None, 2),
                                lambda x: sphere_max_pool2d(x, 3, 2), lambda x: sphere_avg_pool2d(x, 3, 1)],
                         ids=["transpose", "max-pool", "avg-pool"])
def test_an_empty_batch_gives_empty_outputs_and_gradients(op):
    """Both crashed (a ZeroDivisionError, a reshape of 0 elements); sphere_conv2d/3d already worked."""
    x = torch.randn(0, 2, 4, 8, requires_grad=True)
    out = op(x)
    assert out.shape[0] == 0 and out.shape[1:] == op(torch.randn(1, 2, 4, 8)).shape[1:]
    out.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("op", [lambda x: sphere_conv_transpose2d(x, WT.float(), None, 2),
                                lambda x: sphere_max_pool2d(x, 3, 2)], ids=["transpose", "max-pool"])
def test_an_input_empty_in_height_or_width_is_refused(op):
    with pytest.raises(ValueError, match=r"x must not be empty beyond"):
        op(torch.randn(1, 2, 0, 8))


def test_meta_tensors_give_the_output_shape():
    """is_autocast_enabled('meta') raised: meta tensors are how models are sized without memory."""
    x = torch.empty(2, 2, 8, 16, device="meta")
    assert sphere_conv2d(x, W2.float().to("meta")).shape == (2, 3, 8, 16)
    assert sphere_conv_transpose2d(x, WT.float().to("meta"), None, 2).shape == (2, 3, 16, 32)


def _flops(module, x):
    x = x.clone().requires_grad_()
    with FlopCounterMode(display=False) as counter:
        module(x).sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize(("planar", "spherical", "shape"), [
    (nn.Conv2d(16, 8, 3, padding=1), dict(fn=sphere_conv2d, interpolation="bilinear"), (1, 16, 16, 32)),
    (nn.Conv2d(16, 8, 3, stride=2, padding=1), dict(fn=sphere_conv2d, stride=2), (1, 16, 16, 32)),
    (nn.Conv3d(16, 8, 3, padding=1), dict(fn=sphere_conv3d), (1, 16, 4, 8, 16)),
    (nn.ConvTranspose2d(16, 8, 3, 2, padding=1, output_padding=1), dict(fn=sphere_conv_transpose2d, stride=2),
     (1, 16, 8, 16)),
], ids=["conv2d", "conv2d-s2", "conv3d", "transpose"])
def test_flop_counter_counts_the_planar_layers_flops(planar, spherical, shape):
    """FlopCounterMode counted 0 for the fast operators (forward and backward)."""
    options = dict(spherical)
    fn = options.pop("fn")

    def layer(x):
        return fn(x, planar.weight, planar.bias, **options)

    x = torch.randn(*shape)
    assert _flops(layer, x) == _flops(planar, x) > 0
