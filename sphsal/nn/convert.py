"""Turn a planar network into a spherical one: ``convert_to_spherical(model)``."""

from __future__ import annotations

import copy
import warnings

from torch import nn
from torch.nn.utils import parametrize

from sphsal.nn.clip_conv import ClipConv3d
from sphsal.nn.conv import SphericalConv2d, SphericalConv3d, padding_mode_problem, padding_problem
from sphsal.nn.conv_transpose import SphericalConvTranspose2d, output_padding_problem
from sphsal.nn.pooling import SphericalAvgPool2d, SphericalMaxPool2d

__all__ = ["convert_to_spherical"]

_SPHERICAL = (SphericalConv2d, SphericalConv3d, SphericalConvTranspose2d, SphericalMaxPool2d,
              SphericalAvgPool2d)
_CONVERTED = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.MaxPool2d, nn.AvgPool2d)
# subclasses of those whose computation is their planar base's, though they override forward
_SAME_COMPUTATION = (ClipConv3d,)
# the methods through which the planar layers compute: a subclass overriding one computes something else
_FORWARD_METHODS = ("forward", "_conv_forward", "_output_padding")
# what nn.Module.__init__ creates: parameters, buffers, submodules, hooks, training mode. A twin takes these
# over from its planar layer: the same Parameter and buffer tensors (tied weights and optimizers keep
# working) in copies of the containers (the planar layer, if someone keeps it, is not changed through the
# twin), and the same hook dicts (their handles still remove them).
_MODULE_STATE = tuple(vars(nn.Module()))
_COPIED_CONTAINERS = ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set")


def _custom_forward(m: nn.Module) -> str | None:
    """Why a subclass of a planar layer may compute something other than its base (None: it does not)."""
    base = next(cls for cls in _CONVERTED if isinstance(m, cls))
    for same in (base, *_SAME_COMPUTATION):
        if all(getattr(type(m), f, None) is getattr(same, f, None) for f in _FORWARD_METHODS):
            return None
    method = next(f for f in _FORWARD_METHODS if getattr(type(m), f, None) is not getattr(base, f, None))
    return (f"{type(m).__qualname__} overrides nn.{base.__name__}'s {method}, so a spherical twin would not "
            "compute what it computes")


def _conv_problem(m: nn.Module) -> str | None:
    """Why a planar ``Conv2d`` / ``Conv3d`` has no spherical twin (None when it has one)."""
    k, s, d, p = m.kernel_size[-2:], m.stride[-2:], m.dilation[-2:], m.padding
    if k[0] != k[1] or k[0] % 2 == 0:
        return f"kernel_size={m.kernel_size} is not odd and square"
    if s[0] != s[1] or d[0] != d[1]:
        return f"stride={m.stride} / dilation={m.dilation} differ between the spatial axes"
    if isinstance(m, nn.Conv3d) and m.dilation[0] != 1:
        return f"temporal dilation {m.dilation[0]} is not supported"
    same = (k[0] // 2 * d[0],) * 2
    if isinstance(m, nn.ConvTranspose2d):
        return padding_problem(p, same) or output_padding_problem(m.output_padding, s[0])
    return padding_problem(p, (m.kernel_size[0] // 2, *same) if isinstance(m, nn.Conv3d) else same)


# (kernel_size, stride, padding) of the planar pools that have a spherical twin
_POOLS = ((2, 2, 0), (3, 2, 1), (3, 1, 1))


def _pool_geometry(m: nn.Module) -> tuple[int, int, int] | str:
    """``(kernel_size, stride, padding)`` of a planar pool with a spherical twin, or why it has none."""
    if getattr(m, "ceil_mode", False) or getattr(m, "dilation", 1) not in (1, (1, 1)):
        return "ceil_mode / dilation are not supported"
    values = [m.kernel_size, m.stride, m.padding]
    pairs = [v if isinstance(v, tuple) else (v, v) for v in values]
    if any(a != b for a, b in pairs) or (pairs[0][0], pairs[1][0], pairs[2][0]) not in _POOLS:
        return (f"kernel_size={m.kernel_size}, stride={m.stride}, padding={m.padding}: only (kernel, stride, "
                f"padding) {', '.join(map(str, _POOLS))} map to spherical pools")
    return pairs[0][0], pairs[1][0], pairs[2][0]


def _unsupported_option(m: nn.Module) -> str | None:
    """Why a planar layer's options (beyond its geometry) would change under conversion, or None."""
    if parametrize.is_parametrized(m) or hasattr(m, "weight_g") or hasattr(m, "weight_orig"):
        return "its weight is reparametrized (weight_norm / spectral_norm), which the twin would drop"
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in m.parameters(recurse=False)):
        return "it is a lazy layer whose parameters are not initialized yet (run it once first)"
    if isinstance(m, nn.Conv3d) and m.padding_mode != "zeros":  # a Conv2d's borders are gone on the sphere
        return padding_mode_problem(m.padding_mode, temporal=True)
    if isinstance(m, nn.Conv3d) and m.padding == "same" and m.kernel_size[0] % 2 == 0:
        return f"padding='same' with an even temporal kernel {m.kernel_size[0]} pads time unevenly"
    if getattr(m, "return_indices", False):
        return "return_indices=True (the spherical pool returns values only)"
    if getattr(m, "divisor_override", None) is not None:
        return f"divisor_override={m.divisor_override} (the spherical pool averages its window)"
    return None


def _twin(m: nn.Module, interpolation: str, stencil: str) -> nn.Module | str:
    """The spherical replacement of ``m``, which takes over ``m``'s parameters and buffers (the tensors
    themselves, in copied containers), its hooks (the same hook dicts) and training mode, or the reason
    there is none."""
    if isinstance(m, nn.ConvTranspose3d):
        return "there is no spherical transposed 3D convolution"
    problem = _unsupported_option(m) or _custom_forward(m)
    if problem:
        return problem
    if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)):
        problem = _conv_problem(m)
        if problem:
            return problem
        # built on the meta device: its own parameters are placeholders, replaced by m's below
        options = dict(stride=m.stride, dilation=m.dilation, bias=m.bias is not None, groups=m.groups,
                       interpolation=interpolation, stencil=stencil, device="meta")
        if isinstance(m, nn.ConvTranspose2d):
            twin = SphericalConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, **options)
        else:
            cls = SphericalConv2d if isinstance(m, nn.Conv2d) else SphericalConv3d
            twin = cls(m.in_channels, m.out_channels, m.kernel_size, **options)
    else:
        geometry = _pool_geometry(m)
        if isinstance(geometry, str):
            return geometry
        cls = SphericalMaxPool2d if isinstance(m, nn.MaxPool2d) else SphericalAvgPool2d
        twin = cls(geometry[0], geometry[1], stencil=stencil)
    state = {name: m.__dict__[name] for name in _MODULE_STATE}
    state.update({name: copy.copy(state[name]) for name in _COPIED_CONTAINERS})
    twin.__dict__.update(state)
    return twin


def _convertible_layers(model: nn.Module) -> dict[int, tuple[nn.Module, list[str]]]:
    """``{id: (layer, every name it has in model)}`` of the layers that convert_to_spherical considers,
    in ``named_modules`` order (a layer shared by several parents, or registered twice, appears once)."""
    found: dict[int, tuple[nn.Module, list[str]]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, _CONVERTED) and not isinstance(module, _SPHERICAL):
            found.setdefault(id(module), (module, []))[1].append(name)
    return found


def convert_to_spherical(model: nn.Module, interpolation: str = "nearest", stencil: str = "cap",
                         keep_planar: tuple[str, ...] = ()) -> nn.Module:
    """Replace, in place, every ``Conv2d``, ``Conv3d``, ``ConvTranspose2d``, ``MaxPool2d`` and
    ``AvgPool2d`` of ``model`` by its spherical twin. The twin takes over the layer's parameters and
    buffers themselves (not copies), its hooks (forward, pre-forward, backward, state-dict; their handles
    still remove them) and its training mode: weights tied between layers stay tied, and an optimizer
    built before the conversion still trains the converted model. A layer used in several places is
    replaced by one twin everywhere.

    Subclasses of those layers convert when they keep the planar ``forward`` (and ``ClipConv3d``, which
    computes ``nn.Conv3d``'s); a subclass with its own ``forward`` (e.g. a weight-standardised
    convolution) computes something the twin would not, and stays planar with a warning.

    Convolutions (grouped and depthwise ones included) need an odd square spatial kernel, equal
    spatial stride and dilation, and "same" padding (``k // 2 * dilation``; ``kt // 2`` in time);
    transposed ones also ``output_padding = stride - 1`` (an exact ``stride`` times larger grid).
    Pools need kernel 2 / stride 2 / padding 0, or kernel 3 / padding 1 with stride 2 or 1. Layers
    whose other options the twin would not keep (a reparametrized weight, ``Conv3d`` padding modes
    other than zeros: the twin zero-pads time, ``return_indices``, ``divisor_override``,
    uninitialized lazy layers) do not convert either. A ``Conv2d``'s ``padding_mode`` (zeros,
    reflect, replicate, circular) is how it treats the image's borders, which the sphere does not
    have: the twin replaces it, whatever it was. Any layer that does not convert stays planar and a
    warning names it, except the layers named (as in ``named_modules``) in ``keep_planar``, which stay
    planar on purpose and silently. Every twin is made before the first replacement, so an error
    leaves ``model`` as it was.

    Returns ``model`` (for chaining), or the twin of ``model`` itself when it is one of those layers
    (a module cannot replace itself in place).
    """
    twins = {}
    for key, (layer, names) in _convertible_layers(model).items():
        if any(name in keep_planar for name in names):
            continue
        twin = _twin(layer, interpolation, stencil)
        if isinstance(twin, str):
            warnings.warn(f"convert_to_spherical: left layer {names[0] or '(the model itself)'!r} "
                          f"({type(layer).__name__}) planar: {twin}", stacklevel=2)
        else:
            twins[key] = twin
    if id(model) in twins:
        return twins[id(model)]
    for module in list(model.modules()):
        for child_name, child in list(module._modules.items()):
            if child is not None and id(child) in twins:
                setattr(module, child_name, twins[id(child)])
    return model
