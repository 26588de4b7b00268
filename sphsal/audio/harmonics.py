"""Real spherical harmonics in ambisonic conventions (ACN channel order, SN3D / N3D / orthonormal).

Degree ``l`` and order ``m`` (``-l <= m <= l``) sit at ACN channel ``l * (l + 1) + m``; an order-``N``
field has ``(N + 1)^2`` channels. Directions follow :mod:`sphsal.sphere` (azimuth positive to the
left, elevation up, radians), and

    Y_lm(az, el) = K_lm * P_l^|m|(sin el) * (cos(m az) if m >= 0 else sin(|m| az)),

with the associated Legendre functions ``P_l^m`` taken WITHOUT the Condon-Shortley phase (the ambisonic
habit). Normalisations ``K_lm``:

* ``"sn3d"`` (ambiX default): ``sqrt((2 - delta_m0) (l - |m|)! / (l + |m|)!)``; the W channel is 1 and
  first order gives ``[1, sin az cos el, sin el, cos az cos el]``.
* ``"n3d"``: SN3D times ``sqrt(2l + 1)``; the mean of ``Y_lm^2`` over the sphere is 1.
* ``"orthonormal"``: N3D divided by ``sqrt(4 pi)``; ``Y_lm`` integrates to ``delta`` over the sphere.
"""

from __future__ import annotations

import math

import torch

from sphsal._checks import check_integer

__all__ = [
    "NORMALIZATIONS",
    "num_channels",
    "order_from_channels",
    "acn_degrees",
    "normalization_gains",
    "sh_matrix",
]

NORMALIZATIONS = ("sn3d", "n3d", "orthonormal")


def _check_order(order) -> int:
    return check_integer(order, "order", minimum=0, whole_floats=True)


def _check_normalization(normalization: str) -> str:
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    return normalization


def num_channels(order: int) -> int:
    """Channel count ``(order + 1)^2`` of an ambisonic field of the given order."""
    return (_check_order(order) + 1) ** 2


def order_from_channels(channels: int) -> int | None:
    """The ambisonic order whose channel count is ``channels``, or ``None`` when it is not a square."""
    root = math.isqrt(int(channels)) if channels >= 0 else -1
    return root - 1 if root >= 1 and root * root == channels else None


def acn_degrees(order: int) -> torch.Tensor:
    """Degree ``l`` of every ACN channel, shape ``((order + 1)^2,)`` int64."""
    order = _check_order(order)
    return torch.cat([torch.full((2 * deg + 1,), deg, dtype=torch.int64) for deg in range(order + 1)])


def normalization_gains(order: int, source: str = "sn3d", target: str = "n3d") -> torch.Tensor:
    """Per-channel factors ``g`` (float64, shape ``((order + 1)^2,)``) with ``Y_target = g * Y_source``.

    Multiply an ambisonic signal ``(channels, samples)`` by ``g[:, None]`` to change its normalisation.
    """
    _check_normalization(source)
    _check_normalization(target)
    degree = acn_degrees(order).to(torch.float64)

    def from_sn3d(name: str) -> torch.Tensor:
        if name == "sn3d":
            return torch.ones_like(degree)
        scale = torch.sqrt(2 * degree + 1)
        return scale if name == "n3d" else scale / math.sqrt(4 * math.pi)

    return from_sn3d(target) / from_sn3d(source)


def _sn3d_factor(deg: int, m: int) -> float:
    return math.sqrt((2.0 if m else 1.0) * math.factorial(deg - m) / math.factorial(deg + m))


def sh_matrix(order: int, az, el, normalization: str = "sn3d") -> torch.Tensor:
    """Real spherical harmonics of every degree up to ``order`` at directions ``(az, el)``.

    Args:
        order: maximum degree ``N >= 0``.
        az, el: azimuth and elevation in radians, any broadcastable shapes (tensors, arrays or floats).
        normalization: ``"sn3d"`` (default), ``"n3d"`` or ``"orthonormal"``.

    Returns:
        ``(..., (N + 1)^2)`` in ACN order; float64 unless ``az`` is a floating tensor, whose dtype is
        kept. Evaluated in float64 by the standard three-term Legendre recursion (accurate to about
        1e-12 up to order 20).
    """
    order = _check_order(order)
    _check_normalization(normalization)
    out_dtype = az.dtype if isinstance(az, torch.Tensor) and az.is_floating_point() else torch.float64
    az = torch.as_tensor(az, dtype=torch.float64)
    el = torch.as_tensor(el, dtype=torch.float64, device=az.device)
    az, el = torch.broadcast_tensors(az, el)
    # P_l^m argument and (1 - x^2)^(1/2), signed: an elevation past a pole (|el| > pi/2) gets the
    # harmonics of its true direction (az + pi, +-pi - el), as directions_to_vectors reads it.
    x, s = torch.sin(el), torch.cos(el)
    # legendre[(l, m)] = P_l^m(x) for 0 <= m <= l <= order.
    legendre: dict[tuple[int, int], torch.Tensor] = {}
    p_mm = torch.ones_like(x)
    for m in range(order + 1):
        if m > 0:
            p_mm = p_mm * (2 * m - 1) * s
        legendre[(m, m)] = p_mm
        if m + 1 <= order:
            legendre[(m + 1, m)] = x * (2 * m + 1) * p_mm
        for deg in range(m + 2, order + 1):
            legendre[(deg, m)] = ((2 * deg - 1) * x * legendre[(deg - 1, m)]
                                  - (deg + m - 1) * legendre[(deg - 2, m)]) / (deg - m)
    columns = []
    for deg in range(order + 1):
        for m in range(-deg, deg + 1):
            k = abs(m)
            trig = torch.cos(k * az) if m >= 0 else torch.sin(k * az)
            columns.append(_sn3d_factor(deg, k) * legendre[(deg, k)] * trig)
    y = torch.stack(columns, dim=-1)
    if normalization != "sn3d":
        y = y * normalization_gains(order, "sn3d", normalization).to(y.device)
    return y.to(out_dtype)
