"""ERP <-> HEALPix: healpy's geometry, the az/el mapping, analytic accuracy, round trips, gradients."""

import math

import healpy
import numpy as np
import pytest
import torch

from sphsal.projections import equirect_to_healpix, healpix_directions, healpix_to_equirect
from sphsal.sphere import directions_to_vectors


def _healpy_vectors(nside, nest=True):
    return torch.from_numpy(np.stack(healpy.pix2vec(nside, np.arange(12 * nside * nside), nest=nest), -1))


@pytest.mark.parametrize("nest", [True, False])
def test_directions_agree_with_healpy(nest):
    az, el = healpix_directions(8, nest=nest)
    torch.testing.assert_close(directions_to_vectors(az, el), _healpy_vectors(8, nest), atol=1e-12, rtol=0)
    assert az.min() > -math.pi and az.max() <= math.pi


def test_known_directions_land_in_known_pixels():
    # healpy phi = sphsal azimuth (counter-clockwise, towards the left), el = pi/2 - theta.
    nside = 16
    az, el = healpix_directions(nside)
    for vec, want_az, want_el in [((1, 0, 0), 0.0, 0.0), ((0, 1, 0), math.pi / 2, 0.0),
                                  ((0, -1, 0), -math.pi / 2, 0.0), ((0, 0, 1), None, math.pi / 2)]:
        pix = healpy.vec2pix(nside, *vec, nest=True)
        assert el[pix].item() == pytest.approx(want_el, abs=0.06)
        if want_az is not None:
            assert az[pix].item() == pytest.approx(want_az, abs=0.06)


def test_front_of_the_erp_lands_in_the_front_pixel():
    # The four ERP pixels around the front (centre column) feed the HEALPix pixel containing +x.
    x = torch.zeros(1, 1, 32, 64, dtype=torch.float64)
    x[..., 15:17, 31:33] = 1.0
    maps = equirect_to_healpix(x, 8)[0, 0]
    # +x is a HEALPix pixel corner: the brightest pixels are those around it, within one resolution.
    az, el = healpix_directions(8)
    brightest = maps > maps.max() - 1e-9
    resolution = healpy.nside2resol(8)
    assert brightest.sum() <= 4 and maps.max() > 0.3
    assert el[brightest].abs().max() < resolution and az[brightest].abs().max() < resolution


@pytest.mark.parametrize("mode,max_err,mean_err", [("bilinear", 5e-3, 1.3e-3), ("nearest", 0.18, 0.055)])
def test_analytic_function_matches_at_pixel_centres(analytic, analytic_erp, mode, max_err, mean_err):
    # Measured 64x128 -> nside 16: bilinear max 3.2e-3 / mean 8.7e-4, nearest max 0.12 / mean 0.036.
    maps = equirect_to_healpix(analytic_erp(64, 128), 16, mode=mode)
    assert maps.shape == (1, 1, 12 * 16 * 16)
    err = (maps[0, 0] - analytic(_healpy_vectors(16))).abs()
    assert err.max() < max_err and err.mean() < mean_err


@pytest.mark.parametrize("mode,max_err,mean_err", [("bilinear", 0.04, 4e-3), ("nearest", 0.34, 0.065)])
def test_healpix_to_equirect_matches_analytic(analytic, analytic_erp, mode, max_err, mean_err):
    # Measured nside 16 -> 64x128: bilinear max 0.026 / mean 2.5e-3, nearest max 0.22 / mean 0.044.
    maps = analytic(_healpy_vectors(16))[None, None]
    err = (healpix_to_equirect(maps, 64, 128, mode=mode) - analytic_erp(64, 128)).abs()
    assert err.max() < max_err and err.mean() < mean_err


def test_nearest_reads_the_pixel_healpy_names():
    nside = 4
    maps = torch.arange(12 * nside * nside, dtype=torch.float64)[None, None]
    out = healpix_to_equirect(maps, 8, 16, nest=False, mode="nearest")[0, 0]
    theta = (np.arange(8) + 0.5) / 8 * np.pi
    phi = np.mod(np.pi - (np.arange(16) + 0.5) / 16 * 2 * np.pi, 2 * np.pi)
    expected = healpy.ang2pix(nside, *np.meshgrid(theta, phi, indexing="ij"), nest=False)
    np.testing.assert_array_equal(out.numpy(), expected)


def test_round_trip_on_a_smooth_image(analytic_erp):
    # Measured 64x128 -> nside 32 -> 64x128, bilinear: max 0.0147, mean 0.0013.
    x = analytic_erp(64, 128)
    err = (healpix_to_equirect(equirect_to_healpix(x, 32), 64, 128) - x).abs()
    assert err.max() < 0.02 and err.mean() < 0.002


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="nside"):
        equirect_to_healpix(torch.rand(1, 1, 8, 16), 3)
    with pytest.raises(ValueError, match="12 nside"):
        healpix_to_equirect(torch.rand(1, 1, 100), 8, 16)
    with pytest.raises(ValueError, match="x has 0 pixels"):  # was "nside must be ... got 0"
        healpix_to_equirect(torch.rand(1, 1, 0), 8, 16)
    with pytest.raises(ValueError, match="x must be"):
        healpix_to_equirect(torch.rand(1, 192), 8, 16)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_gradients_flow(mode):
    x = torch.rand(1, 2, 4, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: equirect_to_healpix(t, 1, mode=mode), (x,))
    maps = torch.rand(1, 2, 48, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: healpix_to_equirect(t, 4, 8, mode=mode), (maps,))
