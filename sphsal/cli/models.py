"""``sphsal models``: list the registered models with their parameter counts, input sizes and the audio
they need (``--recipe``: also their training recipe)."""

from __future__ import annotations

#: What ``InputSpec.audio_channels`` asks of a video's audio, in words.
_AUDIO = {0: "no audio", 1: "any audio", 4: "ambiX audio"}


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list registered models", description=__doc__)
    p.add_argument("--no-build", action="store_true", help="names only (do not instantiate the models)")
    p.add_argument("--recipe", action="store_true",
                   help="also each model's default loss and optimiser (what `sphsal train` uses)")
    p.set_defaults(func=run)


def describe_recipe(model) -> str:
    """``model``'s default loss and optimiser in one line, e.g. ``loss kld, adam lr 0.0001``."""
    recipe = dict(model.default_optimizer)
    name, lr, scales = recipe.pop("name", "adam"), recipe.pop("lr", None), recipe.pop("lr_scales", ())
    settings = "".join(f", {key} {value:g}" if isinstance(value, float) else f", {key} {value}"
                       for key, value in recipe.items())
    rate = "" if lr is None else f" lr {lr:g}"
    parts = f" (lr_scales: {len(scales)} patterns of parameters at other rates)" if scales else ""
    return f"loss {model.default_loss}, {name}{rate}{settings}{parts}"


def run(args) -> int:
    from sphsal.models import create_model, list_models

    for name in list_models():
        if args.no_build:
            print(name)
            continue
        model = create_model(name)
        n = sum(p.numel() for p in model.parameters())
        spec = model.input_spec
        audio = _AUDIO.get(spec.audio_channels, f"{spec.audio_channels}+ audio channels")
        line = (f"{name:24s} {n / 1e6:8.2f} M params  clip {spec.clip_len:3d}  frame {spec.frame_size}  "
                f"output {spec.output_size}  {audio}")
        if spec.needs_prev_saliency:
            line += f", reads its map of {spec.prev_saliency_interval} frame(s) earlier"
        print(line)
        if args.recipe:
            print(f"{'':24s} {describe_recipe(model)}")
    return 0
