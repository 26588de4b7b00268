"""``sphsal models``: list the registered models with their parameter counts and input sizes."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list registered models", description=__doc__)
    p.add_argument("--no-build", action="store_true", help="names only (do not instantiate the models)")
    p.set_defaults(func=run)


def run(args) -> int:
    from sphsal.models import create_model, list_models

    for name in list_models():
        if args.no_build:
            print(name)
            continue
        model = create_model(name)
        n = sum(p.numel() for p in model.parameters())
        spec = model.input_spec
        print(f"{name:24s} {n / 1e6:8.2f} M params  clip {spec.clip_len:3d}  frame {spec.frame_size}  "
              f"output {spec.output_size}")
    return 0
