"""``sphsal evaluate``: score a model (trained checkpoint or published weights) on a dataset split."""

from __future__ import annotations

import json

from sphsal.cli.options import (
    add_dataset_options,
    add_model_options,
    dataset_arguments,
    device,
    output_dir,
    parse_key_values,
    positive_int,
)


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a model on a dataset", description=__doc__)
    add_model_options(p)
    add_dataset_options(p, split="test")
    p.add_argument("--weights", default=None,
                   help="sphsal checkpoint (a training run's last.pt or a saved model), built with the model "
                        "options it was trained with (--model-arg overrides them); default: untrained")
    p.add_argument("--original-weights", default=None, help="a published checkpoint of the model")
    p.add_argument("--out", required=True, type=output_dir,
                   help="folder for per_frame.csv, per_video.csv, summary.json (and per_category.csv)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated metric names among " + ", ".join(CLI_METRICS) + " (default: "
                   + ", ".join(CLI_DEFAULT_METRICS) + ")")
    p.add_argument("--baseline", default="ecb", choices=("ecb", "center"),
                   help="info_gain's baseline: the equator centre bias (default) or the planar centre bias")
    p.add_argument("--planar", action="store_true", help="unweighted metrics (default: solid-angle weights)")
    p.add_argument("--categories", default=None, metavar="CSV",
                   help="a 'video,category' file: also average per category (per_category.csv)")
    p.add_argument("--frame-step", type=positive_int, default=5, help="score every n-th frame (default: 5)")
    p.add_argument("--batch-size", type=positive_int, default=2, help="clips per forward pass (default 2)")
    p.add_argument("--device", type=device, default=None, help="torch device (default: CUDA when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def load_model(args, model_kwargs: dict | None = None):
    """Build ``args.model`` with ``model_kwargs`` (default: the ``--model-arg`` options) and load
    ``--weights`` / ``--original-weights``. A ``--weights`` checkpoint of that model supplies the options
    it was trained with, which ``model_kwargs`` override. The initial weights come from torch's generator
    seeded with 0, so that an untrained model (no weights given) is the same from run to run."""
    import torch

    from sphsal.models import create_model
    from sphsal.models.checkpoints import checkpoint_model, load_checkpoint, load_original_checkpoint

    if model_kwargs is None:
        model_kwargs = parse_key_values(args.model_arg, "--model-arg")
    if args.weights:
        stored_name, stored_kwargs = checkpoint_model(args.weights)
        if stored_name == args.model:  # another model: load_checkpoint names the mismatch
            model_kwargs = {**stored_kwargs, **model_kwargs}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = create_model(args.model, **model_kwargs)
    if args.weights:
        load_checkpoint(args.weights, model)
    if getattr(args, "original_weights", None):
        load_original_checkpoint(model, args.original_weights)
    return model


#: The metrics scored without --metrics: sphsal.metrics.DEFAULT_METRICS, written out because importing
#: sphsal.metrics for ``--help`` takes seconds (a test keeps the two equal).
CLI_DEFAULT_METRICS = ("auc_judd", "auc_borji", "nss", "cc", "kld", "sim")
#: Every metric of sphsal.metrics.METRICS: also info_gain (over --baseline) and auc_shuffled (negatives:
#: the same video's other scored frames' fixations).
CLI_METRICS = (*CLI_DEFAULT_METRICS, "info_gain", "auc_shuffled")


def parse_metrics(text: str | None) -> tuple[str, ...]:
    """``--metrics`` (comma-separated, spaces allowed; None: :data:`CLI_DEFAULT_METRICS`) as a tuple of
    names; ``ValueError`` naming the flag for an empty list or a name it cannot compute."""
    if text is None:
        return CLI_DEFAULT_METRICS
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    bad = [name for name in names if name not in CLI_METRICS]
    if bad or not names:
        raise ValueError(f"--metrics: {', '.join(repr(n) for n in bad) or 'no metric given'}; choose among "
                         f"{', '.join(CLI_METRICS)}")
    return names


def run(args) -> int:
    from sphsal.engine.evaluate import evaluate_model
    from sphsal.engine.train import dataset_for_model
    from sphsal.metrics.evaluate import read_categories

    metrics = parse_metrics(args.metrics)
    categories = None if args.categories is None else read_categories(args.categories)
    options = dataset_arguments(args, frame_step=args.frame_step)
    model = load_model(args)
    dataset = dataset_for_model(model, args.dataset, args.root, **options)
    summary = evaluate_model(model, dataset, out_dir=args.out, metrics=metrics,
                             weights=None if args.planar else "sphere", baseline=args.baseline,
                             batch_size=args.batch_size, device=args.device, progress=not args.quiet,
                             categories=categories)
    brief = {key: summary[key] for key in ("mean", "std", "n_videos", "category_mean") if key in summary}
    print(json.dumps(brief, indent=2))
    return 0
