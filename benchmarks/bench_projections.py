"""Throughput of ERP -> cubemap and ERP -> HEALPix: sphsal against per-image numpy/OpenCV remapping.

Every method is timed side by side in one run (interleaved, median of ``--repeat`` runs) on the same
batch of ``(B, 3, H, W)`` float32 ERP images, with torch and OpenCV both limited to 2 threads:

* ``sphsal``: ``equirect_to_cubemap`` / ``equirect_to_healpix`` with their cached sampling plans;
* ``sphsal reference``: ``sphsal.sphere.sample_equirect`` (pads the image, then ``grid_sample``) at
  the same cached coordinates, and ``sphsal gather-only``: the same plan as a pure precomputed
  gather (4 taps and weights per output, ``index_select``) -- the two alternatives the projections'
  sampler (``grid_sample`` on the unpadded image + a gather for seam/pole outputs) was chosen against;
* ``per-image remap``: the common approach -- for each image compute the mapping in numpy
  (healpy.pix2ang for HEALPix), then ``cv2.remap`` (bilinear, columns wrapped);
* ``cv2.remap, map precomputed``: the best case for OpenCV -- maps computed once and converted to
  OpenCV's fixed-point format, then one ``cv2.remap`` per image.

Megapixels per second count output pixels (all channels together). Ratios are sphsal / method.

    python benchmarks/bench_projections.py                      # 1024x2048, batch 8
    python benchmarks/bench_projections.py --quick              # smoke run: 64x128, batch 2, 1 repeat
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time

import cv2
import healpy
import numpy as np
import torch
from _options import positive_ints

from sphsal.atomic import write_text
from sphsal.cli.options import output_file, positive_int
from sphsal.projections import FACE_FRAMES, equirect_to_cubemap, equirect_to_healpix
from sphsal.projections._grids import build_plan, erp_resolver
from sphsal.projections.cubemap import cube_face_vectors
from sphsal.projections.healpix import healpix_directions
from sphsal.sphere import directions_to_pixels, sample_equirect, vectors_to_directions


def parse_size(text: str) -> tuple[int, int]:
    """``argparse`` type for ``--size``: ``HxW`` (such as ``1024x2048``) with H >= 2 and an even W >= 2."""
    h, w = positive_ints(text.lower(), "HxW", sep="x")
    if h < 2 or w < 2 or w % 2:
        raise argparse.ArgumentTypeError(f"expected H >= 2 and an even W >= 2, got {text!r}")
    return h, w


def power_of_two(text: str) -> int:
    """``argparse`` type for ``--nside``: a power of 2 (the NESTED HEALPix ordering needs one)."""
    value = positive_int(text)
    if value & (value - 1):
        raise argparse.ArgumentTypeError(f"expected a power of 2 (NESTED ordering), got {text!r}")
    return value


def default_nside(h: int) -> int:
    """Smallest power of two whose HEALPix pixels are no larger than the ERP equator pixels:
    ``4 pi / (12 nside^2) <= (pi / H)^2``."""
    return 2 ** math.ceil(math.log2(h / math.sqrt(3 * math.pi)))


def numpy_erp_coordinates(vectors: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps (map_x = column, map_y = row, float32) of direction vectors ``(..., 3)``,
    computed in numpy as a per-image script would (sphsal's ERP convention)."""
    az = np.arctan2(vectors[..., 1], vectors[..., 0])
    el = np.arctan2(vectors[..., 2], np.hypot(vectors[..., 0], vectors[..., 1]))
    col = np.mod(0.5 - az / (2 * np.pi), 1.0) * w - 0.5
    row = (0.5 - el / np.pi) * h - 0.5
    return col.astype(np.float32), row.astype(np.float32)


def numpy_cube_vectors(face_size: int) -> np.ndarray:
    """Face pixel directions ``(6F, F, 3)`` in numpy (the per-image approach recomputes these)."""
    frames = FACE_FRAMES.numpy()
    t = (np.arange(face_size) + 0.5) / face_size * 2 - 1
    b, a = np.meshgrid(t, t, indexing="ij")
    v = frames[:, None, None, 0] + a[None, ..., None] * frames[:, None, None, 1] \
        + b[None, ..., None] * frames[:, None, None, 2]
    return v.reshape(6 * face_size, face_size, 3)


def numpy_healpix_vectors(nside: int) -> np.ndarray:
    """HEALPix pixel-centre directions ``(12 nside, nside, 3)`` from healpy, reshaped into a 2-D map
    for cv2.remap (whose output sides must stay below 32767)."""
    theta, phi = healpy.pix2ang(nside, np.arange(12 * nside * nside), nest=True)
    v = np.stack((np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)), axis=-1)
    return v.reshape(12 * nside, nside, 3)


def remap(img: np.ndarray, map_x, map_y) -> np.ndarray:
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


def make_methods(x: torch.Tensor, images: list[np.ndarray], target: str, size: int):
    """The four compared callables for ``target`` ("cubemap" with face size, "healpix" with nside)
    and the number of output pixels per image."""
    h, w = x.shape[-2:]
    if target == "cubemap":
        def run_sphsal():
            return equirect_to_cubemap(x, size)

        def vectors():
            return numpy_cube_vectors(size)

        az, el = vectors_to_directions(cube_face_vectors(size).reshape(6 * size, size, 3))
        npix = 6 * size * size
    else:
        def run_sphsal():
            return equirect_to_healpix(x, size)

        def vectors():
            return numpy_healpix_vectors(size)

        az, el = healpix_directions(size)
        az, el = az.reshape(1, -1), el.reshape(1, -1)
        npix = 12 * size * size
    row, col = directions_to_pixels(az, el, h, w)
    # An empty cell makes every tap "foreign": the plan's gather then computes all outputs.
    everything = build_plan(row, col, (h, w), "bilinear", erp_resolver(h, w), region=(h, -1, w, -1))
    gather_only = dataclasses.replace(everything, grid=None, fix_index=None).to(x.device, x.dtype)
    row, col = row.float(), col.float()

    def run_reference():
        return sample_equirect(x, row, col)

    def run_gather():
        return gather_only(x)

    def run_per_image():
        out = []
        for img in images:
            map_x, map_y = numpy_erp_coordinates(vectors(), h, w)
            out.append(remap(img, map_x, map_y))
        return out

    fixed = cv2.convertMaps(*numpy_erp_coordinates(vectors(), h, w), cv2.CV_16SC2)

    def run_precomputed():
        return [remap(img, *fixed) for img in images]

    methods = {
        "sphsal": run_sphsal,
        "sphsal reference (pad + grid_sample)": run_reference,
        "sphsal gather-only (index_select)": run_gather,
        "per-image numpy map + cv2.remap": run_per_image,
        "cv2.remap, map precomputed": run_precomputed,
    }
    return methods, npix


def time_methods(methods: dict, repeat: int) -> dict[str, float]:
    """Median seconds per call of every method, timed interleaved after one warm-up call each."""
    for fn in methods.values():
        fn()
    times = {name: [] for name in methods}
    for _ in range(repeat):
        for name, fn in methods.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def agreement(x: torch.Tensor, images: list[np.ndarray], target: str, size: int) -> float:
    """Mean |sphsal - per-image cv2.remap| on the first image (same mapping, both bilinear)."""
    h, w = x.shape[-2:]
    vec = numpy_cube_vectors(size) if target == "cubemap" else numpy_healpix_vectors(size)
    theirs = remap(images[0], *numpy_erp_coordinates(vec, h, w))           # (rows, cols, 3)
    if target == "cubemap":
        ours = equirect_to_cubemap(x[:1], size)[0].permute(1, 0, 2, 3).reshape(3, 6 * size, size)
    else:
        ours = equirect_to_healpix(x[:1], size)[0].reshape(3, 12 * size, size)
    return float(np.abs(ours.permute(1, 2, 0).numpy() - theirs).mean())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=(1024, 2048), help="ERP HxW (default 1024x2048)")
    parser.add_argument("--batch", type=positive_int, default=8)
    parser.add_argument("--repeat", type=positive_int, default=3)
    parser.add_argument("--face-size", type=positive_int, default=None, help="cube face side (default W/4)")
    parser.add_argument("--nside", type=power_of_two, default=None,
                        help="HEALPix nside (default: smallest power of 2 not coarser than the ERP)")
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--json", type=output_file, default=None,
                        help="also save the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="64x128, batch 2, one repeat (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batch, args.repeat = (64, 128), 2, 1

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    h, w = args.size
    face_size = args.face_size or w // 4
    nside = args.nside or default_nside(h)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, h, w, generator=gen)
    images = [np.ascontiguousarray(img.permute(1, 2, 0).numpy()) for img in x]

    print(f"ERP {h}x{w}, batch {args.batch}, 3 channels float32, {args.threads} threads, "
          f"median of {args.repeat}")
    results = {"size": [h, w], "batch": args.batch, "threads": args.threads, "repeat": args.repeat,
               "targets": {}}
    for target, size in (("cubemap", face_size), ("healpix", nside)):
        start = time.perf_counter()
        (equirect_to_cubemap if target == "cubemap" else equirect_to_healpix)(x[:1], size)
        first_call = time.perf_counter() - start
        methods, npix = make_methods(x, images, target, size)
        seconds = time_methods(methods, args.repeat)
        label = f"face {size}: 6x{size}x{size}" if target == "cubemap" else f"nside {size}: {npix} pixels"
        print(f"\nERP -> {target} ({label} per image; first call incl. plan build "
              f"{first_call:.2f} s)")
        print(f"  {'method':<38} {'ms/batch':>10} {'Mpix/s':>10} {'sphsal / method':>16}")
        rows = {}
        for name, sec in seconds.items():
            mpix = args.batch * npix / sec / 1e6
            ratio = seconds[name] / seconds["sphsal"]
            rows[name] = {"ms_per_batch": sec * 1e3, "mpix_per_s": mpix, "ratio_sphsal_over_method": ratio}
            print(f"  {name:<38} {sec * 1e3:>10.1f} {mpix:>10.1f} {ratio:>15.2f}x")
        diff = agreement(x, images, target, size)
        print(f"  mean |sphsal - per-image cv2.remap| on image 0: {diff:.2e}")
        results["targets"][target] = {"size": size, "output_pixels_per_image": npix,
                                      "first_call_s": first_call, "methods": rows,
                                      "mean_abs_diff_vs_cv2": diff}
    if args.json:
        write_text(args.json, json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
