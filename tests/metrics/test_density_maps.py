"""Tests of sphsal.metrics.density (fixation_map, density_from_fixations, SIGMA)."""

import math

import metrics_numpy_reference as ref
import numpy as np
import pytest
import torch

from sphsal.metrics import SIGMA, density_from_fixations, fixation_map
from sphsal.sphere import equirect_directions, great_circle_distance, solid_angle_weights

H, W = 32, 64


@pytest.fixture
def directions():
    gen = torch.Generator().manual_seed(3)
    n = 25
    az = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
    el = torch.asin(torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1)
    d = torch.stack((az, el), dim=1)
    # near the north pole, on the south pole, straddling the seam
    d[:3] = torch.tensor([[0.4, math.pi / 2 - 0.02], [1.0, -math.pi / 2], [math.pi - 0.01, 0.2]])
    return d


def test_sigma_presets():
    assert SIGMA == {"salient360-headeye": 2.0, "salient360-head": 3.34, "pvs-hm": 7.0, "eccv18": 9.0}


@pytest.mark.parametrize("sigma", [3.34, 9.0, 30.0])
def test_numba_matches_torch_and_numpy_references(directions, sigma):
    fast = density_from_fixations(directions, H, W, sigma, norm="sum", dtype=torch.float64)
    slow = density_from_fixations(directions, H, W, sigma, norm="sum", backend="torch", dtype=torch.float64)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-15)
    dense = ref.density(directions.numpy(), H, W, math.radians(sigma), 4 * math.radians(sigma))
    np.testing.assert_allclose(fast.numpy(), dense / dense.sum(), rtol=1e-9, atol=1e-15)


def test_single_fixation_is_a_gaussian_of_great_circle_distance():
    d = torch.tensor([[0.3, 0.5]], dtype=torch.float64)
    sigma = math.radians(7.0)
    raw = density_from_fixations(d, H, W, 7.0, norm="sum", dtype=torch.float64, truncate=100)
    az, el = equirect_directions(H, W, dtype=torch.float64)
    expected = torch.exp(-great_circle_distance(az, el, 0.3, 0.5) ** 2 / (2 * sigma**2))
    torch.testing.assert_close(raw, expected / expected.sum(), rtol=1e-10, atol=1e-15)


def test_truncation_radius():
    d = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    out = density_from_fixations(d, H, W, 9.0, truncate=2.0)
    az, el = equirect_directions(H, W, dtype=torch.float64)
    dist = great_circle_distance(az, el, 0.0, 0.0)
    assert (out[dist > math.radians(18.0)] == 0).all()
    assert (out[dist <= math.radians(18.0)] > 0).all()


def test_normalisations(directions):
    dens = density_from_fixations(directions, H, W, 3.34, dtype=torch.float64)
    area = solid_angle_weights(H, W, dtype=torch.float64)
    assert (dens * area).sum().item() == pytest.approx(1.0, abs=1e-12)
    plain = density_from_fixations(directions, H, W, 3.34, norm="sum", dtype=torch.float64)
    assert plain.sum().item() == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(plain / plain.max(), dens / dens.max())
    assert density_from_fixations(directions, H, W, 3.34).dtype == torch.float32


def test_rolls_with_the_fixations(directions):
    base = density_from_fixations(directions, H, W, 7.0, dtype=torch.float64)
    for k in (1, 5, -13):
        moved = directions.clone()
        moved[:, 0] += k * 2 * math.pi / W  # content moves left = towards lower column indices
        out = density_from_fixations(moved, H, W, 7.0, dtype=torch.float64)
        torch.testing.assert_close(out, torch.roll(base, -k, dims=-1), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sigma", [7.0, 30.0])
def test_azimuths_beyond_pi_wrap(directions, sigma):
    base = density_from_fixations(directions, H, W, sigma, dtype=torch.float64)
    for turns in (2, -3):
        moved = directions.clone()
        moved[:, 0] += turns * 2 * math.pi
        for backend in ("numba", "torch"):
            out = density_from_fixations(moved, H, W, sigma, dtype=torch.float64, backend=backend)
            torch.testing.assert_close(out, base, rtol=1e-9, atol=1e-12)


def test_round_cap_at_the_pole():
    for el in (math.pi / 2, -math.pi / 2):
        d = torch.tensor([[1.234, el]], dtype=torch.float64)
        out = density_from_fixations(d, H, W, 20.0, norm="sum", dtype=torch.float64)
        # values depend only on the elevation: every row is constant
        torch.testing.assert_close(out, out[:, :1].expand(H, W), rtol=1e-12, atol=1e-15)
        rows = equirect_directions(H, W, dtype=torch.float64)[1][:, 0]
        profile = torch.exp(-((el - rows) ** 2) / (2 * math.radians(20.0) ** 2))
        profile = torch.where((el - rows).abs() <= math.radians(80.0), profile, 0.0)
        torch.testing.assert_close(out[:, 0] / out[:, 0].max(), profile / profile.max(),
                                   rtol=1e-9, atol=1e-15)


def test_symmetric_across_the_seam():
    d = torch.tensor([[math.pi, 0.1]], dtype=torch.float64)
    out = density_from_fixations(d, H, W, 9.0, dtype=torch.float64)
    torch.testing.assert_close(out, out.flip(-1), rtol=1e-12, atol=1e-15)
    assert out[:, 0].max() == out.max()


def test_fixation_map():
    d = torch.tensor([[0.01, 0.01], [-math.pi - 0.1, -0.2], [-math.pi + 0.1, 0.3], [1.0, math.pi / 2],
                      [-1.0, -math.pi / 2], [-1.0, -math.pi / 2]])
    fmap = fixation_map(d, 8, 16)
    assert fmap.dtype == torch.bool and fmap.shape == (8, 16)
    expected = torch.zeros(8, 16, dtype=torch.bool)
    # nearest pixel centres: beyond -pi wraps to column 0, the poles land on the first / last row
    for r, c in [(3, 7), (4, 0), (3, 15), (0, 5), (7, 10)]:
        expected[r, c] = True
    assert torch.equal(fmap, expected)
    assert not fixation_map(torch.zeros(0, 2), 8, 16).any()


def test_bad_inputs():
    d = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="directions is empty"):
        density_from_fixations(torch.zeros(0, 2), H, W, 3.0)
    with pytest.raises(ValueError, match="sigma_deg"):
        density_from_fixations(d, H, W, 0.0)
    with pytest.raises(ValueError, match=r"directions must be \(N, 2\)"):
        density_from_fixations(torch.zeros(3, 3), H, W, 3.0)
    with pytest.raises(ValueError, match="directions contains NaN"):
        density_from_fixations(torch.tensor([[0.0, float("nan")]]), H, W, 3.0)
    with pytest.raises(ValueError, match="norm"):
        density_from_fixations(d, H, W, 3.0, norm="max")
    with pytest.raises(ValueError, match="backend"):
        density_from_fixations(d, H, W, 3.0, backend="cuda")
    with pytest.raises(ValueError, match="ERP size"):
        fixation_map(d, 0, 16)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_elevations_outside_the_sphere_are_rejected(backend):
    # elevation 45 (degrees by mistake) gave all NaN on one backend and a finite map on the other
    for d in ([[0.0, 45.0]], [[0.1, -1.6]]):
        with pytest.raises(ValueError, match=r"directions has elevations outside \[-pi/2, pi/2\] radians"):
            density_from_fixations(torch.tensor(d), H, W, 5.0, backend=backend)
    with pytest.raises(ValueError, match="directions has elevations outside"):
        fixation_map(torch.tensor([[0.0, 45.0]]), 8, 16)  # used to land silently on the pole
    # float32 roundings of the poles are the poles
    pole = torch.tensor([[0.3, math.pi / 2], [0.0, -math.pi / 2]], dtype=torch.float32)
    out = density_from_fixations(pole, H, W, 5.0, backend=backend, dtype=torch.float64)
    assert torch.isfinite(out).all() and out[0].sum() > 0 and out[-1].sum() > 0


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_no_pixel_within_the_truncation_radius_is_an_error(backend):
    # these gave an all-NaN map (0 / 0 normalisation)
    for h, w, sigma, truncate in ((8, 16, 2.0, 4.0), (32, 64, 2.0, 1.0)):
        with pytest.raises(ValueError, match="density is zero at every pixel centre.*larger sigma_deg"):
            density_from_fixations(torch.zeros(1, 2), h, w, sigma, truncate=truncate, backend=backend)
    assert torch.isfinite(density_from_fixations(torch.zeros(1, 2), 32, 64, 2.0, backend=backend)).all()


def test_options_are_checked():
    d = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="dtype must be a floating torch dtype"):
        density_from_fixations(d, H, W, 5.0, dtype=torch.int64)  # truncated the density to integers
    with pytest.raises(ValueError, match="sigma_deg must be a finite number > 0, got '5'"):
        density_from_fixations(d, H, W, "5")
    with pytest.raises(ValueError, match="truncate must be a number > 0, got nan"):
        density_from_fixations(d, H, W, 5.0, truncate=float("nan"))
    assert density_from_fixations(d, H, W, 5.0, truncate=float("inf")).sum() > 0  # no truncation
