"""Ambisonic signals: checking, encoding, FuMa <-> ambiX, normalisation changes and rotation.

Signals are ``(channels, samples)`` in ACN order, SN3D (ambiX) unless a function says otherwise.
Functions accept numpy arrays or torch tensors and return the same kind (float32 stays float32).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sphsal._checks import check_integer
from sphsal.audio._signal import as_signal, like_input
from sphsal.audio.harmonics import acn_degrees, normalization_gains, order_from_channels, sh_matrix
from sphsal.sphere import directions_to_vectors, rotation_matrix, vectors_to_directions

__all__ = [
    "require_ambisonic",
    "require_ambisonic_channels",
    "encode",
    "fuma_to_ambix",
    "ambix_to_fuma",
    "convert_normalization",
    "sh_rotation_matrix",
    "rotate",
]


def require_ambisonic(b, name: str = "b", path=None) -> int:
    """Check that ``b`` ``(channels, samples)`` is an ambisonic signal and return its order (>= 1).

    Raises ``ValueError`` that names ``path`` (when given) or the argument ``name`` and says what the
    audio is instead: mono (1 channel), stereo (2 channels), or a channel count that is not
    ``(N + 1)^2`` with ``N >= 1``.
    """
    shape = tuple(b.shape) if hasattr(b, "shape") else np.shape(b)
    where = f"audio file '{path}'" if path is not None else f"argument '{name}'"
    if len(shape) != 2:
        raise ValueError(f"{where}: expected ambisonic audio of shape (channels, samples), got shape {shape}")
    return require_ambisonic_channels(shape[0], where)


def require_ambisonic_channels(channels: int, where: str) -> int:
    """The ambisonic order (>= 1) of a ``channels``-channel signal, or the ``ValueError`` of
    :func:`require_ambisonic` prefixed with ``where`` (e.g. ``"audio file '<path>'"``). Lets a file be
    checked from its probed channel count, before decoding it."""
    order = order_from_channels(channels)
    if order is not None and order >= 1:
        return order
    kind = {1: "mono (1 channel)", 2: "stereo (2 channels)"}.get(channels, f"{channels}-channel audio")
    raise ValueError(
        f"{where}: the audio is {kind}, not ambisonic; an ambisonic (ambiX) field needs (N+1)^2 channels "
        f"(4 for first order, 9, 16, ...)")


def encode(signal, az, el, order: int = 1, normalization: str = "sn3d"):
    """Encode a mono source into an ambisonic field.

    Args:
        signal: ``(samples,)`` mono signal.
        az, el: source direction in radians (:mod:`sphsal.sphere` conventions): floats for a fixed
            source, or ``(samples,)`` arrays for a moving one.
        order: ambisonic order ``N``.
        normalization: ``"sn3d"`` (ambiX, default), ``"n3d"`` or ``"orthonormal"``.

    Returns:
        ``((N + 1)^2, samples)``, same kind and dtype as ``signal``: ``Y(az, el)[:, None] * signal``.
        First order SN3D gains are ``[1, sin az cos el, sin el, cos az cos el]``.
    """
    s = as_signal(signal, "signal", ndim=1)
    az_t = torch.as_tensor(np.asarray(az, dtype=np.float64) if not isinstance(az, torch.Tensor) else az)
    el_t = torch.as_tensor(np.asarray(el, dtype=np.float64) if not isinstance(el, torch.Tensor) else el)
    for name, t in (("az", az_t), ("el", el_t)):
        if t.dim() > 1 or (t.dim() == 1 and t.shape[0] != s.shape[0]):
            raise ValueError(f"{name} must be a scalar or have shape ({s.shape[0]},) like signal, "
                             f"got shape {tuple(t.shape)}")
    gains = sh_matrix(order, az_t.to(torch.float64), el_t.to(torch.float64), normalization)
    out = (gains.T if gains.dim() == 2 else gains[:, None]) * s.to(torch.float64)
    return like_input(out.to(s.dtype), signal)


def _first_order(b, name: str) -> torch.Tensor:
    t = as_signal(b, name)
    if t.shape[0] != 4:
        raise ValueError(f"{name} must be first-order ambisonics with 4 channels, got {t.shape[0]} channels")
    return t


def fuma_to_ambix(b):
    """First-order FuMa ``(W, X, Y, Z)`` with ``W`` scaled by ``1/sqrt(2)`` -> ambiX ``(W, Y, Z, X)``
    SN3D, i.e. ``[sqrt(2) W, Y, Z, X]``. ``b``: ``(4, samples)``; same kind returned."""
    t = _first_order(b, "b")
    w, x, y, z = t.unbind(0)
    return like_input(torch.stack((w * math.sqrt(2.0), y, z, x)), b)


def ambix_to_fuma(b):
    """Inverse of :func:`fuma_to_ambix`: ambiX ``(W, Y, Z, X)`` -> FuMa ``[W / sqrt(2), X, Y, Z]``."""
    t = _first_order(b, "b")
    w, y, z, x = t.unbind(0)
    return like_input(torch.stack((w / math.sqrt(2.0), x, y, z)), b)


def convert_normalization(b, source: str, target: str):
    """Rescale an ACN field ``(channels, samples)`` from ``source`` to ``target`` normalisation
    (``"sn3d"``, ``"n3d"``, ``"orthonormal"``); same kind returned."""
    t = as_signal(b, "b")
    order = require_ambisonic(t, "b")
    gains = normalization_gains(order, source, target).to(t.dtype)
    return like_input(t * gains[:, None], b)


def sh_rotation_matrix(order: int, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> torch.Tensor:
    """Matrix ``M`` ``((N+1)^2, (N+1)^2)`` float64 with ``Y(R d) = M Y(d)`` for every direction ``d``.

    ``R = sphere.rotation_matrix(yaw, pitch, roll)``. ``M`` is block diagonal (one block per degree) and
    the same for SN3D, N3D and orthonormal harmonics (they differ by one factor per degree). It is the
    exact projection ``M = sum_i w_i Y(R d_i) Y(d_i)^T`` of orthonormal harmonics on a Gauss-Legendre
    (in sin el, ``N + 1`` nodes) x uniform (``2N + 2`` azimuths) grid, which integrates the degree-2N
    products exactly; rounding leaves errors near 1e-15. ``order``: a non-negative integer
    (``ValueError`` naming it otherwise).
    """
    order = check_integer(order, "order", minimum=0, whole_floats=True)
    n_el, n_az = order + 1, 2 * order + 2
    nodes, weights = np.polynomial.legendre.leggauss(n_el)
    el = torch.as_tensor(np.arcsin(nodes), dtype=torch.float64)
    az = torch.arange(n_az, dtype=torch.float64) * (2 * math.pi / n_az)
    el_grid, az_grid = torch.meshgrid(el, az, indexing="ij")
    w = (torch.as_tensor(weights, dtype=torch.float64)[:, None] * (2 * math.pi / n_az)).expand(n_el, n_az)
    rot = rotation_matrix(yaw, pitch, roll)
    rot_az, rot_el = vectors_to_directions(directions_to_vectors(az_grid, el_grid) @ rot.T)
    y = sh_matrix(order, az_grid, el_grid, "orthonormal").reshape(-1, (order + 1) ** 2)
    y_rot = sh_matrix(order, rot_az, rot_el, "orthonormal").reshape(-1, (order + 1) ** 2)
    m = (y_rot * w.reshape(-1, 1)).T @ y
    degree = acn_degrees(order)
    return m * (degree[:, None] == degree[None, :])


def rotate(b, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0):
    """Rotate an ambisonic field ``(channels, samples)`` (any order, ACN; SN3D, N3D or orthonormal).

    A source at direction ``d`` moves to ``R d`` with ``R = sphere.rotation_matrix(yaw, pitch, roll)``,
    exactly as :func:`sphsal.sphere.rotate_equirect` moves image content, so rotating a video and its
    audio by the same angles keeps them aligned. Angles in radians; same kind and dtype returned.
    """
    t = as_signal(b, "b")
    order = require_ambisonic(t, "b")
    m = sh_rotation_matrix(order, yaw, pitch, roll)
    return like_input((m @ t.to(torch.float64)).to(t.dtype), b)
