"""Benchmark: sphsal.metrics against straightforward per-image numpy implementations, side by side.

* Every metric on 100 maps of 480x960 (float32) with 50 fixations each: sphsal's batched call (numba CPU
  kernels, ``backend="auto"``) against a loop of the MIT-style numpy functions of
  ``tests/metrics/metrics_numpy_reference.py`` over the images. The numpy baseline is written the
  straightforward way, one image at a time: maps converted to float64 first (as MATLAB's ``im2double``
  in the MIT code), whole-array numpy expressions for CC, KLD, SIM, NSS and information gain (CC as
  Pearson's r of the centred maps), and the MIT loops over thresholds for the AUCs (AUC-Judd counts
  ``s >= t`` over the map for every fixated value; AUC-Borji and shuffled AUC loop over 100 splits and
  the thresholds ``0:0.1:max``).
* ``density_from_fixations`` for 2,000 fixations at 960x1920 (sigma 3.34 and 9 degrees) against dense
  numpy (pixels x fixations in chunks of fixations). The dense cost is exactly linear in the number of
  fixations, so it is timed on the first ``--dense-fixations`` fixations and scaled up (printed as such);
  the maps are compared on that subset.

Memory: numpy's per-image temporaries (a few float64 copies of a 480x960 map, 3.7 MB each) are larger
than glibc's default mmap and trim thresholds, so without tuning each one is handed back to the kernel
when freed and page-faulted in again for the next image (about 4,500 page faults per image for CC); that
made the baseline 3-5x slower, and by how much depended on what the process had allocated before. The
benchmark therefore raises glibc's trim and mmap thresholds (``mallopt``; Linux only, ``--no-malloc-tuning``
turns it off), so the baseline reuses its memory as a long-running numpy loop usually does.

Each measurement is repeated ``--repeats`` times, interleaved, and the median is reported; the load
average is printed before and after (the numpy baseline runs on one core, sphsal on ``--threads``
cores, so other load on the machine slows sphsal down more). Run from the repository root:
``python benchmarks/bench_metrics.py`` (``--quick``: small maps, one repeat, a smoke run).
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "metrics"))
import metrics_numpy_reference as ref  # noqa: E402

from sphsal import metrics  # noqa: E402
from sphsal.cli.options import positive_int  # noqa: E402


def tune_malloc() -> bool:
    """Raise glibc's trim threshold to 1 GiB and its mmap threshold to 32 MiB (its maximum), so that freed
    temporaries of a few MB stay in the process; ``False`` where that is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_trim_threshold, 1 << 30) and libc.mallopt(m_mmap_threshold, 32 << 20))
    except (OSError, AttributeError):
        return False


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def make_data(batch: int, h: int, w: int, n_fix: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    pred = np.empty((batch, h, w), np.float32)
    sal = np.empty((batch, h, w), np.float32)
    fix = np.zeros((batch, h, w), bool)
    for b in range(batch):
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0, 1) * w
        pred[b] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.1 * h) ** 2)) + 0.1 * rng.random((h, w))
        sal[b] = np.exp(-((yy - cy - 10) ** 2 + (xx - cx) ** 2) / (2 * (0.08 * h) ** 2))
        rows = np.clip(rng.normal(cy, 0.1 * h, n_fix).astype(int), 0, h - 1)
        cols = rng.normal(cx, 0.1 * h, n_fix).astype(int) % w
        fix[b, rows, cols] = True
    baseline = np.exp(-((yy - h / 2) ** 2) / (2 * (0.15 * h) ** 2)).astype(np.float32)
    return pred, sal, fix, np.roll(fix, 1, axis=0), baseline


def metric_cases(pred, sal, fix, other, baseline, seed=0):
    """(name, sphsal call, numpy per-image call) for every metric."""
    tp, ts, tf, to, tb = (torch.from_numpy(a) for a in (pred, sal, fix, other, baseline))
    h, w = pred.shape[-2:]
    noise = 1e-7 * np.random.default_rng(seed).random(h * w).reshape(h, w)

    def numpy_borji(p, f, rng):
        return ref.auc_borji(p, f, rng.integers(0, p.size, (100, int(f.sum()))))

    def numpy_shuffled(p, f, o, rng):
        pool = np.flatnonzero(o)
        order = rng.random((100, pool.size)).argsort(axis=1)[:, :min(int(f.sum()), pool.size)]
        return ref.auc_shuffled(p, f, pool[order])

    def per_image(fn):
        return lambda: np.array([fn(b) for b in range(len(pred))])

    rng = np.random.default_rng(seed)
    return [
        ("cc", lambda: metrics.cc(tp, ts), per_image(lambda b: ref.cc(pred[b], sal[b]))),
        ("kld", lambda: metrics.kld(tp, ts), per_image(lambda b: ref.kld(pred[b], sal[b]))),
        ("sim", lambda: metrics.sim(tp, ts), per_image(lambda b: ref.sim(pred[b], sal[b]))),
        ("nss", lambda: metrics.nss(tp, tf), per_image(lambda b: ref.nss(pred[b], fix[b]))),
        ("auc_judd", lambda: metrics.auc_judd(tp, tf),
         per_image(lambda b: ref.auc_judd(pred[b], fix[b], noise))),
        ("auc_borji", lambda: metrics.auc_borji(tp, tf),
         per_image(lambda b: numpy_borji(pred[b], fix[b], rng))),
        ("auc_shuffled", lambda: metrics.auc_shuffled(tp, tf, to),
         per_image(lambda b: numpy_shuffled(pred[b], fix[b], other[b], rng))),
        ("info_gain", lambda: metrics.info_gain(tp, tf, baseline=tb),
         per_image(lambda b: ref.info_gain(pred[b], fix[b], baseline))),
    ]


def bench_metrics(args) -> None:
    data = make_data(args.batch, args.height, args.width, args.fixations)
    cases = metric_cases(*data)
    for _, ours, _ in cases:  # compile the numba kernels outside the timings
        ours()
    print(f"\nMetrics: {args.batch} maps of {args.height}x{args.width} float32, {args.fixations} fixations "
          f"each (median of {args.repeats}, and the ratio of the fastest runs; max |sphsal - numpy|: "
          f"Borji/shuffled draw other negatives)")
    print(f"{'metric':<14}{'numpy per image':>17}{'sphsal batched':>16}{'speed-up':>10}{'best/best':>11}"
          f"{'max |diff|':>12}")
    total_np = total_ours = best_np = best_ours = 0.0
    for name, ours, numpy_fn in cases:
        t_np, t_ours = [], []
        for _ in range(args.repeats):
            dt, ref_vals = _timed(numpy_fn)
            t_np.append(dt)
            dt, vals = _timed(ours)
            t_ours.append(dt)
        a, b = statistics.median(t_np), statistics.median(t_ours)
        total_np += a
        total_ours += b
        best_np += min(t_np)
        best_ours += min(t_ours)
        diff = float(np.nanmax(np.abs(vals.numpy() - ref_vals)))
        print(f"{name:<14}{a:>16.3f}s{b:>15.3f}s{a / b:>9.1f}x{min(t_np) / min(t_ours):>10.1f}x{diff:>12.2e}")
    print(f"{'all metrics':<14}{total_np:>16.3f}s{total_ours:>15.3f}s{total_np / total_ours:>9.1f}x"
          f"{best_np / best_ours:>10.1f}x")


def bench_density(args) -> None:
    rng = np.random.default_rng(1)
    n = args.density_fixations
    d = np.stack([rng.uniform(-math.pi, math.pi, n), np.arcsin(rng.uniform(-1, 1, n))], 1)
    h, w = args.density_height, 2 * args.density_height
    sub = d[:args.dense_fixations]
    metrics.density_from_fixations(sub[:2], 16, 32, 3.0)  # compile outside the timings
    print(f"\nDensity: {n} fixations at {h}x{w}; dense numpy timed on {len(sub)} fixations and scaled x"
          f"{n / len(sub):g} (median of {args.repeats})")
    print(f"{'sigma':<8}{'numpy dense':>14}{'sphsal':>10}{'speed-up':>10}{'max rel diff (subset)':>24}")
    for sigma in (3.34, 9.0):
        radius = 4 * math.radians(sigma)
        t_np, t_ours = [], []
        for _ in range(args.repeats):
            dt, dense = _timed(lambda s=sigma, r=radius: ref.density(sub, h, w, math.radians(s), r))
            t_np.append(dt * n / len(sub))
            dt, _ = _timed(lambda s=sigma: metrics.density_from_fixations(d, h, w, s))
            t_ours.append(dt)
        ours_sub = metrics.density_from_fixations(sub, h, w, sigma, norm="sum", dtype=torch.float64).numpy()
        rel = float(np.abs(ours_sub - dense / dense.sum()).max() / ours_sub.max())
        a, b = statistics.median(t_np), statistics.median(t_ours)
        print(f"{sigma:<8g}{a:>13.2f}s{b:>9.2f}s{a / b:>9.1f}x{rel:>24.1e}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=positive_int, default=100)
    parser.add_argument("--height", type=positive_int, default=480)
    parser.add_argument("--width", type=positive_int, default=960)
    parser.add_argument("--fixations", type=positive_int, default=50)
    parser.add_argument("--density-fixations", type=positive_int, default=2000)
    parser.add_argument("--density-height", type=positive_int, default=960)
    parser.add_argument("--dense-fixations", type=positive_int, default=40,
                        help="fixations the dense numpy density is timed on (then scaled)")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--skip-density", action="store_true")
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="keep glibc's default malloc thresholds (see the module docstring)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch and numba threads for sphsal (default: theirs, one per core)")
    parser.add_argument("--quick", action="store_true", help="small maps and batches, one repeat (smoke run)")
    args = parser.parse_args(argv)
    import numba

    if args.threads and args.threads > numba.config.NUMBA_NUM_THREADS:
        parser.error(f"argument --threads: numba runs at most {numba.config.NUMBA_NUM_THREADS} threads here "
                     f"(NUMBA_NUM_THREADS), got {args.threads}")
    if args.quick:
        args.batch, args.height, args.width, args.repeats = 4, 60, 120, 1
        args.density_fixations, args.density_height, args.dense_fixations = 100, 120, 10
    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
    tuned = False if args.no_malloc_tuning else tune_malloc()
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), numba {numba.__version__} "
          f"({numba.get_num_threads()} threads), numpy {np.__version__}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; malloc thresholds "
          f"{'raised' if tuned else 'default'}")
    bench_metrics(args)
    if not args.skip_density:
        bench_density(args)
    print(f"\nload average after the run: {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")


if __name__ == "__main__":
    main()
