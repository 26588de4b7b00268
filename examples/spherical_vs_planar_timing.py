"""Time SphericalConv2d against nn.Conv2d of the same shape (forward + backward), side by side.

Run: python examples/spherical_vs_planar_timing.py [--channels 64] [--size 120x240] [--batch 2]

The full benchmark with memory and the published expand-3x approaches is benchmarks/bench_conv.py.
"""

import argparse
import time

import torch
from torch import nn

from sphsal.nn import SphericalConv2d


def step_time(layer: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of one forward + backward."""
    times = []
    for i in range(repeats + 2):
        x.grad = None
        t0 = time.perf_counter()
        layer(x).square().mean().backward()
        if i >= 2:  # warm-up
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--size", default="120x240")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    x = torch.randn(args.batch, args.channels, h, w, requires_grad=True)
    planar = nn.Conv2d(args.channels, args.channels, 3, padding=1)
    for interpolation in ("nearest", "bilinear"):
        spherical = SphericalConv2d(args.channels, args.channels, 3, interpolation=interpolation)
        tp, ts = step_time(planar, x, args.repeats), step_time(spherical, x, args.repeats)
        print(f"{interpolation:8s} nn.Conv2d {tp * 1e3:7.1f} ms  SphericalConv2d {ts * 1e3:7.1f} ms  "
              f"ratio {ts / tp:.2f}x  (B={args.batch}, C={args.channels}, {h}x{w}, "
              f"{torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
