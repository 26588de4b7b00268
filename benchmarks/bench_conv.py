"""Spherical convolution vs nn.Conv2d vs the published expand-3x approaches, side by side (CPU).

For each shape, forward+backward time (median over repeats, methods interleaved within each repeat so
that machine noise hits all of them alike) and peak extra memory of one forward+backward step
(peak resident-set growth, ``VmHWM`` after resetting it, in a fresh subprocess per method; Linux) of:

* ``planar``: ``nn.Conv2d(C, Co, 3, padding=1)``, the reference for all ratios;
* ``sph-nearest`` / ``sph-bilinear``: ``sphsal.nn.SphericalConv2d`` (cap stencil, fast CPU path);
* ``gather-3x``: the GTSD spherical U-Net approach, re-implemented here: an ``[H, W, 9]`` neighbour
  index expands the input to ``3H x 3W``, then a stride-3 3x3 convolution;
* ``grid_sample-3x``: the SphereNet approach, re-implemented here: ``grid_sample`` (bilinear) at the
  gnomonic tap positions to ``3H x 3W``, then a stride-3 3x3 convolution.

Next to each time, the MiB of pages the step faulted in (median per step): a buffer that the C
allocator gave back to the system between steps is faulted in again, and whether it was given back
depends on what the process allocated before, not only on the method. The expand-3x methods' tensors
(over glibc's 32 MiB mapping limit) are faulted in at every step.

A second table times ``SphericalConv3d`` against ``nn.Conv3d(C, C, 3, padding=1)`` at the small clip
shapes of AVS360's encoder, where per-operation overhead rather than arithmetic dominates; a third,
``SphericalConv2d`` against ``nn.Conv2d`` for the other layer kinds that ``convert_to_spherical`` maps
(1x1 kernels, depthwise and grouped 3x3, and the transposed 3x3 convolution up to that shape from half
of it) at the first image shape.

Usage: ``python benchmarks/bench_conv.py [--quick] [--repeats N] [--threads 2] [--json out.json]
[--shape B,C,CO,H,W ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from _options import positive_ints
from torch import nn

from sphsal.atomic import write_text
from sphsal.cli.options import output_file, positive_int
from sphsal.nn import SphericalConv2d, SphericalConv3d, SphericalConvTranspose2d
from sphsal.ops.stencils import neighbour_table, stencil_pixel_coords

SHAPES = [(2, 64, 64, 120, 240), (2, 64, 64, 240, 480), (1, 256, 256, 60, 120)]
QUICK_SHAPES = [(1, 16, 16, 32, 64)]
CLIP_SHAPES = [(4, 16, 4, 32, 64), (4, 32, 4, 16, 32), (4, 64, 2, 8, 16), (4, 128, 1, 4, 8)]
QUICK_CLIP_SHAPES = [(2, 8, 2, 8, 16)]
CLIP_METHODS = ["planar3d", "sph3d-nearest", "sph3d-bilinear"]
METHODS = ["planar", "sph-nearest", "sph-bilinear", "gather-3x", "grid_sample-3x"]


class GatherExpandConv(nn.Module):
    """GTSD-style: gather the 9 cap neighbours of every pixel into a 3H x 3W image, conv stride 3."""

    def __init__(self, cin: int, cout: int, h: int, w: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=3)
        t = neighbour_table(h, w, 3, 1, 1, "cap", "nearest")
        cols = torch.remainder(t.cols[..., 0][:, None, :] + torch.arange(w)[None, :, None], w)  # (H, W, 9)
        index = t.rows[..., 0][:, None, :] * w + cols
        index = index.reshape(h, w, 3, 3).permute(0, 2, 1, 3).reshape(3 * h, 3 * w)
        self.register_buffer("index", index.reshape(-1), persistent=False)

    def forward(self, x):
        b, c, h, w = x.shape
        return self.conv(x.reshape(b, c, h * w)[:, :, self.index].reshape(b, c, 3 * h, 3 * w))


class GridSampleExpandConv(nn.Module):
    """SphereNet-style: bilinear grid_sample at the 9 gnomonic taps to 3H x 3W, conv stride 3."""

    def __init__(self, cin: int, cout: int, h: int, w: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=3)
        row, col = stencil_pixel_coords(h, w, 3, 1, 1, "gnomonic")  # (H, 9), column 0
        col = torch.remainder(col[:, None, :] + torch.arange(w)[None, :, None], w)  # (H, W, 9)
        row = row[:, None, :].expand(h, w, 9)
        gx = (col + 0.5) / w * 2 - 1
        gy = (row + 0.5) / h * 2 - 1
        grid = torch.stack((gx, gy), -1).reshape(h, w, 3, 3, 2).permute(0, 2, 1, 3, 4)
        grid = grid.reshape(3 * h, 3 * w, 2)
        self.register_buffer("grid", grid[None].float(), persistent=False)

    def forward(self, x):
        grid = self.grid.expand(x.shape[0], *self.grid.shape[1:])
        return self.conv(F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False))


def image_shape(text: str) -> tuple[int, ...]:
    """``argparse`` type for ``--shape``: ``B,C,CO,H,W``, five integers >= 1."""
    return positive_ints(text, "B,C,CO,H,W")


def build(method: str, shape):
    b, cin, cout, h, w = shape
    if method == "planar":
        return nn.Conv2d(cin, cout, 3, padding=1)
    if method.startswith("sph-"):
        return SphericalConv2d(cin, cout, 3, interpolation=method[4:])
    if method == "gather-3x":
        return GatherExpandConv(cin, cout, h, w)
    return GridSampleExpandConv(cin, cout, h, w)


def step(module: nn.Module, x: torch.Tensor) -> None:
    module.zero_grad(set_to_none=True)
    x.grad = None
    module(x).sum().backward()


def measure_memory(method: str, shape, threads: int) -> float:
    """Peak extra resident memory (MiB) of one forward+backward, in a fresh subprocess.

    glibc's malloc runs with a fixed mmap threshold of 64 KiB there, so every large buffer is mapped
    when allocated and unmapped when freed and the resident set follows the live tensors (by default
    the threshold grows after the first large free and later buffers come from a heap that keeps them).
    """
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-probe", method, ",".join(map(str, shape)),
           "--threads", str(threads)]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    result = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return float(result.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def memory_probe(method: str, shape) -> float:
    """Peak RSS growth (MiB) over one forward+backward step. One warm-up step first, so one-time costs
    (loading compiled kernels, oneDNN primitives, tables and plans) are not counted; then the kernel's
    peak-RSS mark is reset (``/proc/self/clear_refs``) and the measured step runs."""
    torch.manual_seed(0)
    b, cin, _, h, w = shape
    module = build(method, shape)
    x = torch.randn(b, cin, h, w, requires_grad=True)
    step(module, x)
    module.zero_grad(set_to_none=True)
    x.grad = None
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    step(module, x)
    return (_status_kib("VmHWM") - before) / 1024.0


def _minor_faults() -> int:
    """Minor page faults of this process so far (Unix)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_modules(modules: dict[str, nn.Module], x: torch.Tensor, repeats: int
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """Median forward+backward milliseconds of each module, interleaved (the order rotates by one module
    per repeat, so that no module always follows the same one: a step after an expand-3x step starts
    with cold caches), after one warm-up step; and the median MiB of memory pages faulted in per step
    (4 KiB minor page faults: memory the C allocator had given back to the system and takes again,
    about 0.7 ms per MiB on the 2-core VM of RESULTS.md; how much depends on what ran before, so it is
    printed next to the time)."""
    for module in modules.values():  # warm-up: tables, plans, oneDNN kernels
        step(module, x)
    times: dict[str, list[float]] = {m: [] for m in modules}
    faults: dict[str, list[int]] = {m: [] for m in modules}
    names = list(modules)
    for r in range(repeats):
        for m in names[r % len(names):] + names[:r % len(names)]:
            f0, t0 = _minor_faults(), time.perf_counter()
            step(modules[m], x)
            times[m].append(time.perf_counter() - t0)
            faults[m].append(_minor_faults() - f0)
    page_mib = resource.getpagesize() / 2**20
    return ({m: statistics.median(v) * 1e3 for m, v in times.items()},
            {m: statistics.median(v) * page_mib for m, v in faults.items()})


def time_methods(shape, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    torch.manual_seed(0)
    b, cin, _, h, w = shape
    x = torch.randn(b, cin, h, w, requires_grad=True)
    return time_modules({m: build(m, shape) for m in METHODS}, x, repeats)


def _timed_rows(label: str, shape, modules: dict[str, nn.Module], x: torch.Tensor,
                repeats: int) -> list[dict]:
    """Time ``modules`` on ``x`` (the first is the planar reference of the ratios; first call included
    as ``first_ms``), print one row each and return them."""
    first = {}
    for m, module in modules.items():  # first call: neighbour table, plan, oneDNN kernels
        t0 = time.perf_counter()
        step(module, x)
        first[m] = (time.perf_counter() - t0) * 1e3
    times, _ = time_modules(modules, x, repeats)
    planar = times[next(iter(modules))]
    rows = []
    for m in modules:
        row = dict(shape=list(shape), method=m, time_ms=times[m], time_ratio=times[m] / planar,
                   first_ms=first[m])
        rows.append(row)
        print(f"{label:26s} {m:15s} {row['time_ms']:11.1f} {row['time_ratio']:9.2f} {first[m]:9.1f}")
    return rows


def clip_table(shapes, repeats: int) -> list[dict]:
    """Time SphericalConv3d against nn.Conv3d and print rows."""
    rows = []
    if not shapes:
        return rows
    print(f"{'clip (B, C, T, HxW)':26s} {'method':15s} {'fwd+bwd ms':>11s} {'x planar':>9s} {'first ms':>9s}")
    for shape in shapes:
        b, c, t, h, w = shape
        torch.manual_seed(0)
        x = torch.randn(b, c, t, h, w, requires_grad=True)
        modules = {"planar3d": nn.Conv3d(c, c, 3, padding=1),
                   "sph3d-nearest": SphericalConv3d(c, c, 3, interpolation="nearest"),
                   "sph3d-bilinear": SphericalConv3d(c, c, 3, interpolation="bilinear")}
        rows += _timed_rows(f"({b}, {c}, {t}, {h}x{w})", shape, modules, x, repeats)
    return rows


# Other layer kinds that convert_to_spherical maps (kernel size, stride, groups; groups=0: depthwise).
LAYER_KINDS = {"1x1": (1, 1, 1), "1x1 stride 2": (1, 2, 1), "depthwise 3x3": (3, 1, 0),
               "3x3 groups=8": (3, 1, 8)}


def layer_table(shape, repeats: int) -> list[dict]:
    """Time SphericalConv2d against nn.Conv2d for each of ``LAYER_KINDS`` at image shape ``shape``, and
    SphericalConvTranspose2d against nn.ConvTranspose2d from half that size up to it."""
    b, c, _, h, w = shape
    print(f"layers at (B, C, HxW) = ({b}, {c}, {h}x{w})")
    print(f"{'layer':26s} {'method':15s} {'fwd+bwd ms':>11s} {'x planar':>9s} {'first ms':>9s}")
    torch.manual_seed(0)
    x = torch.randn(b, c, h, w, requires_grad=True)
    rows = []
    for kind, (k, stride, groups) in LAYER_KINDS.items():
        groups = groups or c
        modules = {"planar": nn.Conv2d(c, c, k, stride, k // 2, groups=groups)}
        for interpolation in ("nearest", "bilinear"):
            modules[f"sph-{interpolation}"] = SphericalConv2d(c, c, k, stride, groups=groups,
                                                              interpolation=interpolation)
        rows += [dict(row, layer=kind) for row in _timed_rows(kind, shape, modules, x, repeats)]
    kind = "transposed 3x3 stride 2"
    modules = {"planar": nn.ConvTranspose2d(c, c, 3, 2, 1, 1)}
    for interpolation in ("nearest", "bilinear"):
        modules[f"sph-{interpolation}"] = SphericalConvTranspose2d(c, c, 3, 2, interpolation=interpolation)
    coarse = torch.randn(b, c, h // 2, w // 2, requires_grad=True)
    rows += [dict(row, layer=kind) for row in _timed_rows(kind, shape, modules, coarse, repeats)]
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small shape, 2 repeats (smoke run)")
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--json", type=output_file, default=None, help="save the results to this JSON file")
    parser.add_argument("--shape", type=image_shape, action="append", default=None, metavar="B,C,CO,H,W",
                        help="time only these image shapes (repeatable; no clip or layer table)")
    parser.add_argument("--memory-probe", nargs=2, metavar=("METHOD", "SHAPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        method, shape = args.memory_probe
        print(f"{memory_probe(method, image_shape(shape)):.3f}")
        return 0
    shapes, repeats = (QUICK_SHAPES, 2) if args.quick else (SHAPES, args.repeats)
    clip_shapes = QUICK_CLIP_SHAPES if args.quick else CLIP_SHAPES
    if args.shape:
        shapes, clip_shapes = args.shape, []
    results = []
    header = f"{'shape (B, C->Co, HxW)':26s} {'method':15s} {'fwd+bwd ms':>11s} {'x planar':>9s} " \
             f"{'peak MiB':>9s} {'x planar':>9s} {'faulted MiB':>12s}"
    print(f"torch {torch.__version__}, {args.threads} threads, median of {repeats} interleaved repeats")
    print(header)
    print("-" * len(header))
    for shape in shapes:
        b, cin, cout, h, w = shape
        times, faulted = time_methods(shape, repeats)
        memory = {m: measure_memory(m, shape, args.threads) for m in METHODS}
        label = f"({b}, {cin}->{cout}, {h}x{w})"
        for m in METHODS:
            row = dict(shape=list(shape), method=m, time_ms=times[m], time_ratio=times[m] / times["planar"],
                       peak_mib=memory[m], memory_ratio=memory[m] / max(memory["planar"], 1e-9),
                       faulted_mib=faulted[m])
            results.append(row)
            print(f"{label:26s} {m:15s} {row['time_ms']:11.1f} {row['time_ratio']:9.2f} "
                  f"{row['peak_mib']:9.1f} {row['memory_ratio']:9.2f} {row['faulted_mib']:12.1f}")
        for m in ("sph-nearest", "sph-bilinear"):
            speedups = {e: times[e] / times[m] for e in ("gather-3x", "grid_sample-3x")}
            compared = ", ".join(f"{v:.1f}x faster than {e}" if v >= 1 else f"{1 / v:.1f}x slower than {e}"
                                 for e, v in speedups.items())
            print(f"{label:26s} {m} is {compared}")
    clips = clip_table(clip_shapes, repeats)
    layers = [] if args.shape else layer_table(shapes[0], repeats)
    if args.json:
        meta = dict(torch=torch.__version__, threads=args.threads, repeats=repeats)
        write_text(args.json, json.dumps(dict(meta, results=results, clips=clips, layers=layers), indent=2))
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
