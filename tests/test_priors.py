import math

import pytest
import torch

from sphsal.priors import center_bias, equator_bias
from sphsal.sphere import equirect_directions


def test_equator_bias_peak_and_shape():
    h, w = 64, 128
    bias = equator_bias(h, w)
    assert bias.shape == (h, w) and bias.dtype == torch.float32
    assert float(bias.max()) == 1.0
    rows, cols = torch.nonzero(bias == bias.max(), as_tuple=True)
    assert set(rows.tolist()) == {h // 2 - 1, h // 2} and set(cols.tolist()) == {w // 2 - 1, w // 2}
    torch.testing.assert_close(bias, bias.flip(0))  # symmetric about the equator
    torch.testing.assert_close(bias, bias.flip(1))  # and about the front meridian


def test_equator_bias_gaussian_widths_and_seam():
    h, w = 90, 180
    bias = equator_bias(h, w, dtype=torch.float64)
    az, el = equirect_directions(h, w, dtype=torch.float64)
    expected = torch.exp(-el ** 2 / (2 * math.radians(15) ** 2) - az ** 2 / (2 * math.radians(75) ** 2))
    torch.testing.assert_close(bias, expected / expected.max())
    # Continuous across +-180 deg: the two seam columns are equal, and the back is the minimum.
    torch.testing.assert_close(bias[:, 0], bias[:, -1])
    narrow = equator_bias(h, w, sigma_el=math.radians(5), sigma_az=math.radians(20))
    assert float(narrow.sum()) < float(equator_bias(h, w).sum())


def test_center_bias():
    bias = center_bias(30, 40, sigma=0.2)
    assert bias.shape == (30, 40) and float(bias.max()) == 1.0
    torch.testing.assert_close(bias, bias.flip(0))
    torch.testing.assert_close(bias, bias.flip(1))
    # One sigma from the centre along the height: exp(-1/2) relative to the centre row.
    tall = center_bias(5, 1, sigma=0.2, dtype=torch.float64)  # row centres at -0.4 .. 0.4
    assert float(tall[3, 0]) == pytest.approx(math.exp(-0.5), rel=1e-9)


def test_bad_sigmas():
    with pytest.raises(ValueError, match="sigma_el"):
        equator_bias(8, 16, sigma_el=0.0)
    with pytest.raises(ValueError, match="sigma"):
        center_bias(8, 16, sigma=-1)


def test_bad_sizes_and_dtypes_are_named():
    # An integer dtype truncated the map to 0/1 silently; a bool or None size passed (True -> one row)
    # or failed inside int().
    for bias in (equator_bias, center_bias):
        with pytest.raises(ValueError, match=r"dtype must be a floating torch dtype .*torch.int64"):
            bias(8, 16, dtype=torch.int64)
        for h in (True, None, 0, 2.5):
            with pytest.raises(ValueError, match=r"h must be an integer >= 1, got|got h="):
                bias(h, 16)
    assert center_bias(8.0, 16).shape == equator_bias(8.0, 16).shape == (8, 16)

