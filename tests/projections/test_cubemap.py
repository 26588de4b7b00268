"""ERP <-> cubemap: face geometry, layouts, analytic accuracy, round trips, continuity, gradients."""

import math

import pytest
import torch

from sphsal.projections import (
    FACE_FRAMES,
    FACE_NAMES,
    convert_cubemap_layout,
    cube_face_vectors,
    cubemap_to_equirect,
    equirect_to_cubemap,
    vectors_to_cube_faces,
)
from sphsal.sphere import vectors_to_directions


def test_face_centres_are_the_six_axes():
    f = 5  # odd: pixel (2, 2) is the exact face centre
    centres = cube_face_vectors(f)[:, 2, 2]
    expected = torch.tensor([[1, 0, 0], [0, -1, 0], [-1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -1]],
                            dtype=torch.float64)
    torch.testing.assert_close(centres, expected)
    face, a, b = vectors_to_cube_faces(expected)
    assert face.tolist() == list(range(6))
    assert a.abs().max() == 0 and b.abs().max() == 0


def test_face_orientations():
    v = cube_face_vectors(4)
    az, el = vectors_to_directions(v)
    # Front: column 0 is on the left (positive azimuth), row 0 at the top (positive elevation).
    assert az[0, 1, 0] > 0 > az[0, 1, -1] and el[0, 0, 1] > 0 > el[0, -1, 1]
    # Right face looks at azimuth -90 deg, left face at +90 deg, back at 180 deg.
    centre_az, _ = vectors_to_directions(v[:4, 1:3, 1:3].sum(dim=(1, 2)))
    torch.testing.assert_close(centre_az, torch.tensor([0, -math.pi / 2, math.pi, math.pi / 2],
                                                       dtype=torch.float64))
    # Up face: the front (+x) is at the bottom edge; down face: the front at the top edge.
    assert v[4, -1, :, 0].min() > 0 > v[4, 0, :, 0].max()
    assert v[5, 0, :, 0].min() > 0 > v[5, -1, :, 0].max()
    # Edges shared: the front's top row and the up face's bottom row look the same way.
    torch.testing.assert_close(v[0, 0] / v[0, 0].norm(dim=-1, keepdim=True),
                               v[4, -1] / v[4, -1].norm(dim=-1, keepdim=True), atol=0.2, rtol=0)
    assert FACE_FRAMES.shape == (6, 3, 3)


def test_known_erp_pixels_land_on_known_faces():
    # ERP (H, W) = (16, 32): the front is at the corner shared by rows 7-8 and columns 15-16, azimuth
    # +90 deg (left) at columns 7-8, and row 0 touches the north pole.
    for rows, cols, face in [((7, 9), (15, 17), 0), ((7, 9), (7, 9), 3), ((0, 1), (0, 32), 4)]:
        x = torch.zeros(1, 1, 16, 32, dtype=torch.float64)
        x[..., rows[0]:rows[1], cols[0]:cols[1]] = 1.0
        faces = equirect_to_cubemap(x, 8)[0, :, 0]
        centre = faces[face, 3:5, 3:5]
        assert centre.min() > 0.2 and faces[face].max() == centre.max()
        others = torch.cat([faces[k].flatten() for k in range(6) if k != face])
        assert others.max() < centre.min()


@pytest.mark.parametrize("mode,max_err,mean_err", [("bilinear", 5e-3, 1.2e-3), ("nearest", 0.16, 0.045)])
def test_analytic_function_matches_at_face_pixels(analytic, analytic_erp, mode, max_err, mean_err):
    # Measured on 64x128 -> F=16: bilinear max 3.1e-3 / mean 7.9e-4, nearest max 0.11 / mean 0.031.
    faces = equirect_to_cubemap(analytic_erp(64, 128), 16, mode=mode)
    err = (faces[0, :, 0] - analytic(cube_face_vectors(16))).abs()
    assert err.max() < max_err and err.mean() < mean_err


@pytest.mark.parametrize("mode,max_err,mean_err", [("bilinear", 0.05, 9e-3), ("nearest", 0.4, 0.09)])
def test_faces_to_equirect_matches_analytic(analytic, analytic_erp, mode, max_err, mean_err):
    # Measured F=16 -> 64x128: bilinear max 0.024 / mean 6.0e-3, nearest max 0.28 / mean 0.063
    # (taps beyond a face edge read the neighbouring face).
    faces = analytic(cube_face_vectors(16))[None, :, None]
    err = (cubemap_to_equirect(faces, 64, 128, mode=mode) - analytic_erp(64, 128)).abs()
    assert err.max() < max_err and err.mean() < mean_err


def test_face_edges_are_as_accurate_as_face_interiors(analytic, analytic_erp):
    # Taps beyond a face edge are interpolated on the neighbouring face. They read its nearest pixel
    # before, up to half a pixel off along the edge: a first-order error that halved with each doubling
    # of F (max 0.037, 0.019, 0.010 at F = 16, 32, 64) while the faces' interiors quartered (0.024,
    # 0.0060, 0.0015). Measured now at F = 32 -> 128x256: max 0.0060 (interior), 0.0021 at the edges.
    faces = analytic(cube_face_vectors(32))[None, :, None]
    err = (cubemap_to_equirect(faces, 128, 256) - analytic_erp(128, 256)).abs()
    assert err.max() < 0.008
    ones = cubemap_to_equirect(torch.ones(1, 6, 1, 4, 4, dtype=torch.float64), 16, 32)
    torch.testing.assert_close(ones, torch.ones_like(ones), atol=1e-12, rtol=0)


def test_round_trip_on_a_smooth_image(analytic_erp):
    # Measured 64x128 -> F=32 -> 64x128, bilinear: max 0.0076, mean 0.0023 (0.0148 with nearest-pixel
    # taps beyond the face edges).
    x = analytic_erp(64, 128)
    err = (cubemap_to_equirect(equirect_to_cubemap(x, 32), 64, 128) - x).abs()
    assert err.max() < 0.01 and err.mean() < 0.0035


def test_back_and_up_faces_are_continuous(analytic_erp):
    # The +-180 deg seam runs down the middle of the back face and the north pole sits in the middle
    # of the up face: the steps there are no larger than elsewhere on the face.
    faces = equirect_to_cubemap(analytic_erp(64, 128), 16)[0, :, 0]
    for k in (2, 4, 5):
        steps = (faces[k, :, 1:] - faces[k, :, :-1]).abs()
        assert steps[:, 7].max() <= 1.5 * steps.max(dim=1).values.max()
        row_steps = (faces[k, 1:] - faces[k, :-1]).abs()
        assert row_steps[7].max() <= 1.5 * row_steps.max()
        assert steps.max() < 0.5


@pytest.mark.parametrize("layout", ["stack", "horizon", "dice", "dict"])
def test_layouts_round_trip(layout):
    x = torch.rand(2, 3, 16, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    stack = equirect_to_cubemap(x, 8)
    assert stack.shape == (2, 6, 3, 8, 8)
    faces = equirect_to_cubemap(x, 8, layout=layout)
    shapes = {"stack": (2, 6, 3, 8, 8), "horizon": (2, 3, 8, 48), "dice": (2, 3, 24, 32)}
    if layout == "dict":
        assert list(faces) == list(FACE_NAMES) and all(f.shape == (2, 3, 8, 8) for f in faces.values())
    else:
        assert faces.shape == shapes[layout]
    torch.testing.assert_close(convert_cubemap_layout(faces, "stack"), stack, atol=0, rtol=0)
    torch.testing.assert_close(cubemap_to_equirect(faces, 16, 32), cubemap_to_equirect(stack, 16, 32))


def test_dice_cells():
    stack = torch.arange(6, dtype=torch.float64).reshape(1, 6, 1, 1, 1).expand(1, 6, 1, 2, 2)
    dice = convert_cubemap_layout(stack, "dice")[0, 0, ::2, ::2]
    nan = -1.0
    cells = torch.tensor([[nan, 4, nan, nan], [3, 0, 1, 2], [nan, 5, nan, nan]], dtype=torch.float64)
    torch.testing.assert_close(torch.where(cells < 0, torch.zeros_like(cells), cells), dice)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="face_size"):
        equirect_to_cubemap(torch.rand(1, 1, 8, 16), 0)
    with pytest.raises(ValueError, match="layout"):
        equirect_to_cubemap(torch.rand(1, 1, 8, 16), 4, layout="cross")
    with pytest.raises(ValueError, match="faces must be a cubemap"):
        cubemap_to_equirect(torch.rand(1, 3, 8, 9), 8, 16)
    with pytest.raises(ValueError, match=r"faces dict must have exactly the keys .*missing \['right'"):
        cubemap_to_equirect({"front": torch.rand(1, 1, 4, 4)}, 8, 16)
    with pytest.raises(ValueError, match="mode"):
        equirect_to_cubemap(torch.rand(1, 1, 8, 16), 4, mode="bicubic")


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_gradients_flow(mode):
    x = torch.rand(1, 2, 4, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: equirect_to_cubemap(t, 3, mode=mode), (x,))
    faces = torch.rand(1, 6, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: cubemap_to_equirect(t, 6, 12, mode=mode), (faces,))
    dice = torch.rand(1, 1, 9, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: cubemap_to_equirect(t, 4, 8, mode=mode), (dice,))


def test_integer_faces_get_a_dtype_error():
    for dtype in (torch.int64, torch.bool):  # NotImplementedError from grid_sampler
        with pytest.raises(ValueError, match="faces must have a floating dtype"):
            cubemap_to_equirect(torch.zeros(1, 6, 1, 4, 4, dtype=dtype), 8, 16)
    # converting layouts only moves values: any dtype
    ints = torch.arange(6 * 16).reshape(1, 6, 1, 4, 4)
    assert torch.equal(convert_cubemap_layout(convert_cubemap_layout(ints, "dice"), "stack"), ints)


def test_explicit_layout_must_fit_the_shape():
    cases = [(torch.rand(1, 6, 1, 4, 4), "horizon", r"faces is no 'horizon' cubemap \(B, C, F, 6F\)"),
             (torch.rand(1, 1, 4, 24), "dice", r"faces is no 'dice' cubemap \(B, C, 3F, 4F\)"),
             (torch.rand(1, 1, 12, 16), "horizon", "faces is no 'horizon' cubemap"),
             (torch.rand(1, 1, 12, 16), "stack", r"faces is no 'stack' cubemap \(B, 6, C, F, F\)"),
             (torch.rand(1, 6, 1, 4, 4), "dict", r"faces must be a dict \{name: \(B, C, F, F\)\}")]
    for faces, layout, message in cases:
        with pytest.raises(ValueError, match=message):
            cubemap_to_equirect(faces, 8, 16, layout=layout)
        with pytest.raises(ValueError, match=message):
            convert_cubemap_layout(faces, "stack", source_layout=layout)
    assert cubemap_to_equirect(torch.rand(1, 1, 12, 16), 8, 16, layout="dice").shape == (1, 1, 8, 16)
    with pytest.raises(ValueError, match="faces must be a cubemap"):
        cubemap_to_equirect(torch.rand(1, 6, 1, 0, 0), 8, 16)


def test_face_dicts_are_checked():
    faces = {name: torch.rand(1, 2, 4, 4) for name in FACE_NAMES}
    with pytest.raises(ValueError, match=r"missing \[\], unknown \['frnt'\]"):  # was silently ignored
        cubemap_to_equirect({**faces, "frnt": torch.rand(1, 2, 4, 4)}, 8, 16)
    with pytest.raises(ValueError, match=r"faces\['up'\] is \(1, 2, 5, 5\).*same shape, dtype and device"):
        cubemap_to_equirect({**faces, "up": torch.rand(1, 2, 5, 5)}, 8, 16)
    with pytest.raises(ValueError, match=r"faces\['left'\] must be a square face \(B, C, F, F\), got \(2, 4"):
        cubemap_to_equirect({**faces, "left": torch.rand(2, 4, 4)}, 8, 16)
    with pytest.raises(ValueError, match=r"faces\['down'\] must be a square face"):
        cubemap_to_equirect({**faces, "down": torch.rand(1, 2, 4, 5)}, 8, 16)
    stack = convert_cubemap_layout(faces, "stack")
    torch.testing.assert_close(cubemap_to_equirect(faces, 8, 16), cubemap_to_equirect(stack, 8, 16))
