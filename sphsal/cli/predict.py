"""``sphsal predict``: per-frame saliency maps and an overlay video for one or more videos."""

from __future__ import annotations

from sphsal.cli.options import add_model_options


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="predict saliency maps for videos", description=__doc__)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video file(s)")
    add_model_options(p)
    p.add_argument("--weights", default=None, help="sphsal checkpoint to load")
    p.add_argument("--original-weights", default=None, help="a published checkpoint of the model")
    p.add_argument("--out", required=True, help="output folder (one sub-folder per video)")
    p.add_argument("--no-aem", action="store_true",
                   help="run without the audio energy map (for mono or stereo videos)")
    p.add_argument("--fps", type=float, default=None, help="frame rate to predict at (default: the video's)")
    p.add_argument("--npy", action="store_true", help="also save raw maps as .npy")
    p.add_argument("--no-png", action="store_true")
    p.add_argument("--no-overlay", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="redo videos that were already finished")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from sphsal.cli.evaluate import load_model
    from sphsal.engine.predict import predict_videos

    if args.no_aem:
        args.model_arg = [*(args.model_arg or []), "use_aem=false"]
    model = load_model(args)
    records = predict_videos(model, args.videos, args.out, fps=args.fps, batch_size=args.batch_size,
                             save_png=not args.no_png, save_npy=args.npy, make_overlay=not args.no_overlay,
                             overwrite=args.overwrite, device=args.device, progress=not args.quiet)
    for r in records:
        state = "skipped (already done)" if r["skipped"] else f"{r['frames']} frames"
        print(f"{r['video']}: {state}")
    return 0
