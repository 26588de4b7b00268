"""Inference speed and training-step time of every registered sphsal model, and AVS360's ERP branch with
SphericalConv3d against nn.Conv3d, measured side by side in one run.

Every model runs at its default (published) size with batch 1 on random inputs
(``model.example_inputs()``); ``--quick`` uses reduced sizes of the same architectures. Each baseline
``<name>`` and its spherical variant ``<name>_sph`` are also printed side by side (same architecture,
each at its own default frame size, printed with them: at the published sizes STAViS's spherical
variants take 2:1 ERP frames, 112x224, twice the pixels of the planar 112x112). The entries
of a table are timed in interleaved rounds (A, B, C, A, B, C, ...) after one warm-up round, so load
changes on a shared machine hit them alike; the median of the rounds is reported.

    python benchmarks/bench_models.py [--quick] [--repeats 3] [--device cuda] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field

import torch

from sphsal.atomic import write_text
from sphsal.cli.options import device as torch_device
from sphsal.cli.options import output_file, positive_int
from sphsal.models import build_loss, create_model, list_models, model_family

# Reduced configurations of the same architectures for --quick.
QUICK_KWARGS = {
    "avs360": {"width_mult": 0.25, "clip_len": 8, "frame_size": (128, 192), "face_size": 64},
    "spherical_unet": {"width_mult": 0.5, "frame_size": (120, 240)},
    "aem_ecb": {},
    # SoundNet gets 0.6 s (13,230 samples): its conv6 then has 2 steps, which batch-1 BatchNorm needs.
    "vinet": {"width_mult": 0.25, "clip_len": 8, "frame_size": (64, 128)},
    "avinet": {"width_mult": 0.25, "clip_len": 8, "frame_size": (64, 128), "audio_samples": 13230},
    "stavis": {"width_mult": 0.25, "clip_len": 8, "frame_size": (64, 128), "audio_samples": 13230},
    "stavis_visual": {"width_mult": 0.25, "clip_len": 8, "frame_size": (64, 128)},
    "mvva": {"width_mult": 0.25, "frame_size": (64, 128), "steps": 4, "gap": 2, "mel_windows": 8},
}


def quick_kwargs(name: str) -> dict:
    """The --quick options of a model (shared by its family: see :func:`sphsal.models.model_family`)."""
    return dict(QUICK_KWARGS.get(model_family(name), {}))


@dataclass
class Entry:
    """One model under test, what a training step needs (``optimizer`` is None for a model without
    parameters) and its timings (seconds per call)."""

    label: str
    model: torch.nn.Module
    inputs: dict
    target: torch.Tensor
    fixations: torch.Tensor
    optimizer: torch.optim.Optimizer | None
    infer_s: list[float] = field(default_factory=list)
    train_s: list[float] = field(default_factory=list)

    @property
    def trainable(self) -> bool:
        return self.optimizer is not None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_inference(entry: Entry, device: torch.device) -> float:
    entry.model.eval()
    _sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        entry.model(**entry.inputs)
    _sync(device)
    return time.perf_counter() - t0


def time_train_step(entry: Entry, device: torch.device) -> float:
    entry.model.train()
    _sync(device)
    t0 = time.perf_counter()
    loss = build_loss(entry.model.default_loss)(entry.model(**entry.inputs), entry.target, entry.fixations)
    entry.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    entry.optimizer.step()
    _sync(device)
    return time.perf_counter() - t0


def measure(entries: list[Entry], repeats: int, device: torch.device, train: bool = True) -> None:
    """Interleaved rounds over ``entries``: one warm-up round, then ``repeats`` timed rounds."""
    for r in range(repeats + 1):
        for entry in entries:
            infer = time_inference(entry, device)
            step = time_train_step(entry, device) if train and entry.trainable else None
            if r:
                entry.infer_s.append(infer)
                if step is not None:
                    entry.train_s.append(step)


def build_entry(label: str, name: str, kwargs: dict, device: torch.device) -> Entry:
    model = create_model(name, **kwargs).to(device)
    inputs = {k: v.to(device) for k, v in model.example_inputs(batch_size=1).items()}
    target = torch.rand(1, *model.input_spec.output_size, device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-6) if params else None
    return Entry(label, model, inputs, target, target > 0.9, optimizer)  # fixations for losses with nss


def describe(entry: Entry) -> dict:
    spec = entry.model.input_spec
    infer = statistics.median(entry.infer_s)
    row = {
        "model": entry.label,
        "clip_len": spec.clip_len,
        "frame_size": list(spec.frame_size),
        "output_size": list(spec.output_size),
        "params_M": sum(p.numel() for p in entry.model.parameters()) / 1e6,
        "infer_s": infer,
        "frames_per_s": 1.0 / infer,
        "train_step_s": statistics.median(entry.train_s) if entry.train_s else None,
    }
    return row


def format_models(rows: list[dict]) -> str:
    lines = [f"{'model':<18} {'clip x H x W':>16} {'out':>8} {'params M':>9} {'infer ms':>9} {'frames/s':>9} "
             f"{'train step s':>13}"]
    for r in rows:
        size = f"{r['clip_len']}x{r['frame_size'][0]}x{r['frame_size'][1]}"
        out = f"{r['output_size'][0]}x{r['output_size'][1]}"
        train = f"{r['train_step_s']:.3f}" if r["train_step_s"] is not None else "-"
        lines.append(f"{r['model']:<18} {size:>16} {out:>8} {r['params_M']:>9.2f} {1e3 * r['infer_s']:>9.1f} "
                     f"{r['frames_per_s']:>9.2f} {train:>13}")
    return "\n".join(lines)


def format_pair(title: str, spherical: dict, planar: dict) -> str:
    def ratio(key):
        a, b = spherical[key], planar[key]
        return f"{a / b:.2f}x" if a is not None and b is not None else "-"

    lines = [title, f"{'':<30} {'infer ms':>9} {'train step s':>13}"]
    for label, row in (("spherical", spherical), ("planar", planar)):
        train = f"{row['train_step_s']:.3f}" if row["train_step_s"] is not None else "-"
        lines.append(f"{label + ' (' + row['model'] + ')':<30} {1e3 * row['infer_s']:>9.1f} {train:>13}")
    lines.append(f"{'ratio spherical/planar':<30} {ratio('infer_s'):>9} {ratio('train_step_s'):>13}")
    return "\n".join(lines)


def format_spherical_pairs(rows: list[dict]) -> str:
    """One line per ``<name>`` / ``<name>_sph`` pair among ``rows``: times and spherical/planar ratios."""
    by_name = {r["model"]: r for r in rows}
    lines = [f"{'model':<16} {'params M':>9} {'frames planar / sph':>20} {'infer ms planar':>16} "
             f"{'spherical':>10} {'ratio':>6} {'train s planar':>15} {'spherical':>10} {'ratio':>6}"]
    for name, planar in by_name.items():
        sph = by_name.get(name + "_sph")
        if sph is None:
            continue
        train = f"{'-':>15} {'-':>10} {'-':>6}"
        if planar["train_step_s"] is not None and sph["train_step_s"] is not None:
            train = (f"{planar['train_step_s']:>15.3f} {sph['train_step_s']:>10.3f} "
                     f"{sph['train_step_s'] / planar['train_step_s']:>5.2f}x")
        frames = " / ".join("x".join(str(n) for n in row["frame_size"]) for row in (planar, sph))
        lines.append(f"{name:<16} {planar['params_M']:>9.2f} {frames:>20} {1e3 * planar['infer_s']:>16.1f} "
                     f"{1e3 * sph['infer_s']:>10.1f} {sph['infer_s'] / planar['infer_s']:>5.2f}x {train}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes of the same architectures")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="timed rounds after one warm-up (median)")
    parser.add_argument("--models", nargs="*", default=None,
                        help="registered model names (default: all); the SphericalConv3d vs nn.Conv3d "
                             "comparison runs when avs360 is among them")
    parser.add_argument("--device", type=torch_device, default=None,
                        help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-train", action="store_true", help="inference only")
    parser.add_argument("--json", type=output_file, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models or []) - set(list_models()))
    if unknown:
        parser.error(f"unknown models {unknown}; registered: {', '.join(list_models())}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    names = args.models or list_models()
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    header = (f"device {device}{gpu}, "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}, batch 1, "
              f"{'--quick reduced sizes' if args.quick else 'default (published) sizes'}, "
              f"median of {args.repeats} interleaved rounds")
    print(header, flush=True)

    model_entries = [build_entry(n, n, quick_kwargs(n) if args.quick else {}, device) for n in names]
    measure(model_entries, args.repeats, device, train=not args.no_train)
    rows = [describe(e) for e in model_entries]
    print("\nEvery registered model\n" + format_models(rows), flush=True)
    del model_entries

    report = {"setup": header, "device": str(device), "quick": args.quick, "repeats": args.repeats,
              "models": rows}
    if "avs360" in names:
        avs = quick_kwargs("avs360") if args.quick else {}
        pair = [build_entry("erp_spherical", "avs360", {**avs, "view": "erp_spherical"}, device),
                build_entry("erp_planar", "avs360", {**avs, "view": "erp_planar"}, device)]
        measure(pair, args.repeats, device, train=not args.no_train)
        spherical, planar = (describe(e) for e in pair)
        title = "AVS360, ERP view only: SphericalConv3d vs nn.Conv3d (same architecture, same input)"
        print("\n" + format_pair(title, spherical, planar), flush=True)
        report["avs360_erp"] = {"spherical": spherical, "planar": planar,
                                "infer_ratio": spherical["infer_s"] / planar["infer_s"]}
    pairs = format_spherical_pairs(rows)
    if pairs.count("\n"):
        title = "Baselines, planar vs spherical (<name> vs <name>_sph, from the table above)"
        print(f"\n{title}\n{pairs}", flush=True)
    by_name = {r["model"]: r for r in rows}
    if "spherical_unet" in by_name and "planar_unet" in by_name:
        print("\n" + format_pair("U-Net: SphericalConv2d vs nn.Conv2d (from the table above)",
                                 by_name["spherical_unet"], by_name["planar_unet"]), flush=True)

    if args.json:
        write_text(args.json, json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
