import pytest
import torch

from sphsal.models.cube_padding import CubePad, cube_pad, cube_padding_index
from sphsal.projections import equirect_to_cubemap


def _faces(f=4, groups=1, extra=(1,)):
    n = 6 * f * f
    return torch.arange(groups * n * extra[0], dtype=torch.float32).reshape(groups, extra[0], 6, f, f) \
        .permute(0, 2, 1, 3, 4).reshape(groups * 6, extra[0], f, f)


def test_interior_is_unchanged_and_size_grows():
    x = _faces()
    y = cube_pad(x, 2)
    assert y.shape == (6, 1, 8, 8)
    assert torch.equal(y[..., 2:-2, 2:-2], x)


def test_front_face_is_padded_by_its_neighbours():
    x = _faces()
    y = cube_pad(x, 1)
    front, right, left, up, down = x[0, 0], x[1, 0], x[3, 0], x[4, 0], x[5, 0]
    assert torch.equal(y[0, 0, 0, 1:-1], up[-1])        # above the front: the up face's bottom row
    assert torch.equal(y[0, 0, -1, 1:-1], down[0])      # below: the down face's top row
    assert torch.equal(y[0, 0, 1:-1, -1], right[:, 0])  # right of it: the right face's left column
    assert torch.equal(y[0, 0, 1:-1, 0], left[:, -1])   # left of it: the left face's right column
    assert torch.equal(front, y[0, 0, 1:-1, 1:-1])


def test_padding_continues_a_smooth_field_across_edges():
    # Faces projected from a smooth ERP image: the padded border must continue the neighbouring face,
    # so it is close to the face projected with a wider field of view (the true continuation).
    h, w, f = 64, 128, 16
    rows = torch.linspace(-1, 1, h)[:, None]
    cols = torch.linspace(0, 6.283, w)[None]
    erp = (torch.sin(cols) * torch.cos(rows * 1.5) + rows).expand(1, 1, h, w).contiguous()
    faces = equirect_to_cubemap(erp, f)[0]                              # (6, 1, F, F)
    padded = cube_pad(faces, 1)
    border = torch.cat([padded[..., 0, 1:-1], padded[..., -1, 1:-1], padded[..., 1:-1, 0],
                        padded[..., 1:-1, -1]], -1)
    inner = torch.cat([faces[..., 0, :], faces[..., -1, :], faces[..., :, 0], faces[..., :, -1]], -1)
    assert (border - inner).abs().max() < 0.25   # neighbours differ by about one pixel step, not by zeros


def test_batches_and_extra_dimensions_pad_each_cubemap_separately():
    x = torch.randn(2 * 6, 3, 5, 8, 8)
    y = CubePad(3)(x)
    assert y.shape == (12, 3, 5, 14, 14)
    assert torch.equal(y[6:], cube_pad(x[6:], 3))
    assert torch.equal(y[:6, 1], cube_pad(x[:6, 1], 3))


def test_index_table_covers_faces_and_rejects_bad_sizes():
    idx = cube_padding_index(8, 2)
    assert idx.shape == (6, 12, 12) and idx.min() >= 0 and idx.max() < 6 * 64
    with pytest.raises(ValueError, match="pad"):
        cube_padding_index(4, 5)
    with pytest.raises(ValueError, match="B\\*6"):
        cube_pad(torch.randn(5, 1, 4, 4), 1)


def test_compiled_cube_padding_takes_the_cached_table():
    """Under ``torch.export`` / ``torch.compile`` the index table is one operator call (the cached
    table), not its construction traced into the graph; results equal eager."""
    pad, x = CubePad(2), torch.rand(6, 3, 8, 8)
    exported = torch.export.export(pad, (x,))
    targets = [str(n.target) for n in exported.graph.nodes if n.op == "call_function"]
    assert "sphsal.cube_padding_index.default" in targets
    assert not any("arange" in t or "floor" in t for t in targets), targets
    torch.testing.assert_close(exported.module()(x), pad(x))
