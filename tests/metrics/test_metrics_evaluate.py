"""Tests of sphsal.metrics.evaluate (Evaluator, evaluate)."""

import csv
import json
import math
import os

import numpy as np
import pytest
import torch

from sphsal.metrics import Evaluator, auc_judd, auc_shuffled, cc, evaluate, fixation_map, kld, nss

H, W = 8, 16


def _frame(seed):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.rand(H, W, generator=gen, dtype=torch.float64)
    sal = torch.rand(H, W, generator=gen, dtype=torch.float64)
    fix = torch.rand(H, W, generator=gen) > 0.85
    return pred, sal, fix


@pytest.fixture
def frames():
    return {(video, frame): _frame(10 * v + frame)
            for v, video in enumerate(("alpha", "beta")) for frame in range(3 if video == "alpha" else 2)}


def test_per_video_then_dataset_aggregation(frames, tmp_path):
    ev = Evaluator(("cc", "nss", "auc_judd"), weights="sphere")
    for (video, frame), (pred, sal, fix) in frames.items():
        scores = ev.update(video, frame, pred, saliency=sal, fixations=fix)
        assert scores["cc"] == pytest.approx(cc(pred, sal, weights="sphere").item())
    per_video = {}
    for video in ("alpha", "beta"):
        items = [v for k, v in frames.items() if k[0] == video]
        per_video[video] = {
            "cc": sum(cc(p, s, weights="sphere").item() for p, s, _ in items) / len(items),
            "nss": sum(nss(p, f, weights="sphere").item() for p, _, f in items) / len(items),
            "auc_judd": sum(auc_judd(p, f, weights="sphere").item() for p, _, f in items) / len(items),
        }
    summary = ev.summary()
    assert summary["n_videos"] == 2 and summary["n_frames"] == 5
    for m in ("cc", "nss", "auc_judd"):
        a, b = per_video["alpha"][m], per_video["beta"][m]
        assert summary["videos"]["alpha"][m] == pytest.approx(a)
        assert summary["mean"][m] == pytest.approx((a + b) / 2)
        assert summary["std"][m] == pytest.approx(abs(a - b) / 2)

    paths = ev.write(tmp_path / "out")
    with open(paths["per_video"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["video"] for r in rows] == ["alpha", "beta", "mean", "std"]
    assert float(rows[0]["cc"]) == pytest.approx(per_video["alpha"]["cc"])
    assert rows[0]["n_frames"] == "3" and rows[2]["n_frames"] == "5"
    with open(paths["per_frame"], newline="") as f:
        assert len(list(csv.DictReader(f))) == 5
    with open(paths["summary"]) as f:
        assert json.load(f)["mean"]["nss"] == pytest.approx(summary["mean"]["nss"])
    assert sorted(os.listdir(tmp_path / "out")) == ["per_frame.csv", "per_video.csv", "summary.json"]


def test_nan_frames_are_left_out_and_counted(frames):
    ev = Evaluator(("cc", "kld"))
    (pred, sal, _), (_, sal2, _) = frames[("alpha", 0)], frames[("alpha", 1)]
    ev.update("alpha", 0, pred, saliency=sal)
    with pytest.warns(RuntimeWarning, match="constant pred"):
        ev.update("alpha", 1, torch.ones(H, W), saliency=sal2)
    summary = ev.summary()
    assert summary["nan_frames"] == {"cc": 1, "kld": 0}
    assert summary["videos"]["alpha"]["cc"] == pytest.approx(cc(pred, sal).item())
    expected_kld = (kld(pred, sal).item() + kld(torch.ones(H, W), sal2).item()) / 2
    assert summary["videos"]["alpha"]["kld"] == pytest.approx(expected_kld)
    assert summary["std"]["cc"] == 0.0
    json.dumps(summary, allow_nan=False)


def test_evaluate_function_with_shuffled_auc_and_info_gain(frames, tmp_path):
    preds = {k: v[0] for k, v in frames.items()}
    gt = {k: {"saliency": v[1], "fixations": v[2]} for k, v in frames.items()}
    baseline = torch.ones(H, W)
    summary = evaluate(preds, gt, metrics=("auc_shuffled", "info_gain", "sim"), baseline=baseline,
                       out_dir=tmp_path, progress=False)
    assert set(summary["mean"]) == {"auc_shuffled", "info_gain", "sim"}
    assert all(math.isfinite(v) for v in summary["mean"].values())
    # the negatives of frame (beta, 0) are the fixations of (beta, 1)
    ev = Evaluator(("auc_shuffled",))
    ev.update("beta", 0, preds[("beta", 0)], fixations=gt[("beta", 0)]["fixations"],
              other_fixations=gt[("beta", 1)]["fixations"])
    ev.update("beta", 1, preds[("beta", 1)], fixations=gt[("beta", 1)]["fixations"],
              other_fixations=gt[("beta", 0)]["fixations"])
    expected = ev.summary()["videos"]["beta"]["auc_shuffled"]
    assert summary["videos"]["beta"]["auc_shuffled"] == pytest.approx(expected)
    assert (tmp_path / "summary.json").exists()


def test_errors(frames):
    pred, sal, fix = frames[("alpha", 0)]
    with pytest.raises(ValueError, match="metrics must be a non-empty subset"):
        Evaluator(("cc", "auc"))
    with pytest.raises(ValueError, match="needs a baseline"):
        Evaluator(("info_gain",))
    ev = Evaluator(("cc", "nss"))
    with pytest.raises(ValueError, match="metric 'nss' needs fixations="):
        ev.update("alpha", 0, pred, saliency=sal)
    ev.update("alpha", 0, pred, saliency=sal, fixations=fix)
    with pytest.raises(ValueError, match="already scored"):
        ev.update("alpha", 0, pred, saliency=sal, fixations=fix)
    with pytest.raises(ValueError, match="needs other_fixations"):
        Evaluator(("auc_shuffled",)).update("alpha", 0, pred, fixations=fix)
    with pytest.raises(ValueError, match="nothing to write"):
        Evaluator(("cc",)).write("unused")
    with pytest.raises(ValueError, match="no entry for video 'gamma'"):
        evaluate({("gamma", 0): pred}, {("alpha", 0): {"saliency": sal}}, metrics=("cc",), progress=False)


def test_evaluate_shuffled_negatives_keep_repeated_fixations():
    # frames 1 and 2 both fixate (2.0, -0.5): that pixel is two negatives of frame 0, as in a direct call
    # (evaluate's count map used to count it once: 0.26 instead of 0.335)
    pred = torch.rand(H, W, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dirs = [torch.tensor([[0.1, 0.1]]), torch.tensor([[2.0, -0.5]]), torch.tensor([[2.0, -0.5], [-1.0, 0.6]])]
    gt = {("v", f): {"fixations": d} for f, d in enumerate(dirs)}
    summary = evaluate({("v", 0): pred}, gt, metrics=("auc_shuffled",), progress=False)
    direct = auc_shuffled(pred, dirs[0], torch.cat(dirs[1:])).item()
    assert summary["videos"]["v"]["auc_shuffled"] == pytest.approx(direct, rel=1e-12)
    assert direct != pytest.approx(auc_shuffled(pred, dirs[0], torch.cat((dirs[1], dirs[2][1:]))).item())
    # binary fixation maps: each map's pixels count once per frame, so the shared pixel is still two
    maps = {("v", f): {"fixations": fixation_map(d, H, W)} for f, d in enumerate(dirs)}
    summary = evaluate({("v", 0): pred}, maps, metrics=("auc_shuffled",), progress=False)
    assert summary["videos"]["v"]["auc_shuffled"] == pytest.approx(direct, rel=1e-12)


def test_write_replaces_no_file_until_every_file_is_ready(frames, tmp_path, monkeypatch):
    pred, sal, fix = frames[("alpha", 0)]
    ev = Evaluator(("cc", "auc_judd"), seed=np.int64(3))  # a NumPy seed made json.dump fail after the CSVs
    assert ev.seed == 3 and type(ev.seed) is int
    ev.update("alpha", 0, pred, saliency=sal, fixations=fix)
    paths = ev.write(tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["seed"] == 3
    names = ("per_frame.csv", "per_video.csv", "summary.json")
    before = {name: (tmp_path / name).read_text() for name in names}
    ev.update("alpha", 1, *frames[("alpha", 1)][:1], saliency=frames[("alpha", 1)][1],
              fixations=frames[("alpha", 1)][2])

    def broken(*args, **kwargs):
        raise TypeError("not serialisable")

    monkeypatch.setattr(json, "dumps", broken)
    with pytest.raises(TypeError, match="not serialisable"):
        ev.write(tmp_path)
    assert {name: (tmp_path / name).read_text() for name in before} == before  # old files, all three
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # no temporary file left
    monkeypatch.undo()
    assert ev.write(tmp_path) == paths
    assert (tmp_path / "per_frame.csv").read_text().count("\n") == 3


def test_evaluator_checks_seed_and_single_frames(frames):
    pred, sal, fix = frames[("alpha", 0)]
    for seed in (-1, 2.5, "3", True):
        with pytest.raises(ValueError, match="seed must be an integer >= 0"):
            Evaluator(("cc",), seed=seed)
    ev = Evaluator(("cc",))
    with pytest.raises(ValueError, match=r"pred must be one frame's map .* got shape \(3, 8, 16\)"):
        ev.update("alpha", 0, torch.stack([pred] * 3), saliency=torch.stack([sal] * 3))  # was averaged
    assert ev.update("alpha", 0, pred[None, None], saliency=sal)["cc"] == pytest.approx(cc(pred, sal).item())


def test_categories_average_the_video_means_per_category(frames, tmp_path):
    """AVS360's evaluation reports per video, then per content category: the category means are the
    means of their videos' means, ``category_mean`` the mean over categories."""
    from sphsal.metrics import read_categories

    extra = {("gamma", 0): _frame(40), ("gamma", 1): _frame(41)}
    path = tmp_path / "categories.csv"
    path.write_text("\ufeffvideo,category\nalpha,music\n\nbeta, speech\ngamma,music\n", encoding="utf-8")
    categories = read_categories(path)  # a spreadsheet's byte-order mark is no part of the header
    assert categories == {"alpha": "music", "beta": "speech", "gamma": "music"}
    ev = Evaluator(("cc", "nss"), categories=categories)
    for (video, frame), (pred, sal, fix) in {**frames, **extra}.items():
        ev.update(video, frame, pred, saliency=sal, fixations=fix)
    videos = ev.summary()["videos"]
    summary = ev.summary()
    for m in ("cc", "nss"):
        music = (videos["alpha"][m] + videos["gamma"][m]) / 2
        assert summary["categories"]["music"][m] == pytest.approx(music)
        assert summary["categories"]["speech"][m] == pytest.approx(videos["beta"][m])
        assert summary["category_mean"][m] == pytest.approx((music + videos["beta"][m]) / 2)
    assert summary["categories"]["music"]["n_videos"] == 2
    paths = ev.write(tmp_path / "out")
    with open(paths["per_category"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["category"], r["n_videos"]) for r in rows] == [("music", "2"), ("speech", "1"), ("mean", "3")]
    plain = Evaluator(("cc",))  # a later evaluation without categories leaves no stale per_category.csv
    plain.update("alpha", 0, *frames[("alpha", 0)][:1], saliency=frames[("alpha", 0)][1])
    plain.write(tmp_path / "out")
    assert "per_category.csv" not in os.listdir(tmp_path / "out")
    partial = Evaluator(("cc",), categories={"alpha": "music"})
    for video in ("alpha", "beta"):
        partial.update(video, 0, frames[(video, 0)][0], saliency=frames[(video, 0)][1])
    with pytest.raises(ValueError, match="videos 'beta' have no category"):
        partial.summary()
    with pytest.raises(ValueError, match="video 'alpha' has an empty category"):
        Evaluator(("cc",), categories={"alpha": " "})


@pytest.mark.parametrize("text, problem", [
    ("alpha,music,extra\n", "line 1: expected 'video,category'"),
    ("alpha,\n", "line 1: expected"),
    ("alpha,music\nalpha,speech\n", "line 2: video 'alpha' is listed twice"),
    ("video,category\n\n", "lists no video"),
])
def test_a_bad_categories_file_is_named_with_its_line(tmp_path, text, problem):
    from sphsal.metrics import read_categories

    path = tmp_path / "cats.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"cats.csv.*{problem}"):
        read_categories(path)
    with pytest.raises(FileNotFoundError, match="categories file not found"):
        read_categories(tmp_path / "none.csv")
