"""Audio energy map speed: real-time factor of sphsal.audio.energy_map against per-sample beamforming.

Real-time factor (RTF) = seconds of audio / seconds of compute, on ONE thread (torch.set_num_threads(1)).
The baseline decodes every sample to every pixel (beams = Y @ b), squares, averages over each frame's
window and takes the square root: cost samples x pixels x channels. energy_map computes each window's
channel covariance and evaluates y^T C y per pixel, row by row as trigonometric polynomials in azimuth:
cost samples x channels^2 + frames x pixels x (4N + 1) for order N.
Both run side by side on the same signal in each repeat; the table reports medians over the repeats,
and the baseline runs on a shorter signal so that it finishes (RTF does not depend on the length).
RTFs are given against wall-clock time and against this process's CPU time (user + system), which
leaves out time taken by other processes on a shared machine.

The plain rows time the public call as a user makes it, allocating its output (about 1 MB per audio
second at 64x128; energy_map asks for transparent huge pages, but the kernel still has to zero the
fresh memory): that is the figure the target applies to. The "out= reused" rows pass one preallocated
buffer, as a pipeline that processes a long video chunk by chunk would. The load average is printed
before and after, since the machine may be shared.

    python benchmarks/bench_audio.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from sphsal.audio import beam_weights, energy_map, frame_sample_positions, num_video_frames
from sphsal.cli.options import positive_int
from sphsal.sphere import equirect_directions

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
SAMPLE_RATE = 48000
FPS = 30
# (name, order, height, width, seconds for energy_map, seconds for the baseline)
CONFIGS = (
    ("first order", 1, 64, 128, 60.0, 2.0),
    ("third order", 3, 128, 256, 10.0, 0.2),
)
QUICK_CONFIGS = (
    ("first order", 1, 32, 64, 2.0, 0.2),
    ("third order", 3, 32, 64, 1.0, 0.1),
)


def per_sample_baseline(b: torch.Tensor, order: int, height: int, width: int) -> torch.Tensor:
    """RMS maps ``(T, H, W)`` by decoding every sample to every pixel (same windows as energy_map)."""
    az, el = equirect_directions(height, width, dtype=torch.float64)
    y = beam_weights(order, az, el, "cardioid").reshape(height * width, -1).float()
    length = round(SAMPLE_RATE / FPS)
    t_frames = num_video_frames(b.shape[1], SAMPLE_RATE, FPS)
    starts = frame_sample_positions(t_frames, SAMPLE_RATE, FPS, 0.5) - length // 2
    maps = []
    for start in starts:
        seg = torch.zeros(b.shape[0], length)
        lo, hi = max(int(start), 0), min(int(start) + length, b.shape[1])
        seg[:, lo - start:hi - start] = b[:, lo:hi]
        maps.append((y @ seg).square_().mean(dim=1).sqrt_().reshape(height, width))
    return torch.stack(maps)


def _timed(seconds: float, fn, *args, **kwargs) -> tuple[dict[str, float], torch.Tensor]:
    """Run ``fn(*args, **kwargs)`` once: the RTF of ``seconds`` of audio for every clock, and the result."""
    ticks = {clock: tick() for clock, tick in CLOCKS.items()}
    result = fn(*args, **kwargs)
    return {clock: seconds / (tick() - ticks[clock]) for clock, tick in CLOCKS.items()}, result


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(repeats: int, configs=CONFIGS) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"energy_map vs per-sample beamforming, {SAMPLE_RATE} Hz, {FPS} fps, cardioid, 1 thread, "
          f"median of {repeats} repeats; load average {_load()}")
    header = (f"{'config':<24} {'ch':>3} {'map HxW':>8} {'audio s':>9} {'clock':>6} {'energy_map RTF':>15} "
              f"{'baseline RTF':>13} {'ratio':>8} {'max rel diff':>13}")
    print(header)
    print("-" * len(header))
    for name, order, h, w, seconds, base_seconds in configs:
        channels = (order + 1) ** 2
        b = torch.from_numpy(rng.standard_normal((channels, int(seconds * SAMPLE_RATE))).astype(np.float32))
        short = b[:, :int(base_seconds * SAMPLE_RATE)]
        buffer = energy_map(b, SAMPLE_RATE, FPS, h, w)  # warm-up (cached beam plan), then reused as out=
        variants = {name: {}, f"{name}, out= reused": {"out": buffer}}
        rtf = {(variant, clock): [] for variant in [*variants, "baseline"] for clock in CLOCKS}
        diffs = []
        for _ in range(repeats):
            for variant, kwargs in variants.items():
                times, _ = _timed(seconds, energy_map, b, SAMPLE_RATE, FPS, h, w, **kwargs)
                for clock, value in times.items():
                    rtf[variant, clock].append(value)
            times, reference = _timed(base_seconds, per_sample_baseline, short, order, h, w)
            for clock, value in times.items():
                rtf["baseline", clock].append(value)
            fast_short = energy_map(short, SAMPLE_RATE, FPS, h, w)
            diffs.append(float((fast_short - reference).abs().max() / reference.abs().max()))
        for variant in variants:
            for clock in CLOCKS:
                fast = statistics.median(rtf[variant, clock])
                base = statistics.median(rtf["baseline", clock])
                print(f"{variant:<24} {channels:>3} {f'{h}x{w}':>8} {f'{seconds:g}/{base_seconds:g}':>9} "
                      f"{clock:>6} {fast:>14.0f}x {base:>12.2f}x {fast / base:>7.0f}x {max(diffs):>13.1e}")
    print(f"target: first order >= 1000x real time on one core (fresh output); load average now {_load()}")
    print("audio s: signal length for energy_map / for the baseline; ratio = energy_map RTF / baseline RTF")
    print(f"(window = one video frame = {round(SAMPLE_RATE / FPS)} samples; "
          "cpu = this process's user + system time, wall = elapsed time)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed repeats (median reported)")
    parser.add_argument("--quick", action="store_true", help="short signals, small maps, one repeat (smoke)")
    args = parser.parse_args(argv)
    if args.quick:
        run(1, QUICK_CONFIGS)
    else:
        run(args.repeats)


if __name__ == "__main__":
    main()
