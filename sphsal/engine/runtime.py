"""Process-level plumbing shared by training, evaluation and prediction: devices, seeding,
``torchrun`` / DDP set-up, batching of dataset items and moving batches to a device."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from sphsal.sphere import resize_equirect


@dataclass(frozen=True)
class Runtime:
    """Where this process runs: its device and its place in a (possibly 1-process) DDP group."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def init_runtime(device: str | None = None) -> Runtime:
    """Set up this process. Under ``torchrun`` (``WORLD_SIZE`` > 1) joins the process group: NCCL on
    CUDA, gloo on CPU; each rank uses ``cuda:LOCAL_RANK`` when CUDA is used."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Runtime(resolve_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(dev, rank, world_size)


def shutdown_runtime(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The RNG states as tensors and plain containers (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": _python_state_to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        # This process's device only: under torchrun each rank drives one device, and every rank (seeded
        # alike, running the same operations) holds the same state there, so the main process's state
        # restores every rank. (All devices' states, as saved before, gave the other ranks' devices the
        # main process's copies of them, which it never advanced.)
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore states saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        if isinstance(state["cuda"], torch.Tensor):
            torch.cuda.set_rng_state(state["cuda"])  # this process's device
        else:  # every device's state, as earlier versions saved them
            torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_lists(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


#: Most samples by which the audio windows of one batch may differ and still be cropped to the shortest.
#: :func:`sphsal.data.clips.audio_window` gives every clip ``round(clip_len * step / fps * sample_rate)``
#: samples, so clips of equal clip length, frame rate and sample rate have equal lengths; frame rates
#: that are equal but stored differently (``30000/1001`` and ``29.97002997``) can round one sample
#: apart. A longer difference means clips of other frame rates or sample rates, whose audio cropping
#: would cut short (48 kHz clips cut to a 16 kHz clip's length).
AUDIO_LENGTH_TOLERANCE = 1


def collate_items(items: list[dict]) -> dict:
    """Batch dataset items (dicts of tensors, numbers and strings).

    Tensors are stacked; audio windows, whose lengths can differ by :data:`AUDIO_LENGTH_TOLERANCE`
    sample because they are cut at whole samples, are cropped to the shortest. Audio of other channel
    counts or lengths (other sample rates or frame rates) is a ``ValueError`` naming the items' videos.
    Numbers become tensors, strings lists.
    """
    if not items:
        raise ValueError("cannot collate an empty list of items")
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        first = values[0]
        if isinstance(first, torch.Tensor):
            if key == "audio":
                values = _batchable_audio(items)
            batch[key] = torch.stack(values)
        elif isinstance(first, np.ndarray):
            batch[key] = torch.stack([torch.as_tensor(v) for v in values])
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = values
    return batch


def _batchable_audio(items: list[dict]) -> list[torch.Tensor]:
    """The items' ``audio`` ``(channels, samples)`` cropped to the shortest; ``ValueError`` naming the
    items when their channel counts differ or their lengths by more than :data:`AUDIO_LENGTH_TOLERANCE`."""
    audio = [item["audio"] for item in items]
    lengths = [a.shape[-1] for a in audio]
    if len({a.shape[0] for a in audio}) == 1 and max(lengths) - min(lengths) <= AUDIO_LENGTH_TOLERANCE:
        return [a[..., :min(lengths)] for a in audio]
    described = []
    for i, (item, a) in enumerate(zip(items, audio)):
        where = f"video {item['video']!r}" if "video" in item else f"item {i}"
        if a.shape[0] == 0:
            described.append(f"{where}: no audio")
            continue
        rate = f"{int(item['sample_rate'])} Hz, " if "sample_rate" in item else ""
        described.append(f"{where}: {rate}{a.shape[0]} channel(s), {a.shape[-1]} samples")
    raise ValueError("cannot batch the audio of these clips (" + "; ".join(dict.fromkeys(described)) +
                     "): clips of videos with other channel counts, sample rates or frame rates cannot "
                     "share a batch; give the dataset one sample rate (dataset option sample_rate, "
                     "--dataset-arg sample_rate=...) or, for frame rates that differ, one frame rate "
                     "(option fps, --dataset-arg fps=...), or use batch size 1 (--batch-size 1)")


def to_device(batch: dict, device: torch.device) -> dict:
    """Move every tensor of a batch to ``device`` (others are left as they are)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


def resize_target(target: torch.Tensor, size: tuple[int, int], *, binary: bool = False) -> torch.Tensor:
    """Resize ground-truth maps ``(B, H, W)`` to a model's output ``size`` explicitly.

    Continuous maps are area-averaged when shrinking (bilinear across the ERP seam and poles when
    enlarging, :func:`sphsal.sphere.resize_equirect`); binary fixation maps keep a fixation wherever any
    fixated pixel falls into the output cell.
    """
    if target.shape[-2:] == tuple(size):
        return target
    x = target.float().unsqueeze(1)
    if binary:
        out = F.adaptive_max_pool2d(x, size) if size[0] <= x.shape[-2] else F.interpolate(x, size=size)
    elif size[0] <= x.shape[-2] and size[1] <= x.shape[-1]:
        out = F.adaptive_avg_pool2d(x, size)
    else:
        out = resize_equirect(x, tuple(size))
    return out.squeeze(1)
