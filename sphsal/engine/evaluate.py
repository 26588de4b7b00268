"""Evaluation of a model on a dataset: per-frame metrics -> per-video means -> dataset mean and std,
written as CSV and JSON by :class:`sphsal.metrics.Evaluator`.

Predictions are resized (bilinear, across the ERP seam and poles) to the ground truth's resolution
before scoring, explicitly here, never inside the metrics; with ``weights="sphere"`` (default) every
ERP pixel of the maps counts by its solid angle (every fixation once).
"""

from __future__ import annotations

from collections import deque

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from sphsal._checks import check_integer
from sphsal.data.dataset import ClipDataset, prev_saliency_start
from sphsal.data.groundtruth import EmptyGroundTruth
from sphsal.engine.runtime import collate_items, resolve_device, to_device
from sphsal.metrics import DEFAULT_METRICS, METRICS, Evaluator
from sphsal.metrics.evaluate import fixation_counts, other_frames_negatives
from sphsal.sphere import resize_equirect


def upsample_prediction(pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, 1, h, w)`` model output (an ERP map, ``w`` even) -> ``(B, H, W)`` at the ground truth's
    ``size``: bilinear, across the seam and the poles (:func:`sphsal.sphere.resize_equirect`)."""
    if tuple(pred.shape[-2:]) != tuple(size):
        pred = resize_equirect(pred.float(), tuple(size))
    return pred[:, 0].clamp_min(0)


class FedBackMaps:
    """A video's predictions fed back to a model that reads an earlier frame's map (``prev_saliency``):
    frame ``t`` gets the prediction for frame ``t - interval`` at ``size`` ``(H, W)``, the first
    ``interval`` frames :func:`~sphsal.data.dataset.prev_saliency_start` of ``start``. Push each frame's
    prediction, in frame order, after reading that frame's input. :meth:`for_model` reads both from a
    model's ``input_spec``.
    """

    def __init__(self, interval: int, size: tuple[int, int], start: str = "zeros"):
        self.size = tuple(int(n) for n in size)
        self._maps: deque[torch.Tensor] = deque(maxlen=check_integer(interval, "prev_saliency_interval"))
        self._start = prev_saliency_start(start, self.size)

    @classmethod
    def for_model(cls, model, size: tuple[int, int]) -> FedBackMaps:
        spec = model.input_spec
        return cls(spec.prev_saliency_interval, size, spec.prev_saliency_start)

    def next_input(self) -> torch.Tensor:
        """``(H, W)``: the map for the next frame."""
        full = len(self._maps) == self._maps.maxlen
        return self._maps[0] if full else self._start.clone()

    def push(self, pred: torch.Tensor) -> None:
        """Record the model's ``(1, 1, h, w)`` prediction for the next frame."""
        self._maps.append(upsample_prediction(pred, self.size)[0].cpu())


def _ground_truth_needs(metrics) -> dict[str, list[str]]:
    """``{ground-truth key ("saliency" / "fixations"): [metrics that need it]}`` for ``metrics``."""
    needs: dict[str, list[str]] = {}
    for name in metrics:
        needs.setdefault(METRICS[name][0], []).append(name)
    return needs


def _check_ground_truth(batch: dict, needs: dict[str, list[str]]) -> None:
    """``ValueError`` naming the metrics whose ground truth the dataset items lack."""
    for key, metrics in needs.items():
        if key not in batch:
            raise ValueError(f"metric(s) {', '.join(metrics)} need {key!r} in the dataset items, which have "
                             f"{sorted(batch)}; choose other metrics or a dataset with {key}")


def _video_fixation_counts(dataset: Dataset, progress: bool) -> dict[str, torch.Tensor]:
    """``{video: (H, W) fixation counts of all its frames that the dataset scores}``, read from the
    ground truth of a :class:`~sphsal.data.ClipDataset` (no video is decoded): the pool of
    ``"auc_shuffled"``'s negatives."""
    entries, index = getattr(dataset, "entries", None), getattr(dataset, "index", None)
    if entries is None or index is None:
        raise ValueError(f"metric 'auc_shuffled' needs a sphsal.data.ClipDataset (its negatives are the "
                         f"fixations of each video's other scored frames), got {type(dataset).__name__}")
    totals: dict[str, torch.Tensor] = {}
    for v, t in tqdm(index, desc="fixations", disable=not progress, unit="frame"):
        entry = entries[v]
        try:
            fixations = torch.as_tensor(entry.ground_truth(t)[1], dtype=torch.float32)
        except EmptyGroundTruth as err:  # a target left out of the scores (empty_truth="next"), or an error
            if not hasattr(dataset, "on_empty_truth"):
                raise
            dataset.on_empty_truth(err)
            continue
        name = f"fixations of {entry.name!r} frame {t}"
        counts = fixation_counts(fixations, tuple(fixations.shape[-2:]), name)
        totals[entry.name] = counts + totals[entry.name] if entry.name in totals else counts
    return totals


def _shuffled_negatives(totals: dict[str, torch.Tensor], video: str, fixations: torch.Tensor) -> torch.Tensor:
    """``"auc_shuffled"``'s negatives for one item: its video's other scored frames' fixations."""
    size = tuple(fixations.shape[-2:])
    if tuple(totals[video].shape) != size:
        raise ValueError(f"fixations of video {video!r} are {size} in the items but "
                         f"{tuple(totals[video].shape)} in the dataset's ground truth (a transform?)")
    return other_frames_negatives(totals[video], fixation_counts(fixations, size))


def _predictions(model, dataset: Dataset, batch_size: int, device, progress: bool):
    """``(batch, model output, replaced)`` for the dataset's items, ``batch_size`` at a time, on
    ``device``; ``replaced[i]``: ``None``, or the ``(video, frame)`` target that item ``i`` stands in for
    with the next target's item (a :class:`~sphsal.data.ClipDataset` with ``empty_truth="next"`` whose
    target's ground truth is empty)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_items)
    position = 0
    for batch in tqdm(loader, desc="evaluate", disable=not progress, unit="batch"):
        count = len(batch["video"])
        replaced = [None] * count
        if isinstance(dataset, ClipDataset):
            targets = [(dataset.entries[v].name, t) for v, t in dataset.index[position:position + count]]
            replaced = [None if (video, int(frame)) == target else target
                        for video, frame, target in zip(batch["video"], batch["frame_index"], targets)]
        position += count
        batch = to_device(batch, device)
        yield batch, model(**model.prepare_inputs(batch)), replaced


def _fed_back_predictions(model, dataset, device, progress: bool, skip):
    """``(batch of one, model output)`` for the scored items of a :class:`~sphsal.data.ClipDataset`, for a
    model that reads an earlier frame's map: each video is run on every frame from its first to its
    last scored one, each prediction (at the frame size) fed back as ``prev_saliency`` of the frame
    ``model.input_spec.prev_saliency_interval`` later (:class:`FedBackMaps`), as ``sphsal predict`` runs
    it; ground truth is read for the scored frames only (``skip(video, frame)`` is called for one that
    is empty). The items' own ``prev_saliency`` (an earlier frame's ground truth) is never used: it
    would hand the model the answer."""
    scored = set(dataset.index)
    last = {}
    for v, t in scored:
        last[v] = max(t, last.get(v, t))
    bar = tqdm(total=len(scored), desc="evaluate", disable=not progress, unit="frame")
    for v in sorted(last):
        fed_back = None
        for t in range(last[v] + 1):
            item = dataset.clip(v, t)
            if fed_back is None:
                fed_back = FedBackMaps.for_model(model, item["frames"].shape[-2:])
            item["prev_saliency"] = fed_back.next_input()
            if (v, t) in scored:
                try:
                    item.update(dataset.truth(v, t))
                except EmptyGroundTruth as err:  # left out of the scores (empty_truth="next"), or an error
                    dataset.on_empty_truth(err)
                    scored.discard((v, t))
                    skip(dataset.entries[v].name, t)
            if dataset.transform is not None:
                item = dataset.transform(item)
            batch = to_device(collate_items([item]), device)
            pred = model(**model.prepare_inputs(batch))
            fed_back.push(pred)
            if (v, t) in scored:
                bar.update(1)
                yield batch, pred, [None]
    bar.close()


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, dataset: Dataset, *, out_dir=None,
                   metrics=DEFAULT_METRICS, weights="sphere", baseline=None, batch_size: int = 2,
                   device=None, progress: bool = True, seed: int = 0, categories=None) -> dict:
    """Score ``model`` on every item of ``dataset``; returns :meth:`Evaluator.summary` and writes
    ``per_frame.csv``, ``per_video.csv`` and ``summary.json`` into ``out_dir`` when given.

    Args:
        model: a registered sphsal model (``prepare_inputs`` + ``forward``).
        dataset: items as built by :class:`sphsal.data.ClipDataset` (use its ``frame_step`` to score
            every n-th frame).
        metrics: names from :data:`sphsal.metrics.METRICS`.
        weights: ``"sphere"`` (solid-angle weights), ``None`` or a tensor.
        baseline: the baseline of ``"info_gain"``: a map at the ground truth's size, or ``"ecb"`` /
            ``"center"`` (a prior made at that size; see :class:`sphsal.metrics.Evaluator`).
        batch_size, device, progress, seed: loader batch size, device (default: CUDA if available),
            tqdm bar, seed of the AUC metrics.
        categories: optional ``{video: category}``: the summary (and ``per_category.csv``) also averages
            per category (see :class:`sphsal.metrics.Evaluator`).

    Items need only the ground truth the chosen metrics use: ``"saliency"`` maps for cc, kld and sim,
    ``"fixations"`` maps for nss, the AUCs and info_gain; a missing one is a ``ValueError`` naming the
    metrics that need it. ``"auc_shuffled"`` draws its negatives from the fixations of the same video's
    other scored frames (the video benchmarks' choice); it needs a :class:`~sphsal.data.ClipDataset`,
    whose ground truth is read once more for them (cached on disk by the adapters that cache it).

    A model that reads an earlier frame's map (the spherical U-Net) is run on each video frame by
    frame, its own earlier prediction fed back (see :func:`_fed_back_predictions`; every frame up to
    the last scored one is predicted, ``frame_step`` times the work), never the ground truth's; it needs
    a :class:`~sphsal.data.ClipDataset` (``ValueError`` otherwise).

    With a dataset's ``empty_truth="next"``, the item that replaced a target whose ground truth is empty
    (it repeats the next target) is not scored, so the empty ones are left out of the scores.
    """
    batch_size = check_integer(batch_size, "batch_size")
    evaluator = Evaluator(metrics, weights=weights, baseline=baseline, seed=seed, categories=categories)
    videos = getattr(dataset, "videos", ()) if categories is not None else ()
    uncategorised = [v for v in videos if v not in evaluator.categories]
    if uncategorised:  # before any prediction, not after the whole evaluation
        listed = ", ".join(repr(v) for v in list(evaluator.categories)[:2])
        raise ValueError(f"{len(uncategorised)} video(s) of the dataset have no category, e.g. "
                         f"{uncategorised[0]!r}; list every video by the dataset's name for it (the "
                         f"categories name {listed}, ...)")
    needs = _ground_truth_needs(evaluator.metrics)
    device = resolve_device(device)
    model = model.to(device).eval()
    totals = _video_fixation_counts(dataset, progress) if "auc_shuffled" in evaluator.metrics else None
    spec = getattr(model, "input_spec", None)
    if spec is not None and spec.needs_prev_saliency:
        if not isinstance(dataset, ClipDataset):
            name = getattr(model, "model_name", type(model).__name__)
            raise ValueError(f"{name} reads an earlier frame's map, so it is evaluated video by video on "
                             "its own predictions, which needs a sphsal.data.ClipDataset, got "
                             f"{type(dataset).__name__}")
        predictions = _fed_back_predictions(model, dataset, device, progress, evaluator.skip)
    else:
        predictions = _predictions(model, dataset, batch_size, device, progress)
    for batch, pred, replaced in predictions:
        _check_ground_truth(batch, needs)
        size = tuple(batch["saliency" if "saliency" in needs else "fixations"].shape[-2:])
        pred = upsample_prediction(pred, size)
        for i in range(pred.shape[0]):
            if replaced[i] is not None:  # it repeats the next target, scored at its own index
                evaluator.skip(*replaced[i])
                continue
            video, frame = batch["video"][i], int(batch["frame_index"][i])
            truth = {key: batch[key][i].cpu() for key in needs}
            other = None if totals is None else _shuffled_negatives(totals, video, truth["fixations"])
            evaluator.update(video, frame, pred[i].cpu(), **truth, other_fixations=other)
    if out_dir is not None:
        evaluator.write(out_dir)
    return evaluator.summary()
