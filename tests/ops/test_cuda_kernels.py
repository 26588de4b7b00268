import glob
import os
import shutil
import subprocess

import pytest
import torch

from sphsal.ops import sphere_conv2d, sphere_conv2d_reference
from sphsal.ops.cuda import available, kernel_source_path

SOURCES = sorted(glob.glob(os.path.join(os.path.dirname(kernel_source_path()), "*.cu")))


def test_kernel_sources_are_found():
    assert SOURCES and all(os.path.isfile(p) for p in SOURCES)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("source", SOURCES, ids=os.path.basename)
def test_cuda_sources_compile_to_ptx(source, tmp_path):
    out = tmp_path / "kernel.ptx"
    result = subprocess.run(["nvcc", "-ptx", "-arch=sm_80", "-std=c++14", source, "-o", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ptx = out.read_text()
    for kernel in ("sphere_conv_forward", "sphere_conv_backward_input", "sphere_conv_backward_weight"):
        assert ptx.count(kernel) >= 3, f"{kernel} is not instantiated for float, half and bfloat16"


needs_gpu = pytest.mark.skipif(not (torch.cuda.is_available() and available()),
                               reason="needs a CUDA GPU and CuPy")


@needs_gpu
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.float16, 2e-2), (torch.bfloat16, 8e-2)])
def test_cuda_equals_cpu(interpolation, stride, dtype, tol):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 40, 16, 32, generator=g)
    weight = torch.randn(36, 40, 3, 3, generator=g) / 20
    bias = torch.randn(36, generator=g)
    ref_params = [t.clone().requires_grad_() for t in (x, weight, bias)]
    ref = sphere_conv2d_reference(*ref_params, stride, 1, interpolation)
    grad = torch.randn(ref.shape, generator=g)
    ref_grads = torch.autograd.grad(ref, ref_params, grad)
    cuda_params = [t.to("cuda", dtype).requires_grad_() for t in (x, weight, bias)]
    out = sphere_conv2d(*cuda_params, stride, 1, interpolation, backend="cuda")
    assert out.dtype == dtype
    torch.testing.assert_close(out.float().cpu(), ref, rtol=tol, atol=tol * 10)
    cuda_grads = torch.autograd.grad(out, cuda_params, grad.to("cuda", dtype))
    for a, b in zip(ref_grads, cuda_grads):
        torch.testing.assert_close(b.float().cpu(), a, rtol=tol, atol=tol * 40)
