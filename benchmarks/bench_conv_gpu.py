"""Spherical convolution on a CUDA GPU vs cuDNN's nn.Conv2d, side by side in one run.

For each shape and dtype (float32, bfloat16), the median forward time and the median backward time
(CUDA events around ``y = module(x)`` and around ``y.backward(g)``; methods interleaved within each
repeat) and the peak extra device memory of one forward+backward of:

* ``planar``: ``nn.Conv2d(C, Co, 3, padding=1)`` (cuDNN; float32 uses TF32 as PyTorch does by
  default, ``torch.backends.cudnn.allow_tf32``), the reference for all ratios;
* ``sph-nearest`` / ``sph-bilinear``: ``sphsal.nn.SphericalConv2d`` (cap stencil), CUDA backend;
* ``gather-3x`` / ``grid_sample-3x``: the published expand-3x approaches (see ``bench_conv.py``).

A second table times ``sphsal.nn.SphericalConvTranspose2d`` (stride 2, CUDA backend) against
``nn.ConvTranspose2d(C, C, 3, 2, 1, 1)`` from half of each of ``TRANSPOSED_SHAPES`` up to it.

Usage: ``python benchmarks/bench_conv_gpu.py [--quick] [--repeats N] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch
from bench_conv import GatherExpandConv, GridSampleExpandConv
from torch import nn

from sphsal.atomic import write_text
from sphsal.cli.options import output_file, positive_int
from sphsal.nn import SphericalConv2d, SphericalConvTranspose2d

SHAPES = [(2, 64, 64, 120, 240), (2, 64, 64, 240, 480), (1, 256, 256, 60, 120), (8, 64, 64, 240, 480),
          (8, 128, 128, 120, 240)]
QUICK_SHAPES = [(2, 32, 32, 32, 64)]
METHODS = ["planar", "sph-nearest", "sph-bilinear", "gather-3x", "grid_sample-3x"]
# (B, C, H, W) of the transposed convolutions' outputs (inputs H/2 x W/2)
TRANSPOSED_SHAPES = [(2, 64, 120, 240), (8, 64, 240, 480)]
QUICK_TRANSPOSED_SHAPES = [(2, 32, 32, 64)]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def build(method: str, shape) -> nn.Module:
    b, cin, cout, h, w = shape
    if method == "planar":
        return nn.Conv2d(cin, cout, 3, padding=1)
    if method.startswith("sph-"):
        return SphericalConv2d(cin, cout, 3, interpolation=method[4:], backend="cuda")
    if method == "gather-3x":
        return GatherExpandConv(cin, cout, h, w)
    return GridSampleExpandConv(cin, cout, h, w)


def _timed(fn) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def time_step(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> tuple[float, float]:
    """Forward and backward milliseconds of one step."""
    module.zero_grad(set_to_none=True)
    x.grad = None
    holder = {}
    forward = _timed(lambda: holder.setdefault("y", module(x)))
    backward = _timed(lambda: holder["y"].backward(grad))
    return forward, backward


def peak_memory(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> float:
    """Peak device memory (MiB) allocated beyond the inputs during one forward+backward."""
    module.zero_grad(set_to_none=True)
    x.grad = None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    module(x).backward(grad)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def measure(modules: dict[str, nn.Module], x_shape, grad_shape, dtype: torch.dtype,
            repeats: int) -> dict[str, dict[str, float]]:
    """Median forward / backward milliseconds and peak MiB of each module (moved to the GPU in
    ``dtype``) on a random ``x_shape`` input and ``grad_shape`` output gradient."""
    torch.manual_seed(0)
    x = torch.randn(*x_shape, device="cuda", dtype=dtype, requires_grad=True)
    grad = torch.randn(*grad_shape, device="cuda", dtype=dtype)
    modules = {m: module.to("cuda", dtype) for m, module in modules.items()}
    for module in modules.values():  # warm-up: tables, plans, NVRTC compilation, cuDNN autotuning
        for _ in range(3):
            time_step(module, x, grad)
    samples = {m: ([], []) for m in modules}
    for _ in range(repeats):
        for m, module in modules.items():
            f, bwd = time_step(module, x, grad)
            samples[m][0].append(f)
            samples[m][1].append(bwd)
    return {m: dict(forward_ms=statistics.median(f), backward_ms=statistics.median(bwd),
                    peak_mib=peak_memory(modules[m], x, grad)) for m, (f, bwd) in samples.items()}


def table_rows(label: str, shape, dtype_name: str, measured: dict[str, dict[str, float]]) -> list[dict]:
    """Rows with ratios to the first method's (the planar reference), printed as they are made."""
    ref = next(iter(measured.values()))
    rows = []
    for m, r in measured.items():
        row = dict(shape=list(shape), dtype=dtype_name, method=m, **r,
                   forward_ratio=r["forward_ms"] / ref["forward_ms"],
                   backward_ratio=r["backward_ms"] / ref["backward_ms"],
                   memory_ratio=r["peak_mib"] / max(ref["peak_mib"], 1e-9))
        rows.append(row)
        print(f"{label:24s} {dtype_name:9s} {m:15s} {row['forward_ms']:8.3f} {row['forward_ratio']:6.2f} "
              f"{row['backward_ms']:8.3f} {row['backward_ratio']:6.2f} {row['peak_mib']:9.1f} "
              f"{row['memory_ratio']:6.2f}")
    return rows


def transposed_modules(c: int) -> dict[str, nn.Module]:
    """``nn.ConvTranspose2d(c, c, 3, 2, 1, 1)`` and its spherical twins (CUDA backend)."""
    modules = {"planar": nn.ConvTranspose2d(c, c, 3, 2, 1, 1)}
    for interpolation in ("nearest", "bilinear"):
        modules[f"sph-{interpolation}"] = SphericalConvTranspose2d(c, c, 3, 2, interpolation=interpolation,
                                                                   backend="cuda")
    return modules


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small shape, 5 repeats")
    parser.add_argument("--repeats", type=positive_int, default=30)
    parser.add_argument("--json", type=output_file, default=None, help="save the results to this JSON file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to measure")
        return 1
    shapes, repeats = (QUICK_SHAPES, 5) if args.quick else (SHAPES, args.repeats)
    device = torch.cuda.get_device_name()
    print(f"{device}, torch {torch.__version__}, TF32 in cuDNN: {torch.backends.cudnn.allow_tf32}, "
          f"median of {repeats} interleaved repeats")
    header = (f"{'shape (B, C->Co, HxW)':24s} {'dtype':9s} {'method':15s} {'fwd ms':>8s} {'x':>6s} "
              f"{'bwd ms':>8s} {'x':>6s} {'peak MiB':>9s} {'x':>6s}")
    print(header)
    print("-" * len(header))
    results, transposed = [], []
    for shape in shapes:
        b, cin, cout, h, w = shape
        for name, dtype in DTYPES.items():
            measured = measure({m: build(m, shape) for m in METHODS}, (b, cin, h, w), (b, cout, h, w), dtype,
                               repeats)
            results += table_rows(f"({b}, {cin}->{cout}, {h}x{w})", shape, name, measured)
    print("\ntransposed 3x3 stride 2, (B, C, HxW) of the output; planar: "
          "nn.ConvTranspose2d(C, C, 3, 2, 1, 1)")
    for shape in QUICK_TRANSPOSED_SHAPES if args.quick else TRANSPOSED_SHAPES:
        b, c, h, w = shape
        for name, dtype in DTYPES.items():
            measured = measure(transposed_modules(c), (b, c, h // 2, w // 2), shape, dtype, repeats)
            transposed += table_rows(f"({b}, {c}, {h}x{w})", shape, name, measured)
    if args.json:
        meta = dict(device=device, torch=torch.__version__, repeats=repeats)
        write_text(args.json, json.dumps(dict(meta, results=results, transposed=transposed), indent=2))
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
