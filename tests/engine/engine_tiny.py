"""A tiny registered model and an in-memory dataset for fast engine tests (also used by the torchrun
worker script, which imports this file by path)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.data import Dataset

from sphsal.models import list_models, register_model
from sphsal.sphere import equirect_directions, great_circle_distance

H, W = 16, 32


class TinySaliency(nn.Module):
    """Two convolutions on the clip's last frame, with dropout so that the RNG state matters."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Dropout(0.2),
                                 nn.Conv2d(6, 1, 3, padding=1))
        self.default_loss = "kld"
        self.default_optimizer = {"name": "adam", "lr": 1e-2}

    def prepare_inputs(self, batch: dict) -> dict:
        return {"frames": batch["frames"][:, :, -1]}

    def forward(self, frames):
        x = nn.functional.softplus(self.net(frames))
        return x / x.sum(dim=(2, 3), keepdim=True)


if "tiny_test_model" not in list_models():
    register_model("tiny_test_model")(lambda **kw: TinySaliency(**kw))


class BlobDataset(Dataset):
    """Deterministic items: a bright disc on a dark frame and a saliency blob at the same place."""

    def __init__(self, n: int = 12):
        self.n = n
        self.az, self.el = equirect_directions(H, W)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        az0 = float(torch.rand(1, generator=g)) * 2 * math.pi - math.pi
        el0 = float(torch.rand(1, generator=g)) - 0.5
        d = great_circle_distance(self.az, self.el, az0, el0)
        sal = torch.exp(-0.5 * (d / 0.3) ** 2)
        frames = (0.1 * torch.rand(3, 2, H, W, generator=g) + (d < 0.4).float()).clamp(0, 1)
        return {"frames": frames, "saliency": sal / sal.sum(), "fixations": (d < 0.15).float(),
                "video": f"v{i % 3}", "frame_index": i}
