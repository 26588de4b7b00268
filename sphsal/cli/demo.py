"""``sphsal demo``: the main job on the embedded default (synthetic ambisonic 360° videos).

Generates a small dataset where audio decides what is salient, trains AVS360 (reduced configuration) and
its visual-only ablation on CPU, evaluates them and the AEM x ECB prior on held-out videos, and writes
metrics.json, comparison.png and overlay.mp4.
"""

from __future__ import annotations

from sphsal.cli.options import non_negative_int, output_dir
from sphsal.engine.demo import DEMO_MODELS


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="train and compare AVS360 on synthetic ambisonic videos",
                              description=__doc__)
    p.add_argument("--out", default="demo_out", type=output_dir, help="output folder (default: demo_out)")
    p.add_argument("--models", default=",".join(DEMO_MODELS),
                   help="comma-separated registered models to train and compare (default: %(default)s; "
                        "the AEM x ECB prior is always evaluated; see sphsal models)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--quick", action="store_true", help="a tiny smoke run (numbers are meaningless)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from sphsal.engine.demo import run_demo

    models = list(dict.fromkeys(name.strip() for name in args.models.split(",") if name.strip()))  # once each
    run_demo(args.out, models=models, seed=args.seed, quick=args.quick, progress=not args.quiet)
    return 0
