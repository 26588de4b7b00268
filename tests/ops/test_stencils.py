import math

import pytest
import torch

from sphsal.ops import sphere_conv2d_reference
from sphsal.ops.stencils import neighbour_table
from sphsal.sphere import great_circle_distance, pixels_to_directions

PLANAR_ROWS = torch.tensor([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]).reshape(-1)
PLANAR_COLS = torch.tensor([[-1, 0, 1]] * 3).reshape(-1)


@pytest.mark.parametrize("interpolation,p", [("nearest", 1), ("bilinear", 4)])
@pytest.mark.parametrize("stride", [1, 2])
def test_table_shapes_ranges_and_weights(interpolation, p, stride):
    t = neighbour_table(16, 32, 3, stride, 1, "cap", interpolation)
    assert t.rows.shape == t.cols.shape == t.weights.shape == (16 // stride, 9, p)
    assert int(t.rows.min()) >= 0 and int(t.rows.max()) < 16
    assert int(t.cols.min()) >= -16 and int(t.cols.max()) < 16
    torch.testing.assert_close(t.weights.sum(-1), torch.ones(16 // stride, 9, dtype=torch.float64))
    assert neighbour_table(16, 32, 3, stride, 1, "cap", interpolation) is t  # cached


@pytest.mark.parametrize("stencil", ["cap", "gnomonic"])
def test_equator_rows_are_the_planar_3x3(stencil):
    t = neighbour_table(32, 64, 3, 1, 1, stencil, "nearest")
    for i in (15, 16):  # the two rows next to the equator
        assert torch.equal(t.rows[i, :, 0] - i, PLANAR_ROWS)
        assert torch.equal(t.cols[i, :, 0], PLANAR_COLS)


def test_cap_orientation_north_is_up_and_east_is_right():
    t = neighbour_table(32, 64, 3, 1, 1, "cap", "nearest")
    assert (t.rows[16, 1, 0] - 16, t.cols[16, 1, 0]) == (-1, 0)  # weight[..., 0, 1]: bearing 0
    assert (t.rows[16, 5, 0] - 16, t.cols[16, 5, 0]) == (0, 1)  # weight[..., 1, 2]: bearing 90 (east)


def test_cap_taps_lie_on_circles_of_the_ring_radius():
    h, w, k = 24, 48, 5
    t = neighbour_table(h, w, k, 1, 1, "cap", "bilinear")
    i = 9  # away from the poles: bilinear weights reproduce the continuous tap position exactly
    row = (t.weights[i] * t.rows[i]).sum(-1)
    col = (t.weights[i] * t.cols[i]).sum(-1)
    az, el = pixels_to_directions(row, col, h, w)
    zero = torch.zeros((), dtype=torch.float64)
    az0, el0 = pixels_to_directions(zero + i, zero, h, w)
    dist = great_circle_distance(az0, el0, az, el).reshape(k, k)
    offs = torch.arange(k) - k // 2
    ring = torch.maximum(offs[:, None].abs(), offs[None, :].abs()).to(torch.float64)
    torch.testing.assert_close(dist, ring * math.pi / h, atol=2e-3, rtol=0)


def test_pole_rows_draw_on_all_longitudes():
    t = neighbour_table(16, 32, 3, 1, 1, "cap", "nearest")
    for i in (0, 15):
        offsets = t.cols[i, :, 0]
        assert int(offsets.abs().max()) == 16  # over the pole: the opposite meridian
        assert len(set(offsets.tolist())) >= 6
    assert int(t.cols[0, 1, 0]) == -16 and int(t.rows[0, 1, 0]) == 0  # north tap of row 0


def test_stride_two_centres_are_output_pixel_centres():
    t = neighbour_table(16, 32, 3, 2, 1, "cap", "nearest")
    # Output row 4 of the 8x16 grid is at input row 8.5; half-way cases round down-right.
    assert (int(t.rows[4, 4, 0]), int(t.cols[4, 4, 0])) == (9, 1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(height=8, width=15), "even"),
    (dict(height=8, width=16, kernel_size=4), "kernel_size"),
    (dict(height=8, width=16, stride=3), "divisible"),
    (dict(height=8, width=16, stencil="square"), "stencil"),
    (dict(height=8, width=16, interpolation="cubic"), "interpolation"),
    (dict(height=8, width=16, dilation=0), "dilation"),
])
def test_bad_configurations_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        neighbour_table(**kwargs)


@pytest.mark.parametrize("stencil", ["cap", "gnomonic"])
@pytest.mark.parametrize("h", [8, 12, 16])
def test_stride_two_pole_taps_are_mirror_images(stencil, h):
    """Stride 2, dilation 1: the north tap of output row 0 and the south tap of the last row lie exactly
    on the poles, where the azimuth is arbitrary; both take the stencil centre's meridian, so that the
    tables (and the bilinear convolution) are symmetric under the north-south and east-west flips."""
    t = neighbour_table(h, 2 * h, 3, 2, 1, stencil, "nearest")
    assert (int(t.rows[0, 1, 0]), int(t.cols[0, 1, 0])) == (0, 1)
    assert (int(t.rows[-1, 7, 0]), int(t.cols[-1, 7, 0])) == (h - 1, 1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, h, 2 * h, generator=g, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    out = sphere_conv2d_reference(x, w, None, 2, 1, "bilinear", stencil)
    for dim in (-2, -1):
        flipped = sphere_conv2d_reference(x.flip(dim), w.flip(dim), None, 2, 1, "bilinear", stencil)
        torch.testing.assert_close(flipped.flip(dim), out, rtol=0, atol=1e-12)
