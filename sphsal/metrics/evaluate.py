"""Dataset evaluation: metrics per frame, averaged per video, then mean and std over videos.

Streaming use (what the engine does)::

    ev = Evaluator(("auc_judd", "nss", "cc", "kld"), weights="sphere")
    for video, frame, pred, sal, fix in frames:
        ev.update(video, frame, pred, saliency=sal, fixations=fix)
    ev.write("runs/eval")   # per_frame.csv, per_video.csv, summary.json

or all at once with :func:`evaluate`. Scores that are NaN for a frame (see the metrics' documentation:
constant prediction, no fixations) are left out of that video's mean; ``summary.json`` counts them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from tqdm import tqdm

from sphsal._checks import check_input_file
from sphsal.atomic import write_text
from sphsal.metrics._inputs import _as_batch, check_seed, fixation_lists
from sphsal.metrics.continuous import cc, kld, sim
from sphsal.metrics.fixations import auc_borji, auc_judd, auc_shuffled, info_gain, nss
from sphsal.sphere import pixels_to_directions

__all__ = ["METRICS", "DEFAULT_METRICS", "PRIOR_BASELINES", "Evaluator", "evaluate", "fixation_counts",
           "other_frames_negatives", "read_categories"]

#: Metric name -> (ground truth it needs: "saliency" or "fixations", function).
METRICS = {
    "cc": ("saliency", cc),
    "kld": ("saliency", kld),
    "sim": ("saliency", sim),
    "nss": ("fixations", nss),
    "auc_judd": ("fixations", auc_judd),
    "auc_borji": ("fixations", auc_borji),
    "auc_shuffled": ("fixations", auc_shuffled),
    "info_gain": ("fixations", info_gain),
}

#: The metrics of the 360-degree video saliency papers (AVS360's table plus SIM).
DEFAULT_METRICS = ("auc_judd", "auc_borji", "nss", "cc", "kld", "sim")

_SEEDED = ("auc_judd", "auc_borji", "auc_shuffled")

#: Baselines of ``"info_gain"`` given by name: fixed priors computed at each frame's size.
PRIOR_BASELINES = ("ecb", "center")


class Evaluator:
    """Accumulates per-frame scores and aggregates them per video and over the dataset.

    Args:
        metrics: names from :data:`METRICS`.
        weights: ``None``, ``"sphere"`` or a tensor broadcastable to ``(H, W)``, passed to every metric.
        baseline: required by ``"info_gain"``: an ``(H, W)`` baseline map, or the name of a prior made
            at each frame's size (:data:`PRIOR_BASELINES`): ``"ecb"``, the equator centre bias of
            AVS360 (:func:`sphsal.priors.equator_bias`), or ``"center"``, the planar centre bias
            (:func:`sphsal.priors.center_bias`).
        seed: seed of the AUC metrics' randomness (the same for every frame), a non-negative integer.
        categories: optional ``{video: category}`` (content categories, as AVS360's evaluation reports):
            the summary then also averages the video means per category, and over the categories.
    """

    def __init__(self, metrics: Iterable[str] = DEFAULT_METRICS, *, weights=None, baseline=None,
                 seed: int = 0, categories: Mapping[str, str] | None = None):
        self.metrics = tuple(metrics)
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise ValueError(f"metrics must be a non-empty subset of {sorted(METRICS)}, got {list(metrics)}")
        if "info_gain" in self.metrics and baseline is None:
            raise ValueError("metric 'info_gain' needs a baseline map (baseline=...)")
        if isinstance(baseline, str) and baseline not in PRIOR_BASELINES:
            raise ValueError(f"baseline must be a map or one of {PRIOR_BASELINES}, got {baseline!r}")
        self.weights = weights
        self.baseline = baseline
        self._prior_maps: dict[tuple[int, int], torch.Tensor] = {}
        self.seed = check_seed(seed)
        self.categories = None if categories is None else _check_categories(categories)
        self._scores: dict[str, dict[object, dict[str, float]]] = {}
        self._skipped: set[tuple[str, object]] = set()

    def skip(self, video: str, frame) -> None:
        """Record a frame left unscored (its ground truth is empty); the summary counts them."""
        self._skipped.add((str(video), frame))

    def update(self, video: str, frame, pred, *, saliency=None, fixations=None,
               other_fixations=None) -> dict[str, float]:
        """Score one frame and remember its scores; returns ``{metric: score}``.

        ``pred``: ``(H, W)`` (or ``(1, H, W)``, ``(1, 1, H, W)``) predicted map, one frame (a batch raises
        ``ValueError``); ``saliency``: ground-truth map of the same size (for cc, kld, sim); ``fixations``:
        binary map or ``(N, 2)`` directions (for nss and the AUCs); ``other_fixations``: negatives of
        ``"auc_shuffled"`` (same forms).
        """
        maps, _ = _as_batch(pred, "pred")
        if maps.shape[0] != 1:
            raise ValueError(f"pred must be one frame's map (H, W), (1, H, W) or (1, 1, H, W), got shape "
                             f"{tuple(torch.as_tensor(pred).shape)}: call update once per frame")
        video = str(video)
        if frame in self._scores.get(video, {}):
            raise ValueError(f"frame {frame!r} of video {video!r} was already scored")
        inputs = {"saliency": saliency, "fixations": fixations}
        scores = {}
        for name in self.metrics:
            needs, fn = METRICS[name]
            if inputs[needs] is None:
                raise ValueError(f"metric {name!r} needs {needs}= for video {video!r}, frame {frame!r}")
            kwargs = {"weights": self.weights, "reduction": "mean"}
            if name in _SEEDED:
                kwargs["seed"] = self.seed
            if name == "info_gain":
                kwargs["baseline"] = self._baseline(tuple(maps.shape[-2:]))
            if name == "auc_shuffled":
                if other_fixations is None:
                    raise ValueError(f"metric 'auc_shuffled' needs other_fixations= for video {video!r}, "
                                     f"frame {frame!r}")
                scores[name] = float(fn(pred, inputs[needs], other_fixations, **kwargs))
            else:
                scores[name] = float(fn(pred, inputs[needs], **kwargs))
        self._scores.setdefault(video, {})[frame] = scores
        return scores

    def _baseline(self, size: tuple[int, int]):
        """The info_gain baseline for maps of ``size``: the map given, or the named prior at that size
        (made once per size)."""
        if not isinstance(self.baseline, str):
            return self.baseline
        if size not in self._prior_maps:
            from sphsal.priors import center_bias, equator_bias

            prior = equator_bias if self.baseline == "ecb" else center_bias
            self._prior_maps[size] = prior(*size, dtype=torch.float64)
        return self._prior_maps[size]

    def per_video(self) -> dict[str, dict[str, float]]:
        """``{video: {metric: mean over the frames with a finite score}}`` (NaN if there is none)."""
        out = {}
        for video, frames in self._scores.items():
            out[video] = {m: _finite_mean([s[m] for s in frames.values()]) for m in self.metrics}
        return out

    def per_category(self) -> dict[str, dict[str, float]]:
        """``{category: {"n_videos": k, metric: mean of its videos' means}}`` (with ``categories``;
        ``ValueError`` naming the scored videos that have no category)."""
        if self.categories is None:
            raise ValueError("per_category needs the Evaluator's categories={video: category}")
        per_video = self.per_video()
        missing = sorted(v for v in per_video if v not in self.categories)
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            shown = ", ".join(repr(v) for v in missing[:3]) + more
            raise ValueError(f"videos {shown} have no category in the categories given")
        groups: dict[str, list[dict[str, float]]] = {}
        for video, means in per_video.items():
            groups.setdefault(self.categories[video], []).append(means)
        return {c: {"n_videos": len(rows), **_mean_and_std(rows, self.metrics)[0]} for c, rows in
                sorted(groups.items())}

    def summary(self) -> dict:
        """JSON-ready summary: settings, per-video means, and the dataset mean and std over videos
        (population std, ``ddof=0``; videos without a finite score are left out). NaN becomes ``None``.
        ``"skipped_frames"`` counts the frames :meth:`skip` left out. With ``categories``: ``"categories"``
        (:meth:`per_category`) and ``"category_mean"``, the mean over categories."""
        per_video = self.per_video()
        mean, std = _mean_and_std(list(per_video.values()), self.metrics)
        summary = {
            "metrics": list(self.metrics),
            "weights": self.weights if self.weights is None or isinstance(self.weights, str) else "tensor",
            "seed": self.seed,
            "n_videos": len(per_video),
            "n_frames": sum(len(f) for f in self._scores.values()),
            "skipped_frames": len(self._skipped),
            "nan_frames": {m: sum(not math.isfinite(s[m]) for f in self._scores.values() for s in f.values())
                           for m in self.metrics},
            "mean": mean,
            "std": std,
            "videos": {v: {"n_frames": len(self._scores[v]), **vals} for v, vals in per_video.items()},
        }
        if self.categories is not None:
            categories = self.per_category()
            summary["categories"] = categories
            summary["category_mean"] = _mean_and_std(list(categories.values()), self.metrics)[0]
        return _json_ready(summary)

    def write(self, out_dir) -> dict[str, str]:
        """Write ``per_frame.csv``, ``per_video.csv`` (one row per video, then ``mean`` and ``std`` rows),
        with ``categories`` ``per_category.csv`` (one row per category, then their ``mean``), and
        ``summary.json`` into ``out_dir`` (created if needed). Every file's text is prepared first,
        so an error leaves the old files untouched; then each is written atomically (temporary file,
        then ``os.replace``); an earlier ``per_category.csv`` goes when there are no categories. Returns
        ``{kind: path}``."""
        if not self._scores:
            raise ValueError("nothing to write: no frame was scored (call update first)")
        summary = self.summary()
        frame_rows = [[video, frame, *(scores[m] for m in self.metrics)]
                      for video, frames in self._scores.items() for frame, scores in frames.items()]
        video_rows = [[v, s["n_frames"], *(s[m] for m in self.metrics)] for v, s in summary["videos"].items()]
        video_rows.append(["mean", summary["n_frames"], *(summary["mean"][m] for m in self.metrics)])
        video_rows.append(["std", "", *(summary["std"][m] for m in self.metrics)])
        texts = {
            "per_frame.csv": _csv_text(["video", "frame", *self.metrics], frame_rows),
            "per_video.csv": _csv_text(["video", "n_frames", *self.metrics], video_rows),
            "summary.json": json.dumps(summary, indent=2, allow_nan=False) + "\n",
        }
        if "categories" in summary:
            rows = [[c, s["n_videos"], *(s[m] for m in self.metrics)]
                    for c, s in summary["categories"].items()]
            rows.append(["mean", summary["n_videos"], *(summary["category_mean"][m] for m in self.metrics)])
            texts["per_category.csv"] = _csv_text(["category", "n_videos", *self.metrics], rows)
        os.makedirs(out_dir, exist_ok=True)
        paths = {}
        for name, text in texts.items():
            paths[name.split(".")[0]] = path = os.path.join(out_dir, name)
            write_text(path, text)
        stale = os.path.join(out_dir, "per_category.csv")
        if "per_category.csv" not in texts and os.path.isfile(stale):  # an earlier evaluation's
            os.remove(stale)
        return paths


def evaluate(predictions, ground_truth: Mapping, *, metrics: Iterable[str] = DEFAULT_METRICS, weights=None,
             baseline=None, seed: int = 0, out_dir=None, progress: bool = True,
             categories: Mapping[str, str] | None = None) -> dict:
    """Score a whole set of predictions; returns :meth:`Evaluator.summary` (and writes the files of
    :meth:`Evaluator.write` when ``out_dir`` is given).

    Args:
        predictions: a mapping ``(video, frame) -> (H, W) map`` or an iterable of such pairs.
        ground_truth: a mapping ``(video, frame) -> {"saliency": map, "fixations": map or (N, 2)}``
            (only the entries the chosen metrics need).
        metrics, weights, baseline, seed, categories: as for :class:`Evaluator`.
        out_dir: where to write the CSV and JSON files, or ``None``.
        progress: show a tqdm progress bar.

    For ``"auc_shuffled"`` the negatives of a frame are the fixations of the same video's other frames
    in ``ground_truth``.
    """
    ev = Evaluator(metrics, weights=weights, baseline=baseline, seed=seed, categories=categories)
    items = list(predictions.items() if isinstance(predictions, Mapping) else predictions)
    frames_of: dict[object, list] = {}
    for video, frame in ground_truth:
        frames_of.setdefault(video, []).append(frame)
    video_fixations: dict[object, torch.Tensor] = {}
    for (video, frame), pred in tqdm(items, desc="evaluate", disable=not progress):
        if (video, frame) not in ground_truth:
            raise ValueError(f"ground_truth has no entry for video {video!r}, frame {frame!r}")
        gt = ground_truth[(video, frame)]
        other = None
        if "auc_shuffled" in ev.metrics:
            if video not in video_fixations:
                video_fixations[video] = sum(_counts(ground_truth[(video, f)], pred, video, f)
                                             for f in frames_of[video])
            other = other_frames_negatives(video_fixations[video], _counts(gt, pred, video, frame))
        ev.update(video, frame, pred, saliency=gt.get("saliency"), fixations=gt.get("fixations"),
                  other_fixations=other)
    if out_dir is not None:
        ev.write(out_dir)
    return ev.summary()


def other_frames_negatives(video_counts: torch.Tensor, frame_counts: torch.Tensor) -> torch.Tensor:
    """The negatives of ``"auc_shuffled"`` for one frame: the fixations of the same video's other frames,
    ``video_counts - frame_counts`` (fixation counts ``(H, W)`` of all the video's scored frames and of
    this one, see :func:`fixation_counts`), as ``(N, 2)`` directions ``(az, el)`` of the pixel centres,
    each pixel repeated as many times as it was fixated (so that every fixation stays one negative)."""
    counts = video_counts - frame_counts
    h, w = counts.shape
    flat = torch.repeat_interleave(torch.arange(h * w), counts.reshape(-1).round().long())
    az, el = pixels_to_directions((flat // w).double(), (flat % w).double(), h, w)
    return torch.stack((az, el), dim=1)


def _counts(gt: Mapping, pred, video, frame) -> torch.Tensor:
    """Fixation counts ``(H, W)`` of one ground-truth entry at the size of ``pred``."""
    if gt.get("fixations") is None:
        raise ValueError(f"metric 'auc_shuffled' needs fixations for video {video!r}, frame {frame!r}")
    return fixation_counts(gt["fixations"], tuple(torch.as_tensor(pred).shape[-2:]),
                           f"fixations of {video!r} frame {frame!r}")


def fixation_counts(fixations, size: tuple[int, int], name: str = "fixations") -> torch.Tensor:
    """float64 ``(H, W)`` map of how often each pixel of an ERP grid of ``size`` was fixated, from a
    fixation map of that size or ``(N, 2)`` directions (``ValueError`` naming ``name`` otherwise)."""
    h, w = size
    idx, count = fixation_lists(fixations, (1, h, w), name=name)
    return torch.zeros(h * w, dtype=torch.float64).index_add_(0, idx[0], count[0]).view(h, w)


def read_categories(path) -> dict[str, str]:
    """``{video: category}`` from a CSV file of ``video,category`` rows (a first row ``video,category``
    is a header; blank lines are skipped). ``ValueError`` naming the file and line for a row that is not
    two non-empty fields or repeats a video; ``FileNotFoundError`` for a missing file."""
    path = check_input_file(path, "categories file")
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
        rows = list(csv.reader(f))
    out: dict[str, str] = {}
    for line, row in enumerate(rows, 1):
        fields = [field.strip() for field in row]
        if not any(fields) or (line == 1 and [f.lower() for f in fields] == ["video", "category"]):
            continue
        if len(fields) != 2 or not all(fields):
            raise ValueError(f"{path}, line {line}: expected 'video,category', got {','.join(row)[:80]!r}")
        if fields[0] in out:
            raise ValueError(f"{path}, line {line}: video {fields[0]!r} is listed twice")
        out[fields[0]] = fields[1]
    if not out:
        raise ValueError(f"{path} lists no video")
    return out


def _check_categories(categories: Mapping[str, str]) -> dict[str, str]:
    """``categories`` as ``{video: category}`` of strings; ``ValueError`` for an empty category name."""
    if not isinstance(categories, Mapping):
        raise ValueError("categories must map video names to category names, got "
                         f"{type(categories).__name__}")
    out = {str(video): str(category).strip() for video, category in categories.items()}
    empty = [video for video, category in out.items() if not category]
    if empty:
        raise ValueError(f"categories: video {empty[0]!r} has an empty category name")
    return out


def _mean_and_std(rows: list[dict[str, float]], metrics) -> tuple[dict[str, float], dict[str, float]]:
    """Per metric, the mean and population std of the rows' finite values (NaN where none is finite)."""
    mean, std = {}, {}
    for m in metrics:
        vals = [row[m] for row in rows if math.isfinite(row[m])]
        mean[m] = _finite_mean(vals)
        std[m] = math.sqrt(sum((x - mean[m]) ** 2 for x in vals) / len(vals)) if vals else math.nan
    return mean, std


def _finite_mean(values) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _json_ready(obj):
    """Make nested dicts, lists and tuples JSON-ready: NumPy scalars and 0-d tensors become Python
    numbers, non-finite floats ``None`` (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, (np.generic, torch.Tensor)) and obj.ndim == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue()
