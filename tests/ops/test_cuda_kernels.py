import glob
import os
import shutil
import subprocess

import pytest
import torch
import torch.nn.functional as F

from sphsal.ops import sphere_conv2d, sphere_conv2d_reference, sphere_conv3d, sphere_conv3d_reference
from sphsal.ops.cuda import _inverse_table, available, kernel_source_path
from sphsal.ops.sphere_conv import gather_taps
from sphsal.ops.stencils import NeighbourTable, neighbour_table

CSRC = os.path.dirname(kernel_source_path())
SOURCES = sorted(glob.glob(os.path.join(CSRC, "*.cu")))
KERNELS = {"sphere_conv.cu": (["sphere_conv_forward", "sphere_conv_backward_weight"], 1),
           "sphere_conv_mma.cu": (["sphere_conv_mma_gather", "sphere_conv_mma_weight_grad",
                                   "sphere_conv_mma_operands"], 3)}


def test_kernel_sources_are_found():
    assert sorted(os.path.basename(p) for p in SOURCES) == sorted(KERNELS)
    assert os.path.isfile(os.path.join(CSRC, "sphere_conv_common.cuh"))


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("source", SOURCES, ids=os.path.basename)
def test_cuda_sources_compile_to_ptx(source, tmp_path):
    out = tmp_path / "kernel.ptx"
    command = ["nvcc", "-ptx", "-arch=sm_80", "-std=c++14", f"-I{CSRC}", source, "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ptx = out.read_text()
    names, instances = KERNELS[os.path.basename(source)]
    for kernel in names:
        assert ptx.count(f".entry _Z{len(kernel)}{kernel}") == instances, f"{kernel}: not {instances} dtypes"


@pytest.mark.parametrize("interpolation,stride,stencil", [("nearest", 1, "cap"), ("bilinear", 1, "cap"),
                                                          ("nearest", 2, "cap"), ("bilinear", 2, "gnomonic")])
def test_inverse_table_gives_the_input_gradient(interpolation, stride, stencil):
    """The backward kernels' input gradient: the output gradient, zero-inserted to the input's width,
    gathered through the inverse table with the transposed weight (here in float64 on the CPU)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 12, 24, dtype=torch.float64, generator=g, requires_grad=True)
    weight = torch.randn(5, 3, 3, 3, dtype=torch.float64, generator=g)
    out = sphere_conv2d_reference(x, weight, None, stride, 1, interpolation, stencil)
    grad = torch.randn(out.shape, dtype=torch.float64, generator=g)
    (expected,) = torch.autograd.grad(out, x, grad)
    table = neighbour_table(12, 24, 3, stride, 1, stencil, interpolation)
    rows, cols, weights = _inverse_table(table)
    inverse = type(table)(rows, cols, weights, 12, 24, 3, 1, 1, stencil, interpolation)
    g_up = torch.zeros(2, 5, 12 // stride, 24, dtype=torch.float64)
    g_up[..., ::stride] = grad
    taps = gather_taps(g_up, inverse)  # (B, Co, H, K, W)
    got = torch.einsum("boikj,ock->bcij", taps, weight.reshape(5, 3, 9))
    torch.testing.assert_close(got, expected)


def _samples_like_the_kernels(x, rows, cols, taps, stride, w_out):
    """What the gather kernels read: ``(B, C, H_out, K, W_out)`` samples through a device table."""
    # gather_taps reads the tables, the stride and the output width; the other fields are labels
    table = NeighbourTable(rows.long(), cols.long(), taps.double(), x.shape[2], w_out * stride, 3, stride, 1,
                           "cap", "nearest")
    return gather_taps(x, table)


@pytest.fixture
def launches_in_torch(monkeypatch):
    """The CUDA backend with its two kernel launchers replaced by torch equivalents, so that its
    operators (tables looked up inside, autograd, fake tensors, time fold, stride zero-insertion) run
    on the CPU."""
    from sphsal.ops import cuda

    monkeypatch.setattr(cuda, "_gather_conv", lambda x, weight, rows, cols, taps, stride, w_out: torch.einsum(
        "bcikj,ock->boij", _samples_like_the_kernels(x, rows, cols, taps, stride, w_out), weight))
    monkeypatch.setattr(cuda, "_weight_grad", lambda g, x, weight, rows, cols, taps, stride: torch.einsum(
        "boij,bcikj->ock", g, _samples_like_the_kernels(x, rows, cols, taps, stride, g.shape[3])))
    return cuda


def _assert_same_gradients(out, expected, inputs):
    """float32 gradients equal up to the rounding of their sums (a clip's weight gradient of size 8 was
    3e-5 off the reference on an AMD EPYC: another summation order; wrong plumbing is off by O(1))."""
    grad = torch.randn_like(expected)
    for got, want in zip(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(expected, inputs, grad)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("interpolation,stride,stencil", [("nearest", 1, "cap"), ("bilinear", 2, "gnomonic")])
def test_cuda_ops_plumbing_on_the_cpu(launches_in_torch, interpolation, stride, stencil):
    """Forward and all gradients equal the reference; torch.compile captures the op in one graph."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 16, requires_grad=True)
    weight, bias = torch.randn(4, 3, 3, 3, requires_grad=True), torch.randn(4, requires_grad=True)

    def run(a):
        return launches_in_torch.sphere_conv2d_cuda(a, weight, bias, 3, stride, 1, interpolation, stencil)

    expected = sphere_conv2d_reference(x, weight, bias, stride, 1, interpolation, stencil)
    out = run(x)
    torch.testing.assert_close(out, expected)
    _assert_same_gradients(out, expected, [x, weight, bias])
    torch.testing.assert_close(torch.compile(run, backend="aot_eager", fullgraph=True)(x), expected)


def test_cuda_backward_computes_only_the_needed_gradients(launches_in_torch, monkeypatch):
    """Frozen weights take no weight-gradient kernel, a first layer's input no input-gradient gather (the
    backward computed both always)."""
    cuda, calls = launches_in_torch, []
    for name in ("_input_grad", "_weight_grad"):
        original = getattr(cuda, name)
        monkeypatch.setattr(cuda, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    torch.manual_seed(0)
    for x_grad, w_grad, expected in ((True, False, ["_input_grad"]), (False, True, ["_weight_grad"])):
        x = torch.randn(2, 3, 8, 16, requires_grad=x_grad)
        weight = torch.randn(4, 3, 3, 3, requires_grad=w_grad)
        calls.clear()
        out = cuda.sphere_conv2d_cuda(x, weight, None, 3, 2, 1, "bilinear", "cap")
        _assert_same_gradients(out, sphere_conv2d_reference(x, weight, None, 2, 1, "bilinear", "cap"),
                               [x if x_grad else weight])
        assert calls == expected


@pytest.mark.parametrize("interpolation,stride,stencil", [("nearest", 2, "cap"), ("bilinear", 2, "gnomonic"),
                                                          ("bilinear", 1, "cap")])
def test_cuda_transposed_plumbing_on_the_cpu(launches_in_torch, interpolation, stride, stencil):
    """The transposed operator (the input-gradient gather as its forward, the convolution and the
    weight gradient as its backward) equals the reference, gradients included, and compiles whole."""
    from sphsal.ops import sphere_conv_transpose2d_reference

    torch.manual_seed(0)
    x = torch.randn(2, 4, 16 // stride, 32 // stride, requires_grad=True)
    weight, bias = torch.randn(4, 3, 3, 3, requires_grad=True), torch.randn(3, requires_grad=True)

    def run(a):
        return launches_in_torch.sphere_conv_transpose2d_cuda(a, weight, bias, 3, stride, 1, interpolation,
                                                              stencil)

    expected = sphere_conv_transpose2d_reference(x, weight, bias, stride, 1, interpolation, stencil)
    out = run(x)
    assert out.shape == (2, 3, 16, 32)
    torch.testing.assert_close(out, expected)
    _assert_same_gradients(out, expected, [x, weight, bias])
    torch.testing.assert_close(torch.compile(run, backend="aot_eager", fullgraph=True)(x), expected)


@pytest.mark.parametrize("transposed", [False, True], ids=["conv", "transposed"])
def test_cuda_ops_double_backward_and_flops_on_the_cpu(launches_in_torch, transposed):
    """A gradient with create_graph=True is differentiable (the backward operators have no derivative:
    the reference's is used) and its derivative is the reference's; FlopCounterMode counts the planar
    layer's FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    from sphsal.ops import sphere_conv_transpose2d_reference

    stride = 2 if transposed else 1
    cuda = launches_in_torch
    fast = cuda.sphere_conv_transpose2d_cuda if transposed else cuda.sphere_conv2d_cuda
    reference = sphere_conv_transpose2d_reference if transposed else sphere_conv2d_reference
    g = torch.Generator().manual_seed(0)
    x, weight = torch.randn(1, 2, 4, 8, generator=g), torch.randn(2, 2, 3, 3, generator=g)
    direction = [torch.randn(t.shape, generator=g) for t in (x, weight)]
    second = []
    for op in (lambda a, w: fast(a, w, None, 3, stride, 1, "bilinear", "cap"),
               lambda a, w: reference(a, w, None, stride, 1, "bilinear", "cap")):
        leaves = [t.clone().requires_grad_() for t in (x, weight)]
        grads = torch.autograd.grad((op(*leaves) ** 2).sum(), leaves, create_graph=True)
        second.append(torch.autograd.grad(sum((a * d).sum() for a, d in zip(grads, direction)), leaves))
    for got, expected in zip(*second):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    planar = F.conv_transpose2d if transposed else F.conv2d
    counts = []
    weight.requires_grad_()  # the CUDA backward operator computes both gradients
    for run in (lambda a: fast(a, weight, None, 3, 1, 1, "nearest", "cap"),
                lambda a: planar(a, weight, None, padding=1)):
        with FlopCounterMode(display=False) as counter:
            run(x.clone().requires_grad_()).sum().backward()
        counts.append(counter.get_total_flops())
    assert counts[0] == counts[1] > 0


def test_cuda_clip_plumbing_on_the_cpu(launches_in_torch):
    torch.manual_seed(0)
    clip = torch.randn(2, 3, 4, 8, 16, requires_grad=True)
    weight = torch.randn(4, 3, 3, 3, 3, requires_grad=True)
    expected = sphere_conv3d_reference(clip, weight, None, (2, 1), 1, "nearest", "cap")
    out = launches_in_torch.sphere_conv3d_cuda(clip, weight, None, 3, 1, 1, "nearest", "cap", 2)
    torch.testing.assert_close(out, expected)
    _assert_same_gradients(out, expected, [clip, weight])


def test_cuda_gather_splits_batches_beyond_the_grid_limit(monkeypatch):
    """The gather kernel's grid has one z block per output row (B * H_out, at most 65535, here lowered to
    6): larger batches run in parts. The input gradient of a stride-2 layer has twice the forward's rows,
    so a batch whose forward fits in one launch needs parts in backward (it raised there)."""
    from sphsal.ops import cuda

    grids = []

    def launch(kernel, grid, block, args, shared_floats=0):  # sphere_conv_forward<float> done in torch
        x, weight, rows, cols, taps, out = args[:6]
        w_out, stride = args[14:16]
        assert kernel == "sphere_conv_forward<float>" and grid[2] <= cuda._MAX_GRID_Z
        grids.append(grid)
        samples = _samples_like_the_kernels(x, rows, cols, taps, stride, w_out)
        out.copy_(torch.einsum("bcikj,ock->boij", samples, weight))

    monkeypatch.setattr(cuda, "_MAX_GRID_Z", 6)
    monkeypatch.setattr(cuda, "_launch", launch)
    monkeypatch.setattr(cuda, "uses_tensor_cores", lambda x: False)
    monkeypatch.setattr(cuda, "_weight_grad", lambda g, x, weight, rows, cols, taps, stride: torch.einsum(
        "boij,bcikj->ock", g, _samples_like_the_kernels(x, rows, cols, taps, stride, g.shape[3])))
    torch.manual_seed(0)
    x = torch.randn(3, 2, 4, 8, requires_grad=True)  # forward: 3 x 2 rows, one launch; backward: 3 x 4
    weight = torch.randn(3, 2, 3, 3, requires_grad=True)
    out = cuda.sphere_conv2d_cuda(x, weight, None, 3, 2, 1, "bilinear", "cap")
    expected = sphere_conv2d_reference(x, weight, None, 2, 1, "bilinear", "cap")
    torch.testing.assert_close(out, expected)
    assert len(grids) == 1
    _assert_same_gradients(out, expected, [x, weight])
    assert [grid[2] for grid in grids] == [6, 4, 4, 4]  # the input gradient: three parts of 4 rows


def test_cuda_float64_takes_the_reference_on_auto():
    """The CUDA kernels have no float64: backend='auto' gives float64 CUDA tensors the reference (the
    CUDA operators refused them)."""
    from types import SimpleNamespace

    from sphsal.ops.sphere_conv import _resolve_backend

    x = SimpleNamespace(is_cuda=True, dtype=torch.float64, device=torch.device("cuda", 0))
    assert _resolve_backend(x, "auto") == "reference"


needs_gpu = pytest.mark.skipif(not (torch.cuda.is_available() and available()),
                               reason="needs a CUDA GPU and CuPy")


@pytest.fixture(params=[True, False], ids=["tf32", "exact"])
def allow_tf32(request):
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = request.param
    yield request.param
    torch.backends.cudnn.allow_tf32 = previous


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def _compare(got, expected, dtype, allow_tf32):
    """Relative error bounds: float32 exact 1e-5, TF32 2e-3, float16 4e-3, bfloat16 2e-2."""
    bound = {torch.float16: 4e-3, torch.bfloat16: 2e-2}.get(dtype, 2e-3 if allow_tf32 else 1e-5)
    assert torch.isfinite(got).all()
    assert _relative_error(got.cpu(), expected) < bound


def _compare_with_reference(reference, on_cuda, tensors, dtype, allow_tf32, g):
    """``on_cuda`` run on CUDA ``dtype`` copies of ``tensors`` against ``reference`` on float64 copies:
    the output and every gradient, in ``dtype``, within :func:`_compare`'s bounds."""
    ref_params = [t.double().requires_grad_() for t in tensors]
    ref = reference(*ref_params)
    grad = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    ref_grads = torch.autograd.grad(ref, ref_params, grad)
    cuda_params = [t.to("cuda", dtype).requires_grad_() for t in tensors]
    out = on_cuda(*cuda_params)
    assert out.dtype == dtype and out.shape == ref.shape
    _compare(out, ref, dtype, allow_tf32)
    cuda_grads = torch.autograd.grad(out, cuda_params, grad.to("cuda", dtype))
    for got, expected in zip(cuda_grads, ref_grads):
        assert got.dtype == dtype
        _compare(got, expected, dtype, allow_tf32)


@needs_gpu
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_equals_the_reference(interpolation, stride, dtype, allow_tf32):
    """Forward and all gradients; channel counts and widths that are not multiples of the tiles."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 40, 16, 96, generator=g)
    weight = torch.randn(70, 40, 3, 3, generator=g) / 20
    bias = torch.randn(70, generator=g)
    _compare_with_reference(lambda *p: sphere_conv2d_reference(*p, stride, 1, interpolation),
                            lambda *p: sphere_conv2d(*p, stride, 1, interpolation, backend="cuda"),
                            (x, weight, bias), dtype, allow_tf32, g)


@needs_gpu
@pytest.mark.parametrize("stencil,dilation,kernel", [("gnomonic", 1, 3), ("cap", 2, 3), ("cap", 1, 5)])
def test_cuda_other_stencils(stencil, dilation, kernel):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 8, 20, 40, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 8, kernel, kernel, generator=g, dtype=torch.float64, requires_grad=True)
    ref = sphere_conv2d_reference(x, weight, None, 1, dilation, "bilinear", stencil)
    grad = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    ref_grads = torch.autograd.grad(ref, (x, weight), grad)
    params = [t.detach().float().cuda().requires_grad_() for t in (x, weight)]
    out = sphere_conv2d(*params, None, 1, dilation, "bilinear", stencil, backend="cuda")
    _compare(out, ref, torch.float32, True)
    for got, expected in zip(torch.autograd.grad(out, params, grad.float().cuda()), ref_grads):
        _compare(got, expected, torch.float32, True)


@needs_gpu
@pytest.mark.parametrize("shift", [1, 7])
def test_cuda_rolls_with_the_input(shift):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 16, 24, 48, generator=g).cuda()
    weight = torch.randn(32, 16, 3, 3, generator=g).cuda()
    out = sphere_conv2d(x, weight, None, 1, 1, "bilinear", backend="cuda")
    rolled = sphere_conv2d(torch.roll(x, shift, -1), weight, None, 1, 1, "bilinear", backend="cuda")
    torch.testing.assert_close(rolled, torch.roll(out, shift, -1), rtol=0, atol=0)


@needs_gpu
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("stride", [1, 2])
def test_cuda_carries_a_nan_where_the_cpu_path_does(interpolation, stride, allow_tf32):
    """A NaN input pixel and a NaN output-gradient pixel reach the same outputs and input gradients as
    on the fast CPU path, which skips zero-weight table entries (bilinear corners on the pixel grid, the
    inverse table's padding): the kernels must not multiply those by 0 either."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 64, 16, 32, generator=g)
    x[0, 3, 7, 5] = float("nan")
    weight = torch.randn(64, 64, 3, 3, generator=g) / 20
    masks = []
    for device in ("cpu", "cuda"):
        xd = x.to(device).requires_grad_()
        out = sphere_conv2d(xd, weight.to(device), None, stride, 1, interpolation, backend=device)
        grad_out = torch.zeros_like(out)
        grad_out[0, 2, 3, 14] = float("nan")
        out.backward(grad_out)
        masks.append((out.isnan().cpu(), xd.grad.isnan().cpu()))
    assert masks[0][0].any() and masks[0][1].any()
    assert torch.equal(masks[1][0], masks[0][0]) and torch.equal(masks[1][1], masks[0][1])


@needs_gpu
@pytest.mark.parametrize("stride", [(1, 2), (2, 1)])
@pytest.mark.parametrize("frames", [3, 2])  # 2 < kt: frames as channels (sphsal.ops.time_fold)
def test_cuda_conv3d_equals_the_reference(stride, frames):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 8, frames, 12, 24, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(16, 8, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ref = sphere_conv3d_reference(x, weight, None, stride, 1, "nearest")
    grad = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    ref_grads = torch.autograd.grad(ref, (x, weight), grad)
    params = [t.detach().to("cuda", torch.bfloat16).requires_grad_() for t in (x, weight)]
    out = sphere_conv3d(*params, None, stride, 1, "nearest", backend="cuda")
    _compare(out, ref, torch.bfloat16, True)
    for got, expected in zip(torch.autograd.grad(out, params, grad.to("cuda", torch.bfloat16)), ref_grads):
        _compare(got, expected, torch.bfloat16, True)


@needs_gpu
def test_cuda_ops_compile_with_torch_compile():
    """register_fake lets torch.compile trace through the custom ops (fullgraph, no graph break)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 8, 16, 32, generator=g).cuda().requires_grad_()
    weight = torch.randn(8, 8, 3, 3, generator=g).cuda()
    loss = lambda a: sphere_conv2d(a, weight, backend="cuda").square().sum()  # noqa: E731
    compiled = torch.compile(loss, fullgraph=True)
    eager = loss(x)
    torch.testing.assert_close(compiled(x), eager, rtol=1e-5, atol=1e-5)


@needs_gpu
@pytest.mark.parametrize("interpolation,stride", [("nearest", 2), ("bilinear", 2), ("bilinear", 1)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_transposed_convolution_equals_the_reference(interpolation, stride, dtype, allow_tf32):
    """The transposed operator's forward and all gradients on the CUDA kernels."""
    from sphsal.ops import sphere_conv_transpose2d, sphere_conv_transpose2d_reference

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 70, 16 // stride, 96 // stride, generator=g)
    weight = torch.randn(70, 40, 3, 3, generator=g) / 20
    bias = torch.randn(40, generator=g)
    _compare_with_reference(lambda *p: sphere_conv_transpose2d_reference(*p, stride, 1, interpolation),
                            lambda *p: sphere_conv_transpose2d(*p, stride, 1, interpolation, backend="cuda"),
                            (x, weight, bias), dtype, allow_tf32, g)


@pytest.mark.skipif(not (torch.cuda.device_count() > 1 and available()),
                    reason="needs two CUDA GPUs and CuPy")
def test_cuda_runs_on_the_device_of_its_tensors():
    """Tensors on a GPU that is not the current one: the kernels run on theirs, on its current stream."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 16, 12, 24, generator=g, requires_grad=True)
    weight = torch.randn(8, 16, 3, 3, generator=g, requires_grad=True)
    ref = sphere_conv2d_reference(x.double(), weight.double(), None, 2, 1, "bilinear")
    grad = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    ref_grads = torch.autograd.grad(ref, (x, weight), grad)
    with torch.cuda.device(0):
        params = [t.detach().to("cuda:1").requires_grad_() for t in (x, weight)]
        out = sphere_conv2d(*params, None, 2, 1, "bilinear", backend="cuda")
        grads = torch.autograd.grad(out, params, grad.float().to("cuda:1"))
    _compare(out, ref, torch.float32, torch.backends.cudnn.allow_tf32)
    for got, expected in zip(grads, ref_grads):
        _compare(got, expected, torch.float32, torch.backends.cudnn.allow_tf32)
