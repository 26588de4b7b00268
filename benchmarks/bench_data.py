"""Loader throughput: sphsal.data at 256x512 from a 960x1920 H.264 video, next to a plain OpenCV loop.

A synthetic 960x1920 ambisonic video (24 fps, a keyframe every second, gaze CSVs) is generated once in a
temporary folder. In each repeat, side by side on the same file:

* ``opencv loop``: ``cv2.VideoCapture.read`` + ``cv2.resize(INTER_AREA)`` + BGR->RGB, every frame in order;
* ``VideoReader``: ``sphsal.data.VideoReader(size=(256, 512))``, every frame in order;
* ``dataset, in order``: ``create_dataset("360av-hm", size=(256, 512), clip_len=16)`` items one after the
  other (16-frame clip + 4-channel audio window + cached ground truth), as an evaluation loop reads them;
* ``dataset, shuffled``: the same items in a seeded random order, as a training loop reads them;
* ``DataLoader, 2 workers``: a shuffled epoch through ``torch.utils.data.DataLoader`` (batch 4, two
  worker processes, their start-up included). Its CPU column counts the main process only.

frames/s: for the two loops, frames decoded and resized per second; for the dataset, frames delivered in
clips (items x clip_len per second; consecutive clips share frames, which the reader's cache decodes
once). Ratios are against the OpenCV loop of the same repeat; medians over the repeats. The ground-truth cache
is filled before timing (it is built once per dataset, not per epoch). Target: >= 200 frames/s.

"CPU ms/frame" is the CPU time of all the process's threads (decoder threads included) per frame: unlike
wall-clock rates it hardly depends on what else the machine runs; ``2000 / CPU ms`` bounds the rate
two idle cores could reach.

    python benchmarks/bench_data.py [--repeats 3] [--seconds 4] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import cv2
import numpy as np
import torch

from sphsal.cli.options import positive_float, positive_int
from sphsal.data import VideoReader, create_dataset, make_dataset

SIZE = (256, 512)
SOURCE = (960, 1920)
FPS = 24
CLIP_LEN = 16


def opencv_loop(path: str) -> int:
    capture = cv2.VideoCapture(path)
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        small = cv2.resize(frame, (SIZE[1], SIZE[0]), interpolation=cv2.INTER_AREA)
        torch.from_numpy(cv2.cvtColor(small, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).float().div_(255)
        count += 1
    capture.release()
    return count


def reader_loop(path: str) -> int:
    with VideoReader(path, size=SIZE) as reader:
        for k in range(len(reader)):
            reader.read_frame(k)
        return len(reader)


def dataset_loop(ds, order) -> int:
    for i in order:
        ds[i]
    return len(order) * CLIP_LEN


def loader_loop(ds, workers: int) -> int:
    """One shuffled epoch through a DataLoader (batch 4, seeded order, ``workers`` processes)."""
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    return sum(batch["frames"].shape[0] for batch in loader) * CLIP_LEN


def timed(fn, *args) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of all this process's threads, frames)."""
    start, cpu = time.perf_counter(), time.process_time()
    count = fn(*args)
    return time.perf_counter() - start, time.process_time() - cpu, count


def video_seconds(text: str) -> float:
    """``argparse`` type for ``--seconds``: a duration of at least one frame (``1 / FPS`` s)."""
    seconds = positive_float(text)
    if seconds * FPS < 1:
        raise argparse.ArgumentTypeError(f"expected at least one frame (1/{FPS} s), got {text!r}")
    return seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--seconds", type=video_seconds, default=4.0, help="duration of the test video")
    parser.add_argument("--quick", action="store_true", help="a 1 s video, one repeat (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats = 1.0, 1
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = make_dataset(f"{tmp}/data", n_videos=1, duration=args.seconds, fps=FPS, height=SOURCE[0],
                            width=SOURCE[1], n_viewers=8, sample_rate=48000)
        print(f"generated a {SOURCE[0]}x{SOURCE[1]} {FPS} fps {args.seconds:g} s video in "
              f"{time.perf_counter() - t0:.1f} s")
        path = f"{root}/videos/synth_000.mp4"
        ds = create_dataset("360av-hm", root, size=SIZE, clip_len=CLIP_LEN, cache_dir=f"{tmp}/cache")
        item = ds[0]
        print(f"item: frames {tuple(item['frames'].shape)}, audio {tuple(item['audio'].shape)} at "
              f"{item['sample_rate']} Hz, saliency {tuple(item['saliency'].shape)}; {len(ds)} items")
        for i in range(len(ds)):  # fill the ground-truth cache
            ds.entries[ds.index[i][0]].ground_truth(ds.index[i][1])
        shuffled = np.random.default_rng(0).permutation(len(ds)).tolist()
        methods = {
            "opencv loop (read+resize)": lambda: timed(opencv_loop, path),
            "VideoReader, in order": lambda: timed(reader_loop, path),
            "dataset clips, in order": lambda: timed(dataset_loop, ds, range(len(ds))),
            "dataset clips, shuffled": lambda: timed(dataset_loop, ds, shuffled),
            "DataLoader, 2 workers": lambda: timed(loader_loop, ds, 2),
        }
        results: dict[str, list] = {name: [] for name in methods}
        for _ in range(args.repeats):
            for name, run in methods.items():
                seconds, cpu, frames = run()
                results[name].append((frames / seconds, 1000 * cpu / frames))
        base = [r[0] for r in results["opencv loop (read+resize)"]]
        print(f"\nsource {SOURCE[0]}x{SOURCE[1]} -> {SIZE[0]}x{SIZE[1]}, clip_len {CLIP_LEN}, "
              f"{args.repeats} repeats (median), torch threads 1")
        print(f"{'method':<28} {'frames/s':>10} {'clips/s':>9} {'x opencv':>9} {'CPU ms/frame':>13}"
              "   (dataset: frames delivered)")
        for name, rows in results.items():
            fps = statistics.median(r[0] for r in rows)
            ratio = statistics.median(r[0] / b for r, b in zip(rows, base))
            cpu = statistics.median(r[1] for r in rows)
            per_frame = name.startswith(("opencv", "VideoReader"))
            clips = f"{'-':>9}" if per_frame else f"{fps / CLIP_LEN:9.1f}"
            print(f"{name:<28} {fps:10.1f} {clips} {ratio:9.2f} {cpu:13.2f}")


if __name__ == "__main__":
    main()
