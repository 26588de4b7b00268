import math

import numpy as np
import pytest
import torch

from sphsal import sphere


def test_pixel_centres_and_known_directions():
    h, w = 8, 16
    az, el = sphere.equirect_directions(h, w, dtype=torch.float64)
    assert az.shape == el.shape == (h, w)
    # Front (az = 0) lies on the boundary between the two centre columns, i.e. at continuous col W/2 - 0.5.
    row, col = sphere.directions_to_pixels(torch.tensor(0.0), torch.tensor(0.0), h, w)
    assert col.item() == pytest.approx(w / 2 - 0.5)
    assert row.item() == pytest.approx(h / 2 - 0.5)
    # Azimuth +90 deg (left) at a quarter of the width (image edge coordinate W/4).
    _, col = sphere.directions_to_pixels(torch.tensor(math.pi / 2), torch.tensor(0.0), h, w)
    assert col.item() + 0.5 == pytest.approx(w / 4)
    # Azimuth -90 deg (right) at three quarters.
    _, col = sphere.directions_to_pixels(torch.tensor(-math.pi / 2), torch.tensor(0.0), h, w)
    assert col.item() + 0.5 == pytest.approx(3 * w / 4)
    # Row 0 is next to the north pole, the last row next to the south pole.
    assert el[0, 0].item() == pytest.approx(math.pi / 2 - math.pi / (2 * h))
    assert el[-1, 0].item() == pytest.approx(-math.pi / 2 + math.pi / (2 * h))
    # Azimuth decreases to the right, left of centre is left.
    assert torch.all(az[:, 1:] < az[:, :-1])
    assert az[0, w // 2 - 1].item() > 0 > az[0, w // 2].item()


def test_pixels_round_trip_through_directions():
    h, w = 6, 12
    az, el = sphere.equirect_directions(h, w, dtype=torch.float64)
    row, col = sphere.directions_to_pixels(az, el, h, w)
    assert torch.allclose(row, torch.arange(h, dtype=torch.float64)[:, None].expand(h, w))
    assert torch.allclose(col, torch.arange(w, dtype=torch.float64).expand(h, w))
    az2, el2 = sphere.pixels_to_directions(row, col, h, w)
    assert torch.allclose(az2, az) and torch.allclose(el2, el)


def test_vectors_round_trip_and_axes():
    v = sphere.directions_to_vectors(torch.tensor([0.0, math.pi / 2, 0.0]),
                                     torch.tensor([0.0, 0.0, math.pi / 2]))
    assert torch.allclose(v, torch.eye(3), atol=1e-7)
    g = torch.Generator().manual_seed(0)
    az = (torch.rand(100, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    el = (torch.rand(100, generator=g, dtype=torch.float64) - 0.5) * math.pi
    az2, el2 = sphere.vectors_to_directions(3.0 * sphere.directions_to_vectors(az, el))
    assert torch.allclose(az2, az) and torch.allclose(el2, el)
    with pytest.raises(ValueError, match="last dimension of 3"):
        sphere.vectors_to_directions(torch.zeros(4, 2))


def test_great_circle_distance():
    d = sphere.great_circle_distance(0.0, 0.0, math.pi, 0.0)
    assert d.item() == pytest.approx(math.pi)
    # Across the seam: 179 deg and -179 deg are 2 deg apart.
    d = sphere.great_circle_distance(math.radians(179), 0.0, math.radians(-179), 0.0)
    assert math.degrees(d.item()) == pytest.approx(2.0, abs=1e-4)
    # At the pole azimuth does not matter.
    d = sphere.great_circle_distance(0.3, math.pi / 2, -2.0, math.pi / 2)
    assert d.item() == pytest.approx(0.0, abs=1e-6)
    # Tiny separations stay accurate.
    d = sphere.great_circle_distance(torch.tensor(0.0, dtype=torch.float64), 0.5, 1e-9, 0.5)
    assert d.item() == pytest.approx(1e-9 * math.cos(0.5), rel=1e-6)


@pytest.mark.parametrize("h,w", [(1, 2), (5, 10), (64, 128)])
def test_solid_angle_weights_sum_to_4pi(h, w):
    sa = sphere.solid_angle_weights(h, w, dtype=torch.float64)
    assert sa.shape == (h, w)
    assert sa.sum().item() == pytest.approx(4 * math.pi, rel=1e-12)
    # Proportional to cos(latitude) for fine grids, symmetric about the equator.
    assert torch.allclose(sa, sa.flip(0))


def test_rotation_matrix_is_orthonormal_and_signed_as_documented():
    r = sphere.rotation_matrix(0.3, -0.7, 1.1)
    assert torch.allclose(r @ r.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert torch.det(r).item() == pytest.approx(1.0)
    front = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    assert torch.allclose(sphere.rotation_matrix(yaw=math.pi / 2) @ front,
                          torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(sphere.rotation_matrix(pitch=math.pi / 2) @ front,
                          torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-12)
    left = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(sphere.rotation_matrix(roll=math.pi / 2) @ left,
                          torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("k", [-5, -1, 0, 1, 3, 31, 32, 40])
def test_yaw_by_whole_columns_is_exact_roll(k):
    x = torch.randn(2, 3, 16, 32, dtype=torch.float64)
    y = sphere.rotate_equirect(x, yaw=k * 2 * math.pi / 32)
    assert torch.equal(y, torch.roll(x, -k, dims=-1))


def test_yaw_moves_content_to_the_left():
    h, w = 16, 32
    x = torch.zeros(h, w)
    x[8, 16] = 1.0
    y = sphere.rotate_equirect(x, yaw=2 * 2 * math.pi / w)
    assert y[8, 14] == 1.0


def test_general_rotation_matches_rotated_directions():
    # A smooth function of direction rotated by the image rotation equals the function of R^T d.
    h, w = 64, 128
    az, el = sphere.equirect_directions(h, w, dtype=torch.float64)
    v = sphere.directions_to_vectors(az, el)
    f = lambda vec: vec[..., 0] + 2 * vec[..., 1] - vec[..., 2] + vec[..., 2] ** 2
    yaw, pitch, roll = 0.4, -0.3, 0.2
    rotated = sphere.rotate_equirect(f(v)[None], yaw=yaw, pitch=pitch, roll=roll)[0]
    expected = f(v @ sphere.rotation_matrix(yaw, pitch, roll))
    assert (rotated - expected).abs().max().item() < 0.02
    # Undoing the rotation (R^-1 = Rx(-roll) Ry(pitch) Rz(-yaw): yaw first) brings the image back.
    back = sphere.rotate_equirect(rotated[None], yaw=-yaw)
    back = sphere.rotate_equirect(back, pitch=-pitch)
    back = sphere.rotate_equirect(back, roll=-roll)[0]
    assert (back - f(v)).abs().max().item() < 0.05


def test_pad_equirect_wraps_seam_and_poles():
    x = torch.arange(4 * 8, dtype=torch.float64).reshape(1, 1, 4, 8)
    p = sphere.pad_equirect(x, 1)
    assert p.shape == (1, 1, 6, 10)
    assert torch.equal(p[..., 1:-1, 0], x[..., :, -1])  # left pad = last column
    assert torch.equal(p[..., 1:-1, -1], x[..., :, 0])
    # Above row 0 at column j lies row 0 at column j + W/2.
    assert torch.equal(p[0, 0, 0, 1:-1], torch.roll(x[0, 0, 0], 4))
    assert torch.equal(p[0, 0, -1, 1:-1], torch.roll(x[0, 0, -1], 4))
    with pytest.raises(ValueError, match="even ERP width"):
        sphere.pad_equirect(torch.zeros(1, 1, 4, 7))


def test_sample_equirect_is_continuous_across_seam_and_pole():
    h, w = 32, 64
    az, el = sphere.equirect_directions(h, w, dtype=torch.float64)
    f = lambda a, e: torch.cos(e) * torch.cos(a) + 0.5 * torch.sin(e)  # smooth on the sphere
    img = f(az, el)[None, None]
    # Sample along a path crossing the seam and another over the north pole.
    t = torch.linspace(-0.2, 0.2, 41, dtype=torch.float64)
    seam_az = math.pi + t
    seam_el = torch.full_like(t, 0.3)
    row, col = sphere.directions_to_pixels(seam_az, seam_el, h, w)
    vals = sphere.sample_equirect(img, row[None], col[None])[0, 0, 0]
    assert (vals - f(seam_az, seam_el)).abs().max().item() < 0.01
    pole_el = math.pi / 2 - t.abs()
    pole_az = torch.where(t < 0, torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.7 - math.pi))
    row, col = sphere.directions_to_pixels(pole_az, pole_el, h, w)
    vals = sphere.sample_equirect(img, row[None], col[None])[0, 0, 0]
    assert (vals - f(pole_az, pole_el)).abs().max().item() < 0.01
    # Nearest sampling returns exact pixel values.
    row, col = sphere.directions_to_pixels(az, el, h, w)
    assert torch.equal(sphere.sample_equirect(img, row, col, mode="nearest"), img)


def test_resize_equirect_wraps_seam_and_poles():
    x = torch.rand(2, 3, 8, 16, dtype=torch.float64)
    planar = torch.nn.functional.interpolate(x, size=(32, 64), mode="bilinear", align_corners=False)
    up = sphere.resize_equirect(x, (32, 64))
    assert up.shape == (2, 3, 32, 64)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], planar[..., 2:-2, 2:-2], rtol=0, atol=1e-14)
    assert not torch.allclose(up[..., :, :2], planar[..., :, :2])  # the border pixels differ
    # whole-column yaw commutes with resizing (the planar resize clamps at the seam instead)
    for size in ((32, 64), (12, 40), (4, 8)):
        shift = size[1] // 8
        torch.testing.assert_close(sphere.resize_equirect(x.roll(2, -1), size),
                                   sphere.resize_equirect(x, size).roll(shift, -1), rtol=0, atol=1e-14)
    # a smooth field on the sphere, upsampled: the seam and pole pixels are as accurate as the interior
    az, el = sphere.equirect_directions(16, 32, dtype=torch.float64)
    f = lambda a, e: torch.cos(e) * torch.cos(a) + 0.5 * torch.sin(e)
    az2, el2 = sphere.equirect_directions(64, 128, dtype=torch.float64)
    err = (sphere.resize_equirect(f(az, el), (64, 128)) - f(az2, el2)).abs()
    assert err.max().item() < 0.02
    assert torch.equal(sphere.resize_equirect(x, (8, 16)), x)
    with pytest.raises(ValueError, match="even ERP width"):
        sphere.resize_equirect(torch.zeros(1, 4, 7), (8, 14))
    with pytest.raises(ValueError, match="size"):
        sphere.resize_equirect(x, (0, 16))


def test_rotate_equirect_gradients_flow():
    x = torch.randn(1, 2, 8, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: sphere.rotate_equirect(t, yaw=0.1, pitch=0.2), (x,))


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="h=0"):
        sphere.equirect_directions(0, 4)
    with pytest.raises(ValueError, match="mode"):
        sphere.sample_equirect(torch.zeros(1, 1, 4, 8), torch.zeros(2, 2), torch.zeros(2, 2), mode="cubic")


@pytest.mark.parametrize("angle", ["yaw", "pitch", "roll"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_rotation_angles_must_be_finite(angle, value):
    # pitch=nan made every pixel one value silently, yaw=nan / inf and roll=inf raised unnamed errors
    x = torch.rand(1, 1, 8, 16)
    with pytest.raises(ValueError, match=f"{angle} must be a finite angle in radians"):
        sphere.rotate_equirect(x, **{angle: value})
    with pytest.raises(ValueError, match=f"{angle} must be a finite angle in radians"):
        sphere.rotation_matrix(**{angle: value})
    with pytest.raises(ValueError, match=f"{angle} must be a finite angle in radians"):
        sphere.rotate_directions(torch.zeros(1), torch.zeros(1), **{angle: value})


def test_sample_equirect_checks_coordinates():
    x = torch.rand(1, 1, 8, 16)
    grid = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"row and col must be \(Ho, Wo\) coordinate grids of the same"):
        sphere.sample_equirect(x, grid, torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"row and col must be \(Ho, Wo\)"):
        sphere.sample_equirect(x, torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="row contains NaN or infinite"):
        sphere.sample_equirect(x, torch.full((2, 3), float("nan")), grid)  # returned a value
    with pytest.raises(ValueError, match="col contains NaN or infinite"):
        sphere.sample_equirect(x, grid, torch.full((2, 3), float("inf")))
    with pytest.raises(ValueError, match="x must have a floating dtype"):
        sphere.sample_equirect(torch.zeros(1, 1, 8, 16, dtype=torch.int64), grid, grid)
    assert sphere.sample_equirect(x, grid, grid).shape == (1, 1, 2, 3)


def test_pad_equirect_checks_pad_and_layout():
    x = torch.rand(1, 1, 8, 16)
    for pad in (-1, 1.5, True, "1"):  # -1 returned a (1, 1, 15, 46) tensor
        with pytest.raises(ValueError, match=r"pad must be an integer >= 0 \(pixels\)"):
            sphere.pad_equirect(x, pad)
    with pytest.raises(ValueError, match=r"x must be an ERP tensor \(\.\.\., H, W\)"):
        sphere.pad_equirect(torch.rand(16), 1)
    with pytest.raises(ValueError, match="larger than the ERP size"):
        sphere.pad_equirect(x, 9)
    assert sphere.pad_equirect(x, np.int64(2)).shape == (1, 1, 12, 20)
    assert sphere.pad_equirect(torch.rand(8, 16), 8).shape == (24, 32)


def test_grids_need_a_floating_dtype():
    for fn in (sphere.equirect_directions, sphere.solid_angle_weights):
        with pytest.raises(ValueError, match="dtype must be a floating torch dtype"):
            fn(4, 8, dtype=torch.int64)  # truncated to integers silently
        assert fn(4, 8, dtype=torch.float16)[0].dtype == torch.float16
    for h in (None, float("nan"), True):
        with pytest.raises(ValueError, match="ERP size must be positive integers"):
            sphere.equirect_directions(h, 8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_images_are_sampled_in_float32(dtype):
    # grid_sample's CPU float16 / bfloat16 kernels gave NaN and wrong values at this size.
    x = torch.rand(1, 2, 128, 256, generator=torch.Generator().manual_seed(5)).to(dtype)
    for fn in (lambda t: sphere.rotate_equirect(t, 0.3, 0.2, 0.1),
               lambda t: sphere.resize_equirect(t, (96, 192))):
        out, ref = fn(x), fn(x.float())
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), ref, atol=2 * torch.finfo(dtype).eps, rtol=0)


@pytest.mark.parametrize("size", [4, (4, 8, 2), "48"])
def test_resize_equirect_names_a_size_that_is_no_pair(size):
    # an int raised TypeError "'int' object is not iterable", a triple an unnamed unpacking error
    with pytest.raises(ValueError, match=r"size must be a pair \(Ho, Wo\)"):
        sphere.resize_equirect(torch.rand(1, 1, 8, 16), size)
