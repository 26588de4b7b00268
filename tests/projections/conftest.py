"""Shared fixtures for the projection tests: a smooth analytic function of direction."""

import pytest
import torch

from sphsal.sphere import directions_to_vectors, equirect_directions


def _analytic(v: torch.Tensor) -> torch.Tensor:
    """f = x + 2y + 3z^2 of the unit vector of ``v`` (``(..., 3)``, need not be unit length)."""
    v = v / v.norm(dim=-1, keepdim=True)
    return v[..., 0] + 2 * v[..., 1] + 3 * v[..., 2] ** 2


@pytest.fixture
def analytic():
    return _analytic


@pytest.fixture
def analytic_erp():
    """``(h, w) -> (1, 1, h, w)`` float64 ERP image of the analytic function at pixel centres."""

    def make(h, w):
        az, el = equirect_directions(h, w, dtype=torch.float64)
        return _analytic(directions_to_vectors(az, el))[None, None]

    return make

