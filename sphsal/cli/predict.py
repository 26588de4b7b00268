"""``sphsal predict``: per-frame saliency maps and an overlay video for one or more videos."""

from __future__ import annotations

from sphsal.cli.options import (
    add_model_options,
    device,
    output_dir,
    parse_key_values,
    positive_float,
    positive_int,
)


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="predict saliency maps for videos", description=__doc__)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video file(s)")
    add_model_options(p)
    p.add_argument("--weights", default=None,
                   help="sphsal checkpoint to load, built with the model options it was trained with "
                        "(--model-arg overrides them)")
    p.add_argument("--original-weights", default=None, help="a published checkpoint of the model")
    p.add_argument("--out", required=True, type=output_dir, help="output folder (one sub-folder per video)")
    p.add_argument("--no-aem", action="store_true",
                   help="run without the audio energy map (for mono or stereo videos; only models with "
                        "a use_aem option: aem_ecb cannot run without ambisonic audio)")
    p.add_argument("--fps", type=positive_float, default=None,
                   help="frame rate to predict at (default: the video's)")
    p.add_argument("--npy", action="store_true", help="also save raw maps as .npy")
    p.add_argument("--no-png", action="store_true", help="write no per-frame PNG maps")
    p.add_argument("--no-overlay", action="store_true", help="write no overlay video")
    p.add_argument("--overwrite", action="store_true", help="redo videos that were already finished")
    p.add_argument("--batch-size", type=positive_int, default=2, help="clips per forward pass (default 2)")
    p.add_argument("--device", type=device, default=None, help="torch device (default: CUDA when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def model_kwargs(args) -> dict:
    """The ``--model-arg`` options, with ``use_aem=False`` for ``--no-aem``: ``ValueError`` when the model
    has no ``use_aem`` option or ``--model-arg`` sets it to something else."""
    from sphsal.models import list_models, model_options

    kwargs = parse_key_values(args.model_arg, "--model-arg")
    if not args.no_aem:
        return kwargs
    options = model_options(args.model)  # None: unknown, left to create_model
    if options is not None and "use_aem" not in options:
        with_aem = [name for name in list_models() if "use_aem" in (model_options(name) or ())]
        # a model that reads the AEM takes its settings (aem_decoder, sphsal.models.inputs.check_aem_options)
        if "aem_decoder" in options:
            raise ValueError(f"--no-aem: model {args.model!r} has no use_aem option: it is built on the "
                             "audio energy map and cannot run without ambisonic audio; give videos with "
                             f"ambisonic audio, or a model with a use_aem option: {', '.join(with_aem)}")
        raise ValueError(f"--no-aem: model {args.model!r} reads no audio energy map (it has no use_aem "
                         f"option), so it needs no --no-aem; models with one: {', '.join(with_aem)}")
    if kwargs.get("use_aem", False) is not False:
        raise ValueError(f"--no-aem conflicts with --model-arg use_aem={kwargs['use_aem']!r}")
    return {**kwargs, "use_aem": False}


def run(args) -> int:
    from sphsal.cli.evaluate import load_model
    from sphsal.engine.predict import predict_videos

    if args.no_png and args.no_overlay and not args.npy:
        raise ValueError("--no-png and --no-overlay without --npy leave nothing to write")
    model = load_model(args, model_kwargs(args))
    records = predict_videos(model, args.videos, args.out, fps=args.fps, batch_size=args.batch_size,
                             save_png=not args.no_png, save_npy=args.npy, make_overlay=not args.no_overlay,
                             overwrite=args.overwrite, device=args.device, progress=not args.quiet)
    for r in records:
        state = "skipped (already done)" if r["skipped"] else f"{r['frames']} frames"
        print(f"{r['video']}: {state}")
    return 0
