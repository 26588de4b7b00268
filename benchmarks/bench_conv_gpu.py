"""Spherical convolution on a CUDA GPU vs cuDNN's nn.Conv2d, side by side in one run.

For each shape and dtype (float32, bfloat16), the median forward time and the median backward time
(CUDA events around ``y = module(x)`` and around ``y.backward(g)``; methods interleaved within each
repeat) and the peak extra device memory of one forward+backward of:

* ``planar``: ``nn.Conv2d(C, Co, 3, padding=1)`` (cuDNN; float32 uses TF32 as PyTorch does by
  default, ``torch.backends.cudnn.allow_tf32``), the reference for all ratios;
* ``sph-nearest`` / ``sph-bilinear``: ``sphsal.nn.SphericalConv2d`` (cap stencil), CUDA backend;
* ``gather-3x`` / ``grid_sample-3x``: the published expand-3x approaches (see ``bench_conv.py``).

Usage: ``python benchmarks/bench_conv_gpu.py [--quick] [--repeats N] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch
from bench_conv import GatherExpandConv, GridSampleExpandConv
from torch import nn

from sphsal.nn import SphericalConv2d

SHAPES = [(2, 64, 64, 120, 240), (2, 64, 64, 240, 480), (1, 256, 256, 60, 120), (8, 64, 64, 240, 480),
          (8, 128, 128, 120, 240)]
QUICK_SHAPES = [(2, 32, 32, 32, 64)]
METHODS = ["planar", "sph-nearest", "sph-bilinear", "gather-3x", "grid_sample-3x"]
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


def measure(shape, dtype: torch.dtype, repeats: int) -> dict[str, dict[str, float]]:
    torch.manual_seed(0)
    b, cin, cout, h, w = shape
    x = torch.randn(b, cin, h, w, device="cuda", dtype=dtype, requires_grad=True)
    grad = torch.randn(b, cout, h, w, device="cuda", dtype=dtype)
    modules = {m: build(m, shape).to("cuda", dtype) for m in METHODS}
    for module in modules.values():  # warm-up: tables, plans, NVRTC compilation, cuDNN autotuning
        for _ in range(3):
            time_step(module, x, grad)
    samples = {m: ([], []) for m in METHODS}
    for _ in range(repeats):
        for m, module in modules.items():
            f, bwd = time_step(module, x, grad)
            samples[m][0].append(f)
            samples[m][1].append(bwd)
    return {m: dict(forward_ms=statistics.median(f), backward_ms=statistics.median(bwd),
                    peak_mib=peak_memory(modules[m], x, grad)) for m, (f, bwd) in samples.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small shape, 5 repeats")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", default=None, help="save the results to this JSON file")
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
    results = []
    for shape in shapes:
        b, cin, cout, h, w = shape
        for name, dtype in DTYPES.items():
            r = measure(shape, dtype, repeats)
            ref = r["planar"]
            for m in METHODS:
                row = dict(shape=list(shape), dtype=name, method=m, **r[m],
                           forward_ratio=r[m]["forward_ms"] / ref["forward_ms"],
                           backward_ratio=r[m]["backward_ms"] / ref["backward_ms"],
                           memory_ratio=r[m]["peak_mib"] / max(ref["peak_mib"], 1e-9))
                results.append(row)
                print(f"{f'({b}, {cin}->{cout}, {h}x{w})':24s} {name:9s} {m:15s} {row['forward_ms']:8.3f} "
                      f"{row['forward_ratio']:6.2f} {row['backward_ms']:8.3f} {row['backward_ratio']:6.2f} "
                      f"{row['peak_mib']:9.1f} {row['memory_ratio']:6.2f}")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            meta = dict(device=device, torch=torch.__version__, repeats=repeats)
            json.dump(dict(meta, results=results), f, indent=2)
        os.replace(tmp, args.json)
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
