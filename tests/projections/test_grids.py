"""The cached sampler behind every projection against the plain-torch reference sample_equirect."""

import math

import pytest
import torch

from sphsal.projections import (
    cubemap_to_equirect,
    equirect_to_cubemap,
    equirect_to_healpix,
    equirect_to_perspective,
    healpix_to_equirect,
    perspective_to_equirect,
)
from sphsal.projections._grids import build_plan, cached_plan, erp_plan, erp_resolver
from sphsal.sphere import directions_to_pixels, sample_equirect


def _directions(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    az = (torch.rand(n, n, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    el = (torch.rand(n, n, generator=g, dtype=torch.float64) * 2 - 1) * math.pi / 2
    # Rows right at the poles, beside them, and columns across the +-180 deg seam.
    el[0], el[1] = math.pi / 2, -math.pi / 2
    el[2], el[3] = math.pi / 2 - 0.01, -math.pi / 2 + 0.01
    az[4], az[5] = math.pi - 1e-3, -math.pi + 1e-3
    return az, el


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_bilinear_plan_matches_sample_equirect(dtype):
    x = torch.rand(2, 3, 16, 32, dtype=dtype, generator=torch.Generator().manual_seed(1))
    az, el = _directions(30)
    plan = erp_plan(az, el, 16, 32, "bilinear").to(x.device, dtype)
    assert plan.fix_index is not None and 0 < plan.fix_index.numel() < az.numel()
    row, col = directions_to_pixels(az, el, 16, 32)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(plan(x), sample_equirect(x, row, col), atol=tol, rtol=0)


def test_nearest_plan_matches_sample_equirect_away_from_ties():
    x = torch.rand(1, 2, 16, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    az, el = _directions(30)
    row, col = directions_to_pixels(az, el, 16, 32)
    # Ties (exactly half-way between pixel centres) may go either way; keep clear of them.
    clear = ((row - row.round()).abs() < 0.45) & ((col - col.round()).abs() < 0.45)
    plan = erp_plan(az, el, 16, 32, "nearest")
    ours, ref = plan(x), sample_equirect(x, row, col, mode="nearest")
    assert clear.sum() > 500
    torch.testing.assert_close(ours[..., clear], ref[..., clear], atol=0, rtol=0)


def test_constant_image_stays_constant_everywhere():
    # A read of zero padding anywhere (seam, poles) would pull the value below 1.
    az, el = _directions(40, seed=3)
    for mode in ("bilinear", "nearest"):
        out = erp_plan(az, el, 8, 16, mode)(torch.ones(1, 1, 8, 16, dtype=torch.float64))
        torch.testing.assert_close(out, torch.ones_like(out), atol=1e-12, rtol=0)


def test_pole_taps_continue_on_the_opposite_meridian():
    # A point just beyond the centre of row 0 is interpolated with row 0 shifted by W/2.
    h, w = 8, 16
    x = torch.zeros(1, 1, h, w, dtype=torch.float64)
    x[0, 0, 0, 3] = 1.0
    row = torch.tensor([[-0.25]], dtype=torch.float64)
    col = torch.tensor([[3.0 + w / 2]], dtype=torch.float64)
    plan = build_plan(row, col, (h, w), "bilinear", erp_resolver(h, w))
    assert plan(x).item() == pytest.approx(0.25)


def test_plans_are_cached_per_geometry_device_and_dtype():
    calls = []

    @cached_plan
    def build(n, mode):
        calls.append((n, mode))
        az = torch.zeros(n, n, dtype=torch.float64)
        return erp_plan(az, az, 4, 8, mode)

    first = build(3, "bilinear", device=torch.device("cpu"), dtype=torch.float32)
    assert build(3, "bilinear", device=torch.device("cpu"), dtype=torch.float32) is first
    other = build(3, "bilinear", device=torch.device("cpu"), dtype=torch.float64)
    assert other is not first and other.grid.dtype == torch.float64
    assert calls == [(3, "bilinear")]


def test_every_projection_reuses_its_cached_plan():
    from sphsal.projections import cubemap, healpix, perspective

    builders = [cubemap._to_cube_plan, cubemap._from_cube_plan, healpix._to_healpix_plan,
                healpix._from_healpix_plan, perspective._to_view_plan, perspective._from_view_plan]
    x = torch.rand(1, 2, 8, 16, dtype=torch.float64)
    _all_projections(x)  # builds (or finds) every plan for this geometry
    hits = [b.cache_info().hits for b in builders]
    misses = [b.cache_info().misses for b in builders]
    _all_projections(x + 1)  # same geometry, device and dtype, other values
    assert [b.cache_info().misses for b in builders] == misses
    assert all(b.cache_info().hits > h for b, h in zip(builders, hits))


def _all_projections(x):
    """Every projection and its inverse on an ERP batch ``x`` (B, C, 8, 16)."""
    view = equirect_to_perspective(x, 1.2, math.pi, 0.3, 0.1, out_hw=(5, 6))
    return [equirect_to_cubemap(x, 4), cubemap_to_equirect(equirect_to_cubemap(x, 4), 8, 16),
            equirect_to_healpix(x, 2), healpix_to_equirect(equirect_to_healpix(x, 2), 8, 16), view,
            *perspective_to_equirect(view, 1.2, math.pi, 0.3, 0.1, 8, 16)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_projections_keep_the_dtype(dtype):
    x = torch.rand(2, 3, 8, 16, dtype=dtype)
    assert all(out.dtype == dtype for out in _all_projections(x))


def _half_projections(x):
    """Every projection (and inverse) of an ERP batch ``x`` (B, C, 128, 256), without chaining them."""
    horizon, healpix, view = x[..., :40, :240], x[..., :96, :128].flatten(-2), x[..., :32, :48]
    return [equirect_to_cubemap(x, 64), cubemap_to_equirect(horizon, 128, 256),
            equirect_to_healpix(x, 32), healpix_to_equirect(healpix, 128, 256),  # 96 * 128 = 12 * 32^2
            equirect_to_perspective(x, 1.2, math.pi, 0.3, 0.1, out_hw=(40, 60)),
            *perspective_to_equirect(view, 1.2, math.pi, 0.3, 0.1, 128, 256)]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_projections_are_sampled_in_float32(dtype):
    # grid_sample's CPU float16 / bfloat16 kernels returned NaN and wrong values on images this size
    # (and a half-precision grid would misplace samples by pixels): such inputs are sampled in float32.
    x = torch.rand(1, 2, 128, 256, generator=torch.Generator().manual_seed(4)).to(dtype)
    x.requires_grad_()
    outs, refs = _half_projections(x), _half_projections(x.detach().float())
    for out, ref in zip(outs, refs):
        assert out.dtype == dtype
        torch.testing.assert_close(out.float(), ref, atol=2 * torch.finfo(dtype).eps, rtol=0)
    sum(out.float().sum() for out in outs if out.requires_grad).backward()
    assert x.grad.dtype == dtype and bool(torch.isfinite(x.grad).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_projections_on_cuda_match_cpu():
    """Outputs and the operator's adjoint (gradients) on CUDA equal the CPU's."""
    x = torch.rand(2, 3, 8, 16, dtype=torch.float64, requires_grad=True)
    x_cuda = x.detach().cuda().requires_grad_()
    outs, outs_cuda = _all_projections(x), _all_projections(x_cuda)
    for cpu, cuda in zip(outs, outs_cuda):
        assert cuda.device.type == "cuda"
        torch.testing.assert_close(cuda.detach().cpu(), cpu.detach())
    weights = [torch.rand_like(out) for out in outs]
    sum(((out * w).sum() for out, w in zip(outs, weights) if out.requires_grad)).backward()
    sum(((out * w.cuda()).sum() for out, w in zip(outs_cuda, weights) if out.requires_grad)).backward()
    torch.testing.assert_close(x_cuda.grad.cpu(), x.grad)


_EMPTY_CASES = {
    # name: (projection, input shape after (B, C))
    "equirect_to_cubemap": (lambda x: equirect_to_cubemap(x, 4), (8, 16)),
    "equirect_to_healpix": (lambda x: equirect_to_healpix(x, 2), (8, 16)),
    "equirect_to_perspective": (lambda x: equirect_to_perspective(x, 1.0, 0.2, 0.1, out_hw=(3, 5)), (8, 16)),
    "cubemap_to_equirect": (lambda x: cubemap_to_equirect(x, 8, 16), (4, 24)),  # horizon layout
    "healpix_to_equirect": (lambda x: healpix_to_equirect(x, 8, 16), (48,)),
    "perspective_to_equirect": (lambda x: perspective_to_equirect(x, 1.0, 0.2, 0.1, 0.0, 8, 16)[0], (3, 5)),
}


@pytest.mark.parametrize("name", sorted(_EMPTY_CASES))
@pytest.mark.parametrize("bc", [(0, 1), (2, 0)])
def test_empty_batch_or_no_channels_give_an_empty_result(name, bc):
    # every projection crashed ("cannot reshape tensor of 0 elements", grid_sampler on an empty batch)
    project, in_shape = _EMPTY_CASES[name]
    full = project(torch.rand(1, 1, *in_shape, dtype=torch.float64))
    x = torch.rand(*bc, *in_shape, dtype=torch.float64, requires_grad=True)
    out = project(x)
    if name == "equirect_to_cubemap":  # stack layout (B, 6, C, F, F)
        expected = (bc[0], 6, bc[1], *full.shape[3:])
    else:
        expected = (*bc, *full.shape[2:])
    assert out.shape == expected and out.dtype == torch.float64
    out.sum().backward()
    assert x.grad.shape == x.shape


def test_empty_stacked_cubemap():
    assert cubemap_to_equirect(torch.rand(0, 6, 1, 4, 4), 8, 16).shape == (0, 1, 8, 16)
    assert cubemap_to_equirect(torch.rand(2, 6, 0, 4, 4), 8, 16).shape == (2, 0, 8, 16)


def test_erp_inputs_need_rows_and_columns():
    for shape in ((1, 1, 0, 16), (1, 1, 8, 0)):
        with pytest.raises(ValueError, match=r"x must be an ERP batch \(B, C, H, W\) with H, W >= 1"):
            equirect_to_cubemap(torch.rand(shape), 4)
