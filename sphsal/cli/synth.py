"""``sphsal synth``: write a synthetic ambisonic 360° video dataset in the 360AV-HM layout.

    sphsal synth data/synthetic --videos 6 --duration 4 --fps 8 --height 128 --width 256 --seed 0

Then read it with ``create_dataset("360av-hm", "data/synthetic")`` (see :mod:`sphsal.data.synthetic`).
"""

from __future__ import annotations

from sphsal.cli.options import non_negative_int, output_dir, positive_float, positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser("synth", help="generate a synthetic ambisonic 360-degree video dataset",
                              description=__doc__.splitlines()[0])
    p.add_argument("root", type=output_dir,
                   help="output folder (360AV-HM layout): new, empty, or a synthetic dataset (--overwrite)")
    p.add_argument("--videos", type=positive_int, default=6, help="number of videos (default 6)")
    p.add_argument("--duration", type=positive_float, default=4.0, help="seconds per video (default 4)")
    p.add_argument("--fps", type=positive_float, default=8, help="frame rate (default 8)")
    p.add_argument("--height", type=positive_int, default=128, help="ERP height in pixels (default 128)")
    p.add_argument("--width", type=positive_int, default=256, help="ERP width in pixels (default 256)")
    p.add_argument("--objects", type=positive_int, default=4, help="moving objects per scene (default 4)")
    p.add_argument("--viewers", type=positive_int, default=12,
                   help="simulated viewers per condition (default 12)")
    p.add_argument("--sample-rate", type=positive_int, default=16000,
                   help="audio sample rate in Hz (default 16000)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--visual-cue", action="store_true",
                   help="draw sounding objects brighter (by default only the audio tells them apart)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a synthetic dataset already in ROOT (any other content is never deleted)")
    p.set_defaults(func=run)


def run(args) -> int:
    from sphsal.data import make_dataset

    fps = int(args.fps) if float(args.fps).is_integer() else args.fps
    root = make_dataset(args.root, n_videos=args.videos, duration=args.duration, fps=fps, height=args.height,
                        width=args.width, seed=args.seed, audio_decisive=not args.visual_cue,
                        n_objects=args.objects, n_viewers=args.viewers, sample_rate=args.sample_rate,
                        overwrite=args.overwrite)
    print(f"wrote {args.videos} videos and their gaze CSVs to {root}")
    return 0
