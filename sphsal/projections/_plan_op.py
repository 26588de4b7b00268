"""Sampling plans applied as the custom operators ``sphsal::sample_plan`` and its adjoint.

A projection names its cached plan builder and the builder's geometry arguments; the operator looks
the plan up inside, so ``torch.compile`` sees one opaque call per projection (the plan is built,
once, outside any graph) and ``torch.export`` keeps it as an operator. The backward pass is the
plan's explicit adjoint (:meth:`~sphsal.projections._grids.SamplingPlan.adjoint`), and, the sampling
being linear, the adjoint's own derivative is the sampling again, so double backward works.

Geometry travels as the ``repr`` of a tuple of Python literals (ints, floats, bools, strings and
tuples of them) and is read back with :func:`ast.literal_eval`, which evaluates literals only.
"""

from __future__ import annotations

import ast
import functools

import torch

# builder name -> callable(*geometry, device=..., dtype=...) -> SamplingPlan
_BUILDERS: dict = {}


def register_builder(name: str, builder) -> None:
    """Make ``builder`` reachable from the operators as ``name``."""
    _BUILDERS[name] = builder


def sample(x: torch.Tensor, builder: str, geometry: tuple, out_shape: tuple[int, ...]) -> torch.Tensor:
    """Apply the plan of ``builder(*geometry)`` to ``x`` ``(B, C, ...)`` -> ``(B, C, *out_shape)``."""
    return _sample_op(x, builder, *_as_arguments(geometry, out_shape))


def _as_arguments(geometry: tuple, out_shape: tuple[int, ...]) -> tuple[str, list[int]]:
    """The operators' ``geometry`` text and ``out_shape`` list."""
    return repr(_literal(tuple(geometry))), [int(n) for n in out_shape]


def _literal(value):
    """``value`` with NumPy or symbolic numbers made Python ``float`` / ``int``, so that its ``repr``
    is a literal."""
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, tuple):
        return tuple(_literal(v) for v in value)
    return float(value) if isinstance(value, float) else int(value)


def coverage(x: torch.Tensor, builder: str, geometry: tuple, out_shape: tuple[int, ...]) -> torch.Tensor:
    """The 0/1 coverage ``out_shape`` of ``builder(*geometry)``'s plan, in ``x``'s dtype and device
    (not differentiable)."""
    return _coverage_op(x.detach(), builder, *_as_arguments(geometry, out_shape))


@functools.lru_cache(maxsize=256)
def _geometry(text: str) -> tuple:
    return ast.literal_eval(text)


def _plan(builder: str, geometry: str, x: torch.Tensor):
    if builder not in _BUILDERS:
        raise KeyError(f"no sampling plan builder named {builder!r} (import sphsal.projections first)")
    return _BUILDERS[builder](*_geometry(geometry), device=x.device, dtype=x.dtype)


@torch.library.custom_op("sphsal::sample_plan", mutates_args=())
def _sample_op(x: torch.Tensor, builder: str, geometry: str, out_shape: list[int]) -> torch.Tensor:
    """``x`` ``(B, C, ...)`` sampled by the named builder's plan for ``geometry``: ``(B, C, *out_shape)``."""
    out = _plan(builder, geometry, x)(x)
    if tuple(out.shape[2:]) != tuple(out_shape):
        raise ValueError(f"plan {builder}{geometry} gives {tuple(out.shape[2:])}, the caller expected "
                         f"{tuple(out_shape)}")
    return out


@_sample_op.register_fake
def _(x, builder, geometry, out_shape):
    return x.new_empty((*x.shape[:2], *out_shape))


@torch.library.custom_op("sphsal::plan_coverage", mutates_args=())
def _coverage_op(x: torch.Tensor, builder: str, geometry: str, out_shape: list[int]) -> torch.Tensor:
    """The named plan's coverage (a plan that has one) as an ``out_shape`` tensor like ``x``."""
    return _plan(builder, geometry, x).coverage.reshape(out_shape).to(x.dtype, copy=True)


@_coverage_op.register_fake
def _(x, builder, geometry, out_shape):
    return x.new_empty(out_shape)


@torch.library.custom_op("sphsal::sample_plan_adjoint", mutates_args=())
def _adjoint_op(grad: torch.Tensor, x: torch.Tensor, builder: str, geometry: str) -> torch.Tensor:
    """The transpose of :func:`_sample_op` applied to ``grad`` ``(B, C, *out_shape)``: ``x``'s shape
    (``x`` gives the shape, dtype and device; its values are not read)."""
    return _plan(builder, geometry, x).adjoint(grad, x)


@_adjoint_op.register_fake
def _(grad, x, builder, geometry):
    return x.new_empty(x.shape)


def _save_sample(ctx, inputs, output):
    x, ctx.builder, ctx.geometry, _ = inputs
    ctx.save_for_backward(x)


def _sample_backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return _adjoint_op(grad, x, ctx.builder, ctx.geometry), None, None, None


def _save_adjoint(ctx, inputs, output):
    grad, _, ctx.builder, ctx.geometry = inputs
    ctx.out_shape = list(grad.shape[2:])


def _adjoint_backward(ctx, grad_x):
    return _sample_op(grad_x, ctx.builder, ctx.geometry, ctx.out_shape), None, None, None


_sample_op.register_autograd(_sample_backward, setup_context=_save_sample)
_adjoint_op.register_autograd(_adjoint_backward, setup_context=_save_adjoint)
