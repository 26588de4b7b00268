"""ERP <-> perspective viewports: viewing direction, analytic accuracy, seam and poles, masks, gradients."""

import math

import pytest
import torch

from sphsal.projections import equirect_to_perspective, perspective_to_equirect, perspective_vectors
from sphsal.sphere import rotation_matrix, vectors_to_directions

FOV = math.radians(90)


@pytest.mark.parametrize("yaw,pitch,roll", [(0.0, 0.0, 0.0), (math.pi / 2, 0.0, 0.0), (0.4, 0.3, 0.2),
                                             (math.pi, -math.pi / 2, 0.0)])
def test_centre_pixel_looks_along_rotated_front(yaw, pitch, roll):
    v = perspective_vectors(FOV, yaw, pitch, roll, (5, 7))  # odd: pixel (2, 3) is the centre
    front = rotation_matrix(yaw, pitch, roll)[:, 0]
    torch.testing.assert_close(v[2, 3] / v[2, 3].norm(), front)


def test_view_to_the_left_sees_azimuth_90():
    # Azimuth +90 deg is at ERP columns W/4 - 1 and W/4; a view with yaw = pi/2 centres on it.
    x = torch.zeros(1, 1, 16, 32, dtype=torch.float64)
    x[..., 7:9, 7:9] = 1.0
    view = equirect_to_perspective(x, FOV, math.pi / 2, 0.0, out_hw=(6, 6))[0, 0]
    assert view[2:4, 2:4].min() > 0.4 and view.max() == view[2:4, 2:4].max()
    assert equirect_to_perspective(x, FOV, -math.pi / 2, 0.0, out_hw=(6, 6)).max() == 0


def test_image_axes():
    v = perspective_vectors(FOV, 0.0, 0.0, 0.0, (4, 6))
    az, el = vectors_to_directions(v)
    assert az[:, 0].min() > 0 > az[:, -1].max()  # left of the image is positive azimuth
    assert el[0].min() > 0 > el[-1].max()  # top of the image is up
    # Horizontal field of view: the outer pixel edges are at +-45 deg.
    edge = perspective_vectors(FOV, 0.0, 0.0, 0.0, (1, 1_000))[0, -1]
    assert math.degrees(-math.atan2(edge[1], edge[0])) == pytest.approx(45, abs=0.1)


@pytest.mark.parametrize("yaw,pitch", [(0.3, 0.2), (math.pi, 0.0), (0.0, math.pi / 2), (1.0, -math.pi / 2)])
@pytest.mark.parametrize("mode,max_err,mean_err", [("bilinear", 5e-3, 2e-3), ("nearest", 0.17, 0.05)])
def test_analytic_function_matches(analytic, analytic_erp, yaw, pitch, mode, max_err, mean_err):
    # Views centred on the seam (yaw = pi) and on both poles are as accurate as any other. Measured on
    # 64x128 -> 12x16: bilinear max <= 2.9e-3 / mean <= 1.3e-3, nearest max <= 0.114 / mean <= 0.034.
    view = equirect_to_perspective(analytic_erp(64, 128), FOV, yaw, pitch, 0.4, out_hw=(12, 16), mode=mode)
    err = (view[0, 0] - analytic(perspective_vectors(FOV, yaw, pitch, 0.4, (12, 16)))).abs()
    assert err.max() < max_err and err.mean() < mean_err


def test_view_on_seam_and_pole_is_smooth(analytic, analytic_erp):
    # Every step between neighbouring viewport pixels matches the analytic function's step, also
    # where the view crosses the +-180 deg seam or contains a pole.
    x = analytic_erp(64, 128)
    for yaw, pitch in [(math.pi, 0.0), (0.0, math.pi / 2), (2.0, -math.pi / 2)]:
        view = equirect_to_perspective(x, FOV, yaw, pitch, out_hw=(16, 16))[0, 0]
        truth = analytic(perspective_vectors(FOV, yaw, pitch, 0.0, (16, 16)))
        for dim in (0, 1):
            steps, true_steps = view.diff(dim=dim), truth.diff(dim=dim)
            assert (steps - true_steps).abs().max() < 0.01


def test_paste_back_covers_the_view_and_matches(analytic, analytic_erp):
    # Measured 48x64 view -> 64x128 ERP (yaw 0.3, pitch 0.2, roll 0.4): max 0.022, mean 3.4e-4 inside.
    view = analytic(perspective_vectors(FOV, 0.3, 0.2, 0.4, (48, 64)))[None, None]
    erp, mask = perspective_to_equirect(view, FOV, 0.3, 0.2, 0.4, 64, 128)
    assert mask.shape == (64, 128) and set(mask.unique().tolist()) == {0.0, 1.0}
    # A 90 x 67.5 deg view, measured: 797 of the 8192 ERP pixels.
    assert 600 < mask.sum() < 1000
    assert erp[..., mask == 0].abs().max() == 0
    err = ((erp - analytic_erp(64, 128)) * mask).abs()
    assert err.max() < 0.03 and err.sum() / mask.sum() < 5e-4


def test_paste_back_mask_follows_the_view():
    _, front = perspective_to_equirect(torch.ones(1, 1, 8, 8), FOV, 0.0, 0.0, 0.0, 32, 64)
    assert front[16, 32] == 1 and front[16, 0] == 0  # centre column is the front, column 0 the back
    _, back = perspective_to_equirect(torch.ones(1, 1, 8, 8), FOV, math.pi, 0.0, 0.0, 32, 64)
    assert back[16, 0] == 1 and back[16, 63] == 1 and back[16, 32] == 0


def test_bad_input_is_named():
    x = torch.rand(1, 1, 8, 16)
    with pytest.raises(ValueError, match="fov"):
        equirect_to_perspective(x, math.pi, 0.0, 0.0)
    with pytest.raises(ValueError, match="out_hw"):
        equirect_to_perspective(x, FOV, 0.0, 0.0, out_hw=(0, 4))
    with pytest.raises(ValueError, match="yaw"):
        equirect_to_perspective(x, FOV, float("nan"), 0.0)
    with pytest.raises(ValueError, match="view must be"):
        perspective_to_equirect(torch.rand(8, 8), FOV, 0.0, 0.0, 0.0, 8, 16)
    # an empty viewport reached grid_sampler ("expected input to have non-empty spatial dimensions")
    with pytest.raises(ValueError, match=r"view must be .* with H, W >= 1, got \(1, 1, 0, 4\)"):
        perspective_to_equirect(torch.rand(1, 1, 0, 4), FOV, 0.0, 0.0, 0.0, 8, 16)
    # perspective_vectors took any out_hw: (0, 4) gave an empty grid, (-1, 4) an error from arange
    with pytest.raises(ValueError, match=r"out_hw\[0\] must be an integer >= 1, got 0"):
        perspective_vectors(FOV, 0.0, 0.0, 0.0, (0, 4))
    with pytest.raises(ValueError, match=r"out_hw\[0\] must be an integer >= 1, got -1"):
        perspective_vectors(FOV, 0.0, 0.0, 0.0, (-1, 4))


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_gradients_flow(mode):
    x = torch.rand(1, 2, 4, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: equirect_to_perspective(t, FOV, math.pi, 0.5, 0.1, out_hw=(3, 4), mode=mode), (x,))
    view = torch.rand(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: perspective_to_equirect(t, FOV, 0.2, 0.1, 0.0, 6, 12, mode=mode)[0], (view,))


def test_out_hw_must_be_a_pair():
    x = torch.rand(1, 1, 8, 16)
    for out_hw in (8, (4, 4, 4), "44"):
        with pytest.raises(ValueError, match=r"out_hw must be a pair \(H, W\) of positive integers"):
            equirect_to_perspective(x, 1.0, 0.0, 0.0, out_hw=out_hw)
    with pytest.raises(ValueError, match=r"out_hw\[1\] must be an integer >= 1, got 0"):
        equirect_to_perspective(x, 1.0, 0.0, 0.0, out_hw=(4, 0))
