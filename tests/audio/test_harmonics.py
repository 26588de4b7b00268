import math

import numpy as np
import pytest
import torch

from sphsal.audio.harmonics import (
    acn_degrees,
    normalization_gains,
    num_channels,
    order_from_channels,
    sh_matrix,
)
from sphsal.sphere import directions_to_vectors, vectors_to_directions


def _random_directions(n, seed=0):
    rng = np.random.default_rng(seed)
    az = torch.as_tensor(rng.uniform(-math.pi, math.pi, n))
    el = torch.as_tensor(np.arcsin(rng.uniform(-1, 1, n)))
    return az, el


def _quadrature(order):
    """Gauss-Legendre in sin(el) x uniform azimuth grid, exact for products of degree <= 2 * order."""
    nodes, weights = np.polynomial.legendre.leggauss(order + 2)
    n_az = 2 * order + 3
    el = torch.as_tensor(np.repeat(np.arcsin(nodes), n_az))
    az = torch.as_tensor(np.tile(np.arange(n_az) * 2 * math.pi / n_az, order + 2))
    w = torch.as_tensor(np.repeat(weights, n_az) * 2 * math.pi / n_az)
    return az, el, w


def test_first_order_sn3d_gains():
    az, el = _random_directions(50)
    expected = torch.stack((torch.ones_like(az), torch.sin(az) * torch.cos(el), torch.sin(el),
                            torch.cos(az) * torch.cos(el)), dim=-1)
    torch.testing.assert_close(sh_matrix(1, az, el), expected, rtol=0, atol=1e-14)


def test_second_order_sn3d_closed_forms():
    az, el = _random_directions(50, seed=1)
    r3 = math.sqrt(3) / 2
    expected = torch.stack((
        r3 * torch.cos(el) ** 2 * torch.sin(2 * az),
        r3 * torch.sin(2 * el) * torch.sin(az),
        (3 * torch.sin(el) ** 2 - 1) / 2,
        r3 * torch.sin(2 * el) * torch.cos(az),
        r3 * torch.cos(el) ** 2 * torch.cos(2 * az),
    ), dim=-1)
    torch.testing.assert_close(sh_matrix(2, az, el)[:, 4:], expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("normalization", ["sn3d", "n3d", "orthonormal"])
def test_orthogonality_up_to_order_4(normalization):
    order = 4
    az, el, w = _quadrature(order)
    y = sh_matrix(order, az, el, normalization)
    gram = (y * w[:, None]).T @ y
    # After rescaling to orthonormal the Gram matrix on the sphere is the identity.
    scale = normalization_gains(order, normalization, "orthonormal")
    torch.testing.assert_close(gram * scale[:, None] * scale[None, :], torch.eye(num_channels(order),
                               dtype=torch.float64), rtol=0, atol=1e-12)
    degree = acn_degrees(order).to(torch.float64)
    expected_diag = {"sn3d": 4 * math.pi / (2 * degree + 1), "n3d": torch.full_like(degree, 4 * math.pi),
                     "orthonormal": torch.ones_like(degree)}[normalization]
    torch.testing.assert_close(torch.diagonal(gram), expected_diag, rtol=1e-12, atol=0)


def test_shapes_dtypes_and_broadcasting():
    assert sh_matrix(3, 0.1, 0.2).shape == (16,)
    assert sh_matrix(2, torch.zeros(5, 7), torch.zeros(1, 7)).shape == (5, 7, 9)
    assert sh_matrix(1, torch.zeros(3, dtype=torch.float32), 0.0).dtype == torch.float32
    assert sh_matrix(1, np.zeros(3), np.zeros(3)).dtype == torch.float64
    # W is 1 everywhere in SN3D; N3D W is 1 too, orthonormal W is 1/sqrt(4 pi).
    assert float(sh_matrix(3, 1.0, -0.4, "orthonormal")[0]) == pytest.approx(1 / math.sqrt(4 * math.pi))


def test_channel_bookkeeping():
    assert [num_channels(n) for n in range(4)] == [1, 4, 9, 16]
    assert [order_from_channels(c) for c in (1, 2, 4, 5, 9, 16, 0)] == [0, None, 1, None, 2, 3, None]
    assert acn_degrees(2).tolist() == [0, 1, 1, 1, 2, 2, 2, 2, 2]
    torch.testing.assert_close(normalization_gains(3, "n3d", "sn3d") * normalization_gains(3, "sn3d", "n3d"),
                               torch.ones(16, dtype=torch.float64))


def test_bad_arguments():
    with pytest.raises(ValueError, match="order"):
        sh_matrix(-1, 0.0, 0.0)
    with pytest.raises(ValueError, match="normalization"):
        sh_matrix(1, 0.0, 0.0, "fuma")


@pytest.mark.parametrize("el", [2.0, -1.9, 3.0])
def test_elevation_past_a_pole_gives_the_harmonics_of_its_true_direction(el):
    # (az, el) with |el| > pi/2 is the direction (az + pi, +-pi - el): as
    # sphere.directions_to_vectors reads it, and as the documented first-order gains say.
    az = 0.7
    true_az, true_el = vectors_to_directions(directions_to_vectors(torch.tensor(az, dtype=torch.float64),
                                                                   torch.tensor(el, dtype=torch.float64)))
    torch.testing.assert_close(sh_matrix(3, az, el), sh_matrix(3, true_az, true_el), rtol=0, atol=1e-12)
    first = [1.0, math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)]
    torch.testing.assert_close(sh_matrix(1, az, el), torch.tensor(first, dtype=torch.float64), rtol=0,
                               atol=1e-12)
