"""Fixed saliency priors on ERP and planar images.

``equator_bias`` is AVS360's equator centre bias (ECB): a separable Gaussian on the sphere centred on
the front of the equator, in elevation times WRAPPED azimuth difference, so it is continuous across the
+-180 deg seam. ``center_bias`` is the usual planar centre bias of 2D saliency models. Angles in radians.
"""

from __future__ import annotations

import math

import torch

from sphsal._checks import check_integer, check_number
from sphsal.sphere import check_float_dtype, equirect_directions

__all__ = ["equator_bias", "center_bias"]


def equator_bias(h: int, w: int, sigma_el: float = math.radians(15.0), sigma_az: float = math.radians(75.0),
                 *, dtype=None, device=None) -> torch.Tensor:
    """Equator centre bias ``(H, W)`` on an ERP grid (:mod:`sphsal.sphere` pixel centres).

    ``exp(-el^2 / (2 sigma_el^2)) * exp(-daz^2 / (2 sigma_az^2))`` with ``daz`` the azimuth wrapped
    into ``(-pi, pi]`` (front = 0), divided by its maximum so the peak (at the pixels nearest the front
    of the equator) is exactly 1. ``sigma_el``, ``sigma_az`` in radians (defaults 15 and 75 degrees, as
    in AVS360). ``dtype`` must be a floating dtype (default: torch's default dtype).
    """
    sigma_el, sigma_az = check_number(sigma_el, "sigma_el"), check_number(sigma_az, "sigma_az")
    check_float_dtype(dtype)
    az, el = equirect_directions(h, w, dtype=torch.float64, device=device)
    daz = torch.remainder(az + math.pi, 2 * math.pi) - math.pi
    bias = torch.exp(-0.5 * (el / sigma_el) ** 2 - 0.5 * (daz / sigma_az) ** 2)
    return (bias / bias.max()).to(dtype or torch.get_default_dtype())


def center_bias(h: int, w: int, sigma: float = 0.25, *, dtype=None, device=None) -> torch.Tensor:
    """Planar centre bias ``(H, W)``: a Gaussian centred on the image centre, peak exactly 1.

    ``sigma`` is a fraction of each side (the image spans [0, 1] along both axes, so the Gaussian is
    stretched with the aspect ratio); pixel centres at ``(i + 0.5) / H`` and ``(j + 0.5) / W``.
    ``dtype`` must be a floating dtype (default: torch's default dtype).
    """
    sigma = check_number(sigma, "sigma")
    h, w = check_integer(h, "h", whole_floats=True), check_integer(w, "w", whole_floats=True)
    check_float_dtype(dtype)
    y = (torch.arange(h, dtype=torch.float64, device=device) + 0.5) / h - 0.5
    x = (torch.arange(w, dtype=torch.float64, device=device) + 0.5) / w - 0.5
    bias = torch.exp(-0.5 * (y[:, None] / sigma) ** 2 - 0.5 * (x[None, :] / sigma) ** 2)
    return (bias / bias.max()).to(dtype or torch.get_default_dtype())
