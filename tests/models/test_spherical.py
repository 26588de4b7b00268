"""make_spherical: the video baselines' pools and upsampling on the sphere (sphsal/models/spherical.py)."""

import warnings

import pytest
import torch
from torch import nn

from sphsal.models.spherical import BilinearUpsample, EquirectMaxPool3d, make_spherical
from sphsal.nn import SphericalConv3d


def _net():
    return nn.Sequential(nn.Conv3d(2, 2, 3, padding=1), nn.MaxPool3d(3, (1, 2, 2), 1), BilinearUpsample(2))


def test_padded_pools_and_upsampling_become_spherical():
    model = make_spherical(_net())
    assert isinstance(model[0], SphericalConv3d) and isinstance(model[1], EquirectMaxPool3d) and model[2].erp
    x = torch.randn(1, 2, 3, 8, 16)
    assert model(x).shape == (1, 2, 3, 8, 16)


def test_layers_named_in_keep_planar_are_left_alone():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = make_spherical(_net(), keep_planar=("1", "2"))
    assert isinstance(model[0], SphericalConv3d)
    assert type(model[1]) is nn.MaxPool3d and not model[2].erp


@pytest.mark.parametrize("pool,match", [
    (nn.MaxPool3d(3, 2, 1, ceil_mode=True), "ceil_mode"),
    (nn.MaxPool3d(3, 1, 1, dilation=2), "dilation"),
    (nn.MaxPool3d(3, 1, (1, 1, 0)), r"spatial padding \(1, 1, 0\) differs"),
])
def test_pools_without_a_spherical_twin_stay_planar_with_a_warning(pool, match):
    """Checked before anything is replaced: unequal padding no longer fails after the convolutions
    were converted (a half-converted model), and ceil_mode / dilation are not silently dropped."""
    model = nn.Sequential(nn.Conv3d(2, 2, 3, padding=1), pool)
    with pytest.warns(UserWarning, match=rf"'1' \(MaxPool3d\) planar: .*{match}"):
        make_spherical(model)
    assert model[1] is pool and isinstance(model[0], SphericalConv3d)
