import itertools

import pytest
import torch
import torch.nn.functional as F

from sphsal.ops import (
    neighbour_table,
    sphere_conv2d,
    sphere_conv2d_reference,
    sphere_conv3d,
    sphere_conv3d_reference,
)

OPTIONS = list(itertools.product(["nearest", "bilinear"], ["cap", "gnomonic"], [1, 2]))


def _data(b=2, ci=3, co=4, h=8, w=16, k=3, integer=False, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    if integer:
        x = torch.randint(-4, 5, (b, ci, h, w), generator=g).to(dtype)
        weight = torch.randint(-3, 4, (co, ci, k, k), generator=g).to(dtype)
    else:
        x = torch.randn(b, ci, h, w, generator=g, dtype=dtype)
        weight = torch.randn(co, ci, k, k, generator=g, dtype=dtype)
    bias = torch.randn(co, generator=g, dtype=dtype)
    return x, weight, bias


@pytest.fixture(params=[False, True], ids=["cell-products", "onednn"])
def weight_grad_method(request, monkeypatch):
    """Each way the fast CPU path can take the dense undilated band units' weight gradients (the CPU
    picks one, see ``sphsal.ops.cpu_banded.ONEDNN_WEIGHT_GRAD``; both must equal the reference)."""
    monkeypatch.setattr("sphsal.ops.cpu_banded.ONEDNN_WEIGHT_GRAD", request.param)


@pytest.mark.usefixtures("weight_grad_method")
@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
def test_gradcheck(interpolation, stencil, stride):
    x, weight, bias = _data(b=1, ci=2, co=2, h=6, w=12)
    args = (x.requires_grad_(), weight.requires_grad_(), bias.requires_grad_())
    fn = lambda x, w, b: sphere_conv2d(x, w, b, stride, 1, interpolation, stencil)
    assert torch.autograd.gradcheck(fn, args, fast_mode=True)


@pytest.mark.usefixtures("weight_grad_method")
@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
@pytest.mark.parametrize("dilation,k,h", [(1, 3, 8), (2, 3, 10), (1, 5, 10)])
def test_fast_cpu_path_equals_reference(interpolation, stencil, stride, dilation, k, h):
    x, weight, bias = _data(h=h, w=2 * h, k=k)
    params = [t.requires_grad_() for t in (x, weight, bias)]
    ref = sphere_conv2d_reference(x, weight, bias, stride, dilation, interpolation, stencil)
    fast = sphere_conv2d(x, weight, bias, stride, dilation, interpolation, stencil, backend="cpu")
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ref, params, g), torch.autograd.grad(fast, params, g)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("stencil", ["cap", "gnomonic"])
def test_planar_rows_equal_conv2d_with_circular_longitude(stencil, groups):
    h, w = 24, 48
    x, weight, bias = _data(h=h, w=w, co=6)
    weight = weight[:, :3 // groups]  # groups = 3: depthwise, two output channels per input channel
    out = sphere_conv2d(x, weight, bias, stencil=stencil, groups=groups)
    planar = F.conv2d(F.pad(x, (1, 1, 0, 0), mode="circular"), weight, bias, groups=groups)  # rows 1 .. H-2
    table = neighbour_table(h, w, 3, 1, 1, stencil, "nearest")
    rows = torch.arange(h)[:, None]
    is_planar = (table.rows[..., 0] - rows == torch.tensor([-1] * 3 + [0] * 3 + [1] * 3)).all(1) & (
        table.cols[..., 0] == torch.tensor([-1, 0, 1] * 3)).all(1)
    planar_rows = torch.nonzero(is_planar).flatten().tolist()
    assert h // 2 - 1 in planar_rows and h // 2 in planar_rows and len(planar_rows) >= h // 3
    for i in planar_rows:
        torch.testing.assert_close(out[:, :, i], planar[:, :, i - 1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("groups", [1, 4])
def test_rolling_the_input_rolls_the_output(interpolation, stencil, stride, backend, groups):
    # Integer data makes every nearest-sampling sum exact, so equality is bit for bit.
    ci = 3 if groups == 1 else 4  # groups = 4: depthwise
    x, weight, bias = _data(ci=ci, h=8, w=16, integer=True, dtype=torch.float64)
    weight = weight[:, :ci // groups]
    out = sphere_conv2d(x, weight, None, stride, 1, interpolation, stencil, backend=backend, groups=groups)
    for shift in ([2, -4, 10] if stride == 2 else [1, -5, 15]):
        rolled = sphere_conv2d(torch.roll(x, shift, -1), weight, None, stride, 1, interpolation, stencil,
                               backend=backend, groups=groups)
        expected = torch.roll(out, shift // stride, -1)
        if interpolation == "nearest":
            assert torch.equal(rolled, expected)
        else:
            torch.testing.assert_close(rolled, expected, rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_pole_rows_draw_on_all_longitudes(interpolation):
    x = torch.zeros(1, 1, 16, 32, dtype=torch.float64, requires_grad=True)
    weight = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    out = sphere_conv2d(x, weight, interpolation=interpolation)
    out[0, 0, 0, 0].backward(retain_graph=True)
    used = torch.nonzero(x.grad[0, 0]).tolist()
    cols = {c for _, c in used}
    assert 16 in cols  # the opposite meridian, across the pole
    assert max(min(c, 32 - c) for c in cols) == 16 and len(cols) >= 6
    x.grad = None
    out[0, 0, 8, 0].backward()  # an equator pixel only sees its 3x3 neighbourhood (nearest)
    if interpolation == "nearest":
        assert {c for _, c in torch.nonzero(x.grad[0, 0]).tolist()} == {31, 0, 1}


@pytest.mark.parametrize("stencil", ["cap", "gnomonic"])
def test_fast_path_carries_a_nan_only_where_the_taps_weight_it(stencil):
    """Bilinear taps on the pixel grid have zero-weight corners, which the fast CPU path skips: a NaN
    input pixel reaches exactly the outputs whose taps weight it, and a NaN output gradient exactly the
    inputs that its pixel's taps weight (the reference multiplies the zero weights, 0 * NaN = NaN)."""
    h, w, (r, c), (i, j) = 16, 32, (7, 5), (3, 30)
    table = neighbour_table(h, w, 3, 1, 1, stencil, "bilinear")
    assert (table.weights == 0).any()
    source_cols = (torch.arange(w).view(1, 1, 1, w) + table.cols.unsqueeze(-1)) % w  # (H, K, P, W)
    weighted = (table.weights != 0).unsqueeze(-1)
    reads_rc = ((table.rows.unsqueeze(-1) == r) & (source_cols == c) & weighted).flatten(1, 2).any(1)
    read_by_ij = torch.zeros(h, w, dtype=torch.bool)
    read_by_ij[table.rows[i][weighted[i, ..., 0]], source_cols[i, ..., j][weighted[i, ..., 0]]] = True

    x = torch.randn(1, 1, h, w, dtype=torch.float64)
    x[0, 0, r, c] = float("nan")
    x.requires_grad_()
    weight = torch.randn(1, 1, 3, 3, dtype=torch.float64)
    out = sphere_conv2d(x, weight, interpolation="bilinear", stencil=stencil, backend="cpu")
    assert torch.equal(out[0, 0].isnan(), reads_rc)
    grad_out = torch.zeros_like(out)
    grad_out[0, 0, i, j] = float("nan")
    out.backward(grad_out)
    assert torch.equal(x.grad[0, 0].isnan(), read_by_ij)


@pytest.mark.usefixtures("weight_grad_method")
@pytest.mark.parametrize("stride", [1, (2, 1), 2])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_conv3d_fast_path_equals_reference(stride, interpolation):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 5, 8, 16, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 3, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    ref = sphere_conv3d_reference(x, weight, bias, stride, 1, interpolation)
    fast = sphere_conv3d(x, weight, bias, stride, 1, interpolation)
    st, s = (stride, stride) if isinstance(stride, int) else stride
    assert fast.shape == (2, 4, (5 + 2 - 3) // st + 1, 8 // s, 16 // s)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    grads = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ref, (x, weight, bias), grads),
                    torch.autograd.grad(fast, (x, weight, bias), grads)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


@pytest.mark.usefixtures("weight_grad_method")
@pytest.mark.parametrize("frames,kt,stride",
                         [(1, 3, 1), (2, 3, 1), (2, 3, 2), (3, 7, (1, 2)), (4, 5, (2, 1))])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_clip_shorter_than_its_kernel_runs_frames_as_channels(frames, kt, stride, interpolation, monkeypatch):
    """T < kt: one image convolution of the frames as channels (sphsal.ops.time_fold.frames_weight),
    with outputs and all gradients equal to the reference's."""
    from sphsal.ops import time_fold

    calls = []
    monkeypatch.setattr(time_fold, "frames_weight",
                        lambda *args, _f=time_fold.frames_weight, **kwargs: calls.append(args[1:])
                        or _f(*args, **kwargs))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, frames, 8, 16, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 3, kt, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    ref = sphere_conv3d_reference(x, weight, bias, stride, 1, interpolation)
    fast = sphere_conv3d(x, weight, bias, stride, 1, interpolation, backend="cpu")
    stride_t = stride if isinstance(stride, int) else stride[0]
    assert calls == [(frames, stride_t)]
    assert fast.is_contiguous()
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    grads = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ref, (x, weight, bias), grads),
                    torch.autograd.grad(fast, (x, weight, bias), grads)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


def test_short_clip_gradcheck():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 2, 2, 6, 12, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 2, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w, b: sphere_conv3d(x, w, b, (1, 2), 1, "bilinear", backend="cpu")
    assert torch.autograd.gradcheck(fn, (x, weight, bias), fast_mode=True)


def test_conv3d_gradcheck_and_single_frame_kernel_is_per_frame_conv2d():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 3, 6, 12, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 2, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w: sphere_conv3d(x, w, None, (2, 2), 1, "bilinear")
    assert torch.autograd.gradcheck(fn, (x, weight), fast_mode=True)
    w1 = weight[:, :, 1:2].detach()
    frames = sphere_conv3d(x.detach(), w1)
    for t in range(3):
        torch.testing.assert_close(frames[:, :, t], sphere_conv2d(x.detach()[:, :, t], w1[:, :, 0]))


def test_float32_fast_path_matches_reference():
    x, weight, bias = _data(b=1, ci=8, co=8, h=16, w=32, dtype=torch.float32)
    for interpolation in ("nearest", "bilinear"):
        torch.testing.assert_close(sphere_conv2d(x, weight, bias, interpolation=interpolation),
                                   sphere_conv2d_reference(x, weight, bias, interpolation=interpolation),
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("call,match", [
    (lambda: sphere_conv2d(torch.zeros(1, 2, 8, 15), torch.zeros(1, 2, 3, 3)), "even"),
    (lambda: sphere_conv2d(torch.zeros(1, 2, 8, 16), torch.zeros(1, 3, 3, 3)), "input channels"),
    (lambda: sphere_conv2d(torch.zeros(1, 2, 8, 16), torch.zeros(1, 2, 2, 2)), "square and odd"),
    (lambda: sphere_conv2d(torch.zeros(2, 8, 16), torch.zeros(1, 2, 3, 3)), "x must be"),
    (lambda: sphere_conv2d(torch.zeros(1, 2, 8, 16), torch.zeros(1, 2, 3, 3), backend="cuda"), "CUDA tensor"),
    (lambda: sphere_conv2d(torch.zeros(1, 2, 8, 16), torch.zeros(1, 2, 3, 3), backend="magic"), "backend"),
    (lambda: sphere_conv3d(torch.zeros(1, 2, 1, 8, 16), torch.zeros(1, 2, 3, 3, 3), stride=(0, 1)),
     "temporal stride"),
    (lambda: sphere_conv2d(torch.zeros(1, 4, 8, 16), torch.zeros(3, 2, 3, 3), groups=2), "groups must be"),
    (lambda: sphere_conv2d(torch.zeros(1, 4, 8, 16), torch.zeros(4, 1, 3, 3), groups=2), "1 per group"),
    (lambda: sphere_conv3d(torch.zeros(1, 4, 2, 8, 16), torch.zeros(4, 2, 3, 3, 3), groups=0),
     "groups must be"),
    (lambda: sphere_conv2d(torch.zeros(1, 2, 8, 16, dtype=torch.long), torch.zeros(1, 2, 3, 3)),
     "x must be a floating-point tensor, got torch.int64"),
    (lambda: sphere_conv2d(torch.zeros(1, 2, 8, 16, dtype=torch.bfloat16), torch.zeros(1, 2, 3, 3)),
     r"x is torch.bfloat16 on cpu but weight is torch.float32 on cpu; move the layer .*module.to\(x\)"),
    (lambda: sphere_conv3d(torch.zeros(1, 2, 1, 8, 16), torch.zeros(1, 2, 3, 3, 3), torch.zeros(1).double()),
     "but bias is torch.float64"),
    (lambda: sphere_conv3d(torch.zeros(1, 2, 4, 8, 16), torch.zeros(1, 2, 3, 3, 3), stride=(1.5, 2)),
     r"temporal stride must be an integer >= 1, got 1.5"),
    (lambda: sphere_conv3d(torch.zeros(1, 2, 4, 8, 16), torch.zeros(1, 2, 3, 3, 3), stride=(1, 2.5)),
     r"spatial stride must be an integer >= 1, got 2.5"),
    (lambda: sphere_conv3d_reference(torch.zeros(1, 2, 4, 8, 16), torch.zeros(1, 2, 3, 3, 3), stride=(0, 1)),
     "temporal stride must be an integer >= 1, got 0"),
    (lambda: sphere_conv3d(torch.zeros(1, 2, 4, 8, 16), torch.zeros(1, 2, 3, 3, 3), stride="2"),
     "stride must be an int"),
    (lambda: sphere_conv3d(torch.zeros(1, 2, 0, 8, 16), torch.zeros(1, 2, 3, 3, 3)), "x must not be empty"),
    (lambda: sphere_conv2d(torch.zeros(1, 2, 0, 16), torch.zeros(1, 2, 3, 3)), "x must not be empty"),
    (lambda: sphere_conv2d(torch.zeros(1, 0, 8, 16), torch.zeros(2, 0, 3, 3)), "at least one output and one"),
    (lambda: sphere_conv2d(torch.zeros(1, 2, 8, 16), torch.zeros(0, 2, 3, 3)), "at least one output and one"),
    (lambda: sphere_conv2d(torch.zeros(1, 2, 8, 16), torch.zeros(2, 2, 3, 3), groups=True), "groups must be"),
    (lambda: sphere_conv2d(torch.zeros(1, 2, 8, 16), torch.zeros(2, 2, 3, 3), [0.0, 1.0]),
     r"bias must be a tensor of shape \(2,\) or None, got list"),
])
def test_bad_input_gets_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.usefixtures("weight_grad_method")
@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
def test_fast_path_equals_reference_on_a_grid_with_every_kind_of_piece(interpolation, stencil, stride):
    """60 x 120 has plain 3x3 bands, bands of two units, units widened by a zero column (odd column
    spans at stride 2) and gathered rows; the fast path must match the reference on all of them (with
    oneDNN's weight gradients, both kinds of unit weight gradient in one call)."""
    from sphsal.ops.banded_plan import Band, GatherGroup, banded_plan

    h, w = 60, 120
    plan = banded_plan(neighbour_table(h, w, 3, stride, 1, stencil, interpolation))
    kinds = {type(p) for p in plan.pieces}
    if interpolation == "nearest":
        assert kinds == {Band, GatherGroup}
    if (interpolation, stencil) == ("nearest", "cap"):
        assert any(len(p.units) > 1 for p in plan.pieces if isinstance(p, Band))
    if (interpolation, stencil, stride) == ("nearest", "cap", 1):
        dense = [u.box == (3, 3) and u.dilation == (1, 1) for p in plan.pieces if isinstance(p, Band)
                 for u in p.units]
        assert any(dense) and not all(dense)
    x, weight, bias = _data(b=2, ci=2, co=3, h=h, w=w)
    params = [t.requires_grad_() for t in (x, weight, bias)]
    ref = sphere_conv2d_reference(x, weight, bias, stride, 1, interpolation, stencil)
    fast = sphere_conv2d(x, weight, bias, stride, 1, interpolation, stencil, backend="cpu")
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ref, params, g), torch.autograd.grad(fast, params, g)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("b", [1, 3])
def test_gathered_rows_split_over_batch_items_and_channel_chunks(interpolation, b):
    """The tap scatter runs one task per (batch item, chunk of channels): with 40 channels on 3 threads
    a single image is split into chunks of 16, 16 and 8 channels, three images into whole ones."""
    from sphsal.ops import _cpu_kernels

    assert _cpu_kernels.channel_chunk(40, 3, 1) == 16 and _cpu_kernels.channel_chunk(40, 3, 3) == 48
    assert _cpu_kernels.channel_chunk(64, 2, 2) == 64 and _cpu_kernels.channel_chunk(64, 2, 1) == 32
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        x, weight, bias = _data(b=b, ci=40, co=5, h=8, w=16)
        params = [t.requires_grad_() for t in (x, weight, bias)]
        ref = sphere_conv2d_reference(x, weight, bias, 1, 1, interpolation)
        fast = sphere_conv2d(x, weight, bias, 1, 1, interpolation, backend="cpu")
        g = torch.randn_like(ref)
        for a, c in zip(torch.autograd.grad(ref, params, g), torch.autograd.grad(fast, params, g)):
            torch.testing.assert_close(c, a, rtol=1e-10, atol=1e-10)
    finally:
        torch.set_num_threads(threads)


def test_channels_last_input_gives_channels_last_output_and_other_dtypes_run_in_float32():
    x, weight, bias = _data(b=2, ci=4, co=3, h=16, w=32, dtype=torch.float32)
    ref = sphere_conv2d(x, weight, bias)
    out = sphere_conv2d(x.contiguous(memory_format=torch.channels_last), weight, bias)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref)
    half = sphere_conv2d(x.bfloat16(), weight.bfloat16(), bias.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), ref, rtol=0.05, atol=0.1)


def test_the_fast_path_keeps_torch_thread_count():
    """Starting numba's OpenMP layer resets the OpenMP thread count; the fast path restores torch's."""
    import subprocess
    import sys

    code = ("import torch; from sphsal.ops import sphere_conv2d; torch.set_num_threads(1); "
            "sphere_conv2d(torch.randn(1, 2, 8, 16), torch.randn(2, 2, 3, 3)); "
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize("ci,co", [(1, 1), (3, 1), (1, 3), (4, 5)])
def test_fast_path_with_single_channels_and_channels_last_weights(ci, co):
    x, weight, bias = _data(b=1, ci=ci, co=co, h=8, w=16)
    weight = weight.contiguous(memory_format=torch.channels_last)
    params = [t.requires_grad_() for t in (x, weight, bias)]
    ref = sphere_conv2d_reference(x, weight, bias)
    fast = sphere_conv2d(x, weight, bias, backend="cpu")
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(torch.autograd.grad(ref.sum(), params), torch.autograd.grad(fast.sum(), params)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


def test_forked_dataloader_workers_run_the_kernels_after_the_parent_did():
    """GNU OpenMP is not fork-safe: numba terminates a forked child that starts a parallel region after
    its parent ran one. sphsal's kernels run their serial twins there (a worker computing ground truth
    or running a spherical layer after the training process ran spherical layers)."""
    import subprocess
    import sys

    code = """
import torch
from sphsal.ops import sphere_conv2d
from sphsal.metrics import density_from_fixations

x, w = torch.randn(1, 2, 8, 16), torch.randn(2, 2, 3, 3)
sphere_conv2d(torch.randn(2, 4, 32, 64), torch.randn(4, 4, 3, 3)).sum()  # starts numba's threads here

class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        density = density_from_fixations(torch.tensor([[0.1, 0.2]]), 16, 32, 5.0)
        return sphere_conv2d(x, w).sum() + density.sum()

loader = torch.utils.data.DataLoader(Items(), num_workers=2, multiprocessing_context="fork", timeout=120)
values = [float(v) for v in loader]
assert len(values) == 2 and all(v == v for v in values), values
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


@pytest.mark.usefixtures("weight_grad_method")
@pytest.mark.parametrize("grad_of", ["input", "weight"])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("ci,co,groups", [(2, 3, 1), (4, 6, 2), (3, 6, 3)])
def test_fast_path_gives_one_gradient_when_only_one_is_needed(grad_of, interpolation, ci, co, groups):
    """Backward with only the input (frozen layer) or only the weight (first layer) requiring a gradient
    equals the reference's, on a grid with bands and gathered rows (plain, grouped and depthwise)."""
    x, weight, bias = _data(b=2, ci=ci, co=co, h=30, w=60)
    weight = weight[:, :ci // groups].contiguous()
    wanted = x if grad_of == "input" else weight
    wanted.requires_grad_()
    g = torch.randn(2, co, 30, 60, dtype=torch.float64)
    ref = sphere_conv2d_reference(x, weight, bias, 1, 1, interpolation, "cap", groups)
    fast = sphere_conv2d(x, weight, bias, 1, 1, interpolation, "cap", backend="cpu", groups=groups)
    expected = torch.autograd.grad(ref, wanted, g)[0]
    torch.testing.assert_close(torch.autograd.grad(fast, wanted, g)[0], expected, rtol=1e-10, atol=1e-10)


GROUPS = [(4, 6, 2), (4, 4, 4), (3, 6, 3)]  # (Ci, Co, groups): grouped, depthwise, depthwise x2


def _assert_same_outputs_and_gradients(fast_fn, ref_fn, params):
    ref, fast = ref_fn(*params), fast_fn(*params)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(ref, params, g), torch.autograd.grad(fast, params, g)):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
@pytest.mark.parametrize("ci,co,groups", GROUPS)
def test_grouped_fast_path_equals_reference(interpolation, stencil, stride, ci, co, groups):
    """Grouped and depthwise convolutions on a grid with bands and gathered rows (see the test above):
    grouped band units and group-major tap blocks give the reference's outputs and gradients."""
    x, weight, bias = _data(b=2, ci=ci, co=co, h=60, w=120)
    params = [t.requires_grad_() for t in (x, weight[:, :ci // groups].contiguous(), bias)]
    _assert_same_outputs_and_gradients(
        lambda *p: sphere_conv2d(*p, stride, 1, interpolation, stencil, backend="cpu", groups=groups),
        lambda *p: sphere_conv2d_reference(*p, stride, 1, interpolation, stencil, groups), params)


@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
def test_grouped_gradcheck(interpolation, stencil, stride):
    x, weight, bias = _data(b=1, ci=4, co=4, h=6, w=12)
    args = (x.requires_grad_(), weight[:, :2].contiguous().requires_grad_(), bias.requires_grad_())
    fn = lambda x, w, b: sphere_conv2d(x, w, b, stride, 1, interpolation, stencil, groups=2)
    assert torch.autograd.gradcheck(fn, args, fast_mode=True)


def test_grouped_reference_is_one_convolution_per_group():
    x, weight, bias = _data(ci=4, co=6, h=8, w=16)
    weight = weight[:, :2]
    out = sphere_conv2d_reference(x, weight, bias, 1, 1, "bilinear", "cap", groups=2)
    parts = [sphere_conv2d_reference(x[:, 2 * q:2 * q + 2], weight[3 * q:3 * q + 3], bias[3 * q:3 * q + 3],
                                     1, 1, "bilinear", "cap") for q in range(2)]
    torch.testing.assert_close(out, torch.cat(parts, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("frames", [5, 2])  # 2 < kt: grouped clips skip the frames-as-channels fold
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("ci,co,groups", GROUPS[:2])
def test_grouped_clip_fast_path_equals_reference(frames, interpolation, ci, co, groups):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, ci, frames, 8, 16, generator=g, dtype=torch.float64)
    weight = torch.randn(co, ci // groups, 3, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(co, generator=g, dtype=torch.float64)
    params = [t.requires_grad_() for t in (x, weight, bias)]
    _assert_same_outputs_and_gradients(
        lambda *p: sphere_conv3d(*p, (1, 2), 1, interpolation, backend="cpu", groups=groups),
        lambda *p: sphere_conv3d_reference(*p, (1, 2), 1, interpolation, groups=groups), params)


@pytest.mark.parametrize("interpolation,stencil",
                         list(itertools.product(["nearest", "bilinear"], ["cap", "gnomonic"])))
def test_a_one_by_one_stencil_at_stride_one_is_each_pixel_itself(interpolation, stencil):
    """What lets 1x1 kernels at stride 1 run as planar 1x1 convolutions (sphsal.ops.sphere_conv2d)."""
    table = neighbour_table(8, 16, 1, 1, 1, stencil, interpolation)
    assert torch.equal(table.rows[:, 0, 0], torch.arange(8)) and not table.cols[:, 0, 0].any()
    assert torch.equal(table.weights[:, 0, 0], torch.ones(8, dtype=table.weights.dtype))


@pytest.mark.parametrize("interpolation,stencil,stride", OPTIONS)
@pytest.mark.parametrize("groups", [1, 2])
def test_one_by_one_kernels_equal_reference(interpolation, stencil, stride, groups):
    x, weight, bias = _data(ci=4, co=6, h=8, w=16, k=1)
    params = [t.requires_grad_() for t in (x, weight[:, :4 // groups].contiguous(), bias)]
    _assert_same_outputs_and_gradients(
        lambda *p: sphere_conv2d(*p, stride, 1, interpolation, stencil, groups=groups),
        lambda *p: sphere_conv2d_reference(*p, stride, 1, interpolation, stencil, groups), params)
    g = torch.Generator().manual_seed(3)
    clip = torch.randn(2, 4, 3, 8, 16, generator=g, dtype=torch.float64, requires_grad=True)
    weight3 = torch.randn(6, 4 // groups, 3, 1, 1, generator=g, dtype=torch.float64, requires_grad=True)
    _assert_same_outputs_and_gradients(
        lambda *p: sphere_conv3d(*p, None, (2, stride), 1, interpolation, stencil, groups=groups),
        lambda *p: sphere_conv3d_reference(*p, None, (2, stride), 1, interpolation, stencil, groups),
        [clip, weight3])


@pytest.mark.parametrize("kt, pad, stride_t, frames",
                         [(3, 4, 1, 2), (2, 3, 1, 1), (3, 4, 2, 1), (3, 1, 1, 2)])
def test_frames_as_channels_equals_conv3d_with_any_temporal_padding(kt, pad, stride_t, frames):
    """Output frames whose window lies wholly in the padding after the clip get zero weight (a padding
    of kt or more frames crashed in F.pad)."""
    from sphsal.ops.time_fold import conv_frames_as_channels

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, frames, 4, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 3, kt, 3, 3, generator=g, dtype=torch.float64)
    out = conv_frames_as_channels(x, weight, None, stride_t, pad,
                                  lambda images, w, b: F.conv2d(images, w, b, padding=1))
    expected = F.conv3d(x, weight, None, (stride_t, 1, 1), (pad, 1, 1))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("frames,kt", [(4, 3), (2, 3), (3, 1)])
@pytest.mark.parametrize("groups", [1, 2])
def test_an_empty_batch_gives_an_empty_output_and_gradients(frames, kt, groups):
    """As nn.Conv2d / nn.Conv3d: B = 0 gives a ``(0, Co, ...)`` output and zero weight and bias gradients
    on every backend (the fast CPU path used to fail reshaping its empty flat buffer)."""
    x, weight, bias = _data(b=0, ci=4, co=2)
    clip = torch.zeros(0, 4, frames, 8, 16, dtype=torch.float64)
    weight3 = torch.randn(2, 4 // groups, kt, 3, 3, dtype=torch.float64)
    for backend in ("reference", "cpu"):
        for inputs, conv, shape in (((x, weight[:, :4 // groups]), sphere_conv2d, (0, 2, 8, 16)),
                                    ((clip, weight3), sphere_conv3d, (0, 2, frames, 8, 16))):
            params = [t.clone().requires_grad_() for t in (*inputs, bias)]
            out = conv(*params, backend=backend, groups=groups)
            assert out.shape == shape
            out.sum().backward()
            assert params[0].grad.shape == inputs[0].shape
            assert torch.equal(params[1].grad, torch.zeros_like(inputs[1]))
            assert torch.equal(params[2].grad, torch.zeros_like(bias))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_autocast_leaves_float64_layers_in_float64(backend):
    """As aten's convolutions: torch.autocast casts float32 (and half) tensors to its dtype but leaves
    float64 ones alone, so a float64 layer on float64 input stays exact under autocast."""
    x, weight, bias = _data(h=8, w=16)
    expected = sphere_conv2d_reference(x, weight, bias)
    clip = torch.randn(1, 3, 2, 8, 16, dtype=torch.float64)
    weight3 = torch.randn(2, 3, 3, 3, 3, dtype=torch.float64)
    expected3 = sphere_conv3d_reference(clip, weight3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sphere_conv2d(x, weight, bias, backend=backend)
        out3 = sphere_conv3d(clip, weight3, backend=backend)
        assert F.conv2d(x, weight, bias).dtype == torch.float64  # what aten does
    assert out.dtype == out3.dtype == torch.float64
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out3, expected3, rtol=1e-12, atol=1e-12)
