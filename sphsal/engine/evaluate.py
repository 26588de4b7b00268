"""Evaluation of a model on a dataset: per-frame metrics -> per-video means -> dataset mean and std,
written as CSV and JSON by :class:`sphsal.metrics.Evaluator`.

Predictions are resized (bilinear) to the ground truth's resolution before scoring, explicitly here,
never inside the metrics; with ``weights="sphere"`` (default) every ERP pixel counts by its solid angle.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from sphsal.engine.runtime import collate_items, resolve_device, to_device
from sphsal.metrics import DEFAULT_METRICS, Evaluator


def upsample_prediction(pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, 1, h, w)`` model output -> ``(B, H, W)`` at the ground truth's ``size`` (bilinear)."""
    if tuple(pred.shape[-2:]) != tuple(size):
        pred = F.interpolate(pred.float(), size=tuple(size), mode="bilinear", align_corners=False)
    return pred[:, 0].clamp_min(0)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, dataset: Dataset, *, out_dir=None,
                   metrics=DEFAULT_METRICS, weights="sphere", batch_size: int = 2, device=None,
                   progress: bool = True, seed: int = 0) -> dict:
    """Score ``model`` on every item of ``dataset``; returns :meth:`Evaluator.summary` and writes
    ``per_frame.csv``, ``per_video.csv`` and ``summary.json`` into ``out_dir`` when given.

    Args:
        model: a registered sphsal model (``prepare_inputs`` + ``forward``).
        dataset: items as built by :class:`sphsal.data.ClipDataset` (use its ``frame_step`` to score
            every n-th frame).
        metrics: names from :data:`sphsal.metrics.METRICS`.
        weights: ``"sphere"`` (solid-angle weights), ``None`` or a tensor.
        batch_size, device, progress, seed: loader batch size, device (default: CUDA if available),
            tqdm bar, seed of the AUC metrics.
    """
    device = resolve_device(device)
    model = model.to(device).eval()
    evaluator = Evaluator(metrics, weights=weights, seed=seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_items)
    for batch in tqdm(loader, desc="evaluate", disable=not progress, unit="batch"):
        batch = to_device(batch, device)
        pred = upsample_prediction(model(**model.prepare_inputs(batch)), tuple(batch["saliency"].shape[-2:]))
        for i in range(pred.shape[0]):
            evaluator.update(batch["video"][i], int(batch["frame_index"][i]), pred[i].cpu(),
                             saliency=batch["saliency"][i].cpu(), fixations=batch["fixations"][i].cpu())
    if out_dir is not None:
        evaluator.write(out_dir)
    return evaluator.summary()
