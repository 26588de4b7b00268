import hashlib
import json
import os

import numpy as np
import pytest
import torch
from engine_tiny import BlobDataset

from sphsal.engine.evaluate import evaluate_model
from sphsal.engine.predict import predict_videos
from sphsal.models import create_model
from sphsal.viz import write_video

SMALL_AVS360 = dict(view="erp_planar", width_mult=0.0625, clip_len=2, frame_size=(32, 64))


def _video(path, channels, n=6, fps=8, sr=16000):
    t = np.arange(int(sr * n / fps)) / sr
    audio = np.stack([0.2 * np.sin(2 * np.pi * 440 * t)] * channels).astype(np.float32)
    frames = [(np.random.default_rng(k).random((32, 64, 3)) * 255).astype(np.uint8) for k in range(n)]
    write_video(path, frames, fps, audio=audio, sample_rate=sr)
    return str(path)


def test_predict_stereo_video_needs_no_aem(tmp_path):
    video = _video(tmp_path / "stereo.mp4", channels=2)
    with pytest.raises(ValueError, match=r"stereo.*--no-aem|stereo.*use_aem"):
        predict_videos(create_model("avs360", **SMALL_AVS360), [video], tmp_path / "out", progress=False)
    model = create_model("avs360", use_aem=False, **SMALL_AVS360)
    [record] = predict_videos(model, [video], tmp_path / "out", progress=False, save_npy=True)
    assert record["frames"] == 6 and not record["skipped"]
    maps = sorted(os.listdir(tmp_path / "out" / "stereo" / "maps"))
    assert maps[:2] == ["00000.npy", "00000.png"] and len(maps) == 12
    m = np.load(tmp_path / "out" / "stereo" / "maps" / "00003.npy")
    assert m.min() >= 0 and abs(m.sum() - 1) < 1e-4
    assert os.path.getsize(tmp_path / "out" / "stereo" / "overlay.mp4") > 0
    # A rerun skips the finished video.
    [again] = predict_videos(model, [video], tmp_path / "out", progress=False)
    assert again["skipped"]
    silent = tmp_path / "silent.mp4"
    write_video(str(silent), [np.zeros((32, 64, 3), np.uint8)] * 4, 8)
    with pytest.raises(ValueError, match="no audio stream; avs360 reads the audio: use a visual-only model"):
        predict_videos(model, [str(silent)], tmp_path / "out", progress=False)


def test_predict_ambisonic_video_with_aem_and_missing_file(tmp_path):
    import av

    video = _video(tmp_path / "foa.mp4", channels=4)
    model = create_model("avs360", **SMALL_AVS360)
    predict_videos(model, [video], tmp_path / "out", progress=False)
    with av.open(str(tmp_path / "out" / "foa" / "overlay.mp4")) as c:
        assert c.streams.audio[0].codec_context.channels == 4
        assert c.streams.video[0].frames == 6
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        predict_videos(model, [str(tmp_path / "nope.mp4")], tmp_path / "out", progress=False)


def test_evaluate_prior_on_synthetic_dataset(tmp_path):
    from sphsal.data import create_dataset, make_dataset

    root = make_dataset(tmp_path / "data", n_videos=5, duration=1.0, fps=8, height=32, width=64, seed=1)
    ds = create_dataset("360av-hm", root, split="test", clip_len=2, frame_step=2)
    summary = evaluate_model(create_model("aem_ecb", output_size=(32, 64), clip_len=2), ds,
                             out_dir=tmp_path / "eval", progress=False)
    assert summary["n_videos"] == 1 and summary["n_frames"] == len(ds)
    with open(tmp_path / "eval" / "summary.json") as f:
        saved = json.load(f)
    assert saved["mean"]["cc"] == pytest.approx(summary["mean"]["cc"])
    assert -1 <= summary["mean"]["cc"] <= 1
    # sphsal evaluate --categories: per-category means; a video without a category stops it before work
    from sphsal.cli import main

    categories = tmp_path / "categories.csv"
    categories.write_text("synth_000,music\nsynth_001,music\nsynth_002,speech\nsynth_003,speech\n")
    argv = ["evaluate", "--model", "aem_ecb", "--model-arg", "output_size=[32,64]", "--model-arg",
            "clip_len=2", "--root", str(root), "--split", "all", "--frame-step", "4", "--metrics", "cc",
            "--quiet", "--out", str(tmp_path / "cats"), "--categories", str(categories)]
    assert main(argv) == 2 and not (tmp_path / "cats").exists()  # synth_004 has no category
    categories.write_text(categories.read_text() + "synth_004,speech\n")
    assert main(argv) == 0
    with open(tmp_path / "cats" / "summary.json") as f:
        saved = json.load(f)
    assert sorted(saved["categories"]) == ["music", "speech"]
    assert saved["categories"]["speech"]["n_videos"] == 3
    assert os.path.isfile(tmp_path / "cats" / "per_category.csv")


@pytest.mark.parametrize("interval", [1, 2])
def test_unet_prediction_feeds_back_its_map_of_prev_interval_frames_earlier(tmp_path, monkeypatch, interval):
    import torch

    from sphsal.data.dataset import prev_saliency_start
    from sphsal.engine.evaluate import upsample_prediction

    video = _video(tmp_path / "v.mp4", channels=4, n=4)
    torch.manual_seed(0)
    model = create_model("spherical_unet", frame_size=(16, 32), width_mult=0.125, prev_interval=interval)
    seen = []
    original = model.prepare_inputs
    monkeypatch.setattr(model, "prepare_inputs", lambda batch: seen.append(batch["prev_saliency"].clone())
                        or original(batch))
    predict_videos(model, [video], tmp_path / "out", progress=False, save_npy=True, make_overlay=False)
    start = prev_saliency_start("centre", (32, 64))  # as released: one fixation at the front
    assert len(seen) == 4 and all(torch.equal(seen[t][0], start) for t in range(interval))
    for t in range(interval, 4):
        earlier = torch.from_numpy(np.load(tmp_path / "out" / "v" / "maps" / f"{t - interval:05d}.npy"))
        assert torch.allclose(seen[t][0], upsample_prediction(earlier[None, None], (32, 64))[0])


@pytest.mark.parametrize("interval", [1, 2])
def test_evaluation_feeds_back_the_models_own_maps_not_the_ground_truth(tmp_path, monkeypatch, interval):
    """evaluate_model gave the U-Net the previous frame's ground truth (its dataset's prev_saliency): a
    leak that inflated its scores (CC 0.58 evaluated against 0.02 when predicting). Each video now runs
    frame by frame from its first frame, every prediction fed back ``prev_interval`` frames later as
    sphsal predict does, and only the dataset's frames are scored."""
    import torch

    from sphsal.data import make_dataset
    from sphsal.engine.evaluate import upsample_prediction
    from sphsal.engine.train import dataset_for_model

    root = make_dataset(tmp_path / "data", n_videos=2, duration=1.0, fps=8, height=32, width=64, seed=3)
    torch.manual_seed(0)
    model = create_model("spherical_unet", frame_size=(16, 32), width_mult=0.125, prev_interval=interval,
                         prev_start="zeros")
    with torch.no_grad():
        model.out.bias.fill_(1.0)  # positive maps (an untrained U-Net's last ReLU may give all zeros)
    ds = dataset_for_model(model, "360av-hm", root, split="all", frame_step=3)
    seen, outputs = [], []
    original = model.prepare_inputs

    def prepare(batch):
        prev = batch["prev_saliency"][0].cpu().clone()
        seen.append((batch["video"][0], int(batch["frame_index"][0]), prev))
        return original(batch)

    monkeypatch.setattr(model, "prepare_inputs", prepare)
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda **k: outputs.append(forward(**k)) or outputs[-1])
    summary = evaluate_model(model, ds, metrics=("cc",), progress=False)
    assert summary["n_frames"] == len(ds) == 6  # frames 0, 3 and 6 of each video scored
    assert [(v, t) for v, t, _ in seen] == [(v, t) for v in ("synth_000", "synth_001") for t in range(7)]
    for k, (_, t, prev) in enumerate(seen):
        if t < interval:
            assert float(prev.abs().sum()) == 0.0
        else:
            torch.testing.assert_close(prev, upsample_prediction(outputs[k - interval], prev.shape)[0].cpu())
            assert float(prev.sum()) > 0
    entry = ds.entries[0]
    truth = torch.as_tensor(entry.ground_truth(3 - interval)[0], dtype=torch.float32)
    assert not torch.allclose(seen[3][2], truth, atol=1e-3)  # frame 3 was given a prediction

    # ground truth on some frames only (as the folder adapter gives it): every frame before the last
    # scored one still runs, in order, each fed the prediction of prev_interval frames earlier
    import dataclasses

    from sphsal.data import ClipDataset

    sparse = ClipDataset([dataclasses.replace(entry, targets=[2, 5])], clip_len=ds.clip_len)
    seen.clear()
    outputs.clear()
    assert evaluate_model(model, sparse, metrics=("cc",), progress=False)["n_frames"] == 2
    assert [t for _, t, _ in seen] == list(range(6))
    fed = upsample_prediction(outputs[4 - interval], seen[4][2].shape)[0].cpu()
    torch.testing.assert_close(seen[4][2], fed)
    with pytest.raises(ValueError, match="evaluated video by video on its own predictions, which needs a "
                                         "sphsal.data.ClipDataset, got Subset"):
        evaluate_model(model, torch.utils.data.Subset(ds, [0, 1]), metrics=("cc",), progress=False)


def test_training_dataset_gets_the_ground_truth_of_prev_interval_frames_earlier(tmp_path):
    """The released U-Net code trains on the map of 5 frames earlier (frame_interval=5): the default."""
    from sphsal.data import make_dataset
    from sphsal.data.dataset import prev_saliency_start
    from sphsal.engine.train import dataset_for_model

    root = make_dataset(tmp_path / "data", n_videos=1, duration=1.0, fps=8, height=32, width=64, seed=3)
    old = {"prev_interval": 1, "prev_start": "zeros"}
    for kwargs, interval, start in (({}, 5, "centre"), (old, 1, "zeros")):
        model = create_model("planar_unet", frame_size=(16, 32), width_mult=0.125, **kwargs)
        ds = dataset_for_model(model, "360av-hm", root)
        assert ds.clip_len == model.input_spec.clip_len and ds.prev_saliency == interval
        assert ds.prev_saliency_start == start
        first = prev_saliency_start(start, (32, 64))
        assert all(torch.equal(ds[t]["prev_saliency"], first) for t in range(interval))
        assert np.allclose(ds[6]["prev_saliency"].numpy(), ds[6 - interval]["saliency"].numpy())
    centre = prev_saliency_start("centre", (32, 64))  # the front: the middle columns of the equator rows
    assert float(centre.sum()) == pytest.approx(1.0) and centre.argmax() // 64 in (15, 16)
    with pytest.raises(ValueError, match="prev_saliency must be an integer >= 0, got 1.5"):
        dataset_for_model(model, "360av-hm", root, prev_saliency=1.5)
    with pytest.raises(ValueError, match=r"planar_unet reads the map of 1 frame\(s\) earlier, but the "
                                         r"dataset option prev_saliency=2 .*--model-arg prev_interval=N"):
        dataset_for_model(model, "360av-hm", root, prev_saliency=2)
    assert dataset_for_model(model, "360av-hm", root, prev_saliency=True).prev_saliency == 1
    with pytest.raises(ValueError, match=r"starts a video with the 'zeros' map.*--model-arg prev_start"):
        dataset_for_model(model, "360av-hm", root, prev_saliency_start="centre")


def _unet(seed):
    import torch

    torch.manual_seed(seed)
    return create_model("planar_unet", frame_size=(16, 32), width_mult=0.125)


def test_fed_back_maps_start_with_the_models_start_map():
    from sphsal.data.dataset import prev_saliency_start
    from sphsal.engine.evaluate import FedBackMaps

    maps = FedBackMaps.for_model(create_model("planar_unet", frame_size=(16, 32), width_mult=0.125), (8, 16))
    pred = torch.rand(1, 1, 8, 16)
    for _ in range(5):
        assert torch.equal(maps.next_input(), prev_saliency_start("centre", (8, 16)))
        maps.push(pred)
    assert torch.equal(maps.next_input(), pred[0, 0])
    with pytest.raises(ValueError, match="prev_saliency_start must be one of"):
        FedBackMaps(1, (8, 16), "middle")


def test_unet_predictions_of_an_older_sphsal_were_made_with_the_previous_frames_map(tmp_path):
    """A done.json written before prev_interval existed records no prev_interval: its U-Net read the map
    of the frame before, so the same model with prev_interval=1 skips the video and today's default (5)
    is refused."""
    import json

    import torch

    video = _video(tmp_path / "v.mp4", channels=4, n=3)
    out, options = tmp_path / "out", dict(progress=False, make_overlay=False)
    torch.manual_seed(0)
    old = create_model("planar_unet", frame_size=(16, 32), width_mult=0.125, prev_interval=1,
                       prev_start="zeros")
    predict_videos(old, [video], out, **options)
    done = out / "v" / "done.json"
    record = json.loads(done.read_text())
    del record["model_kwargs"]["prev_interval"], record["model_kwargs"]["prev_start"]
    done.write_text(json.dumps(record))
    [again] = predict_videos(old, [video], out, **options)
    assert again["skipped"]
    torch.manual_seed(0)
    new = create_model("planar_unet", frame_size=(16, 32), width_mult=0.125)
    with pytest.raises(ValueError, match=r"prev_interval.*1.*\(done.json\).*5"):
        predict_videos(new, [video], out, **options)


def test_rerun_skips_only_what_the_same_model_and_options_made(tmp_path):
    video = _video(tmp_path / "v.mp4", channels=4, n=3)
    out = tmp_path / "out"
    options = dict(progress=False, make_overlay=False)
    first = _unet(0)
    [record] = predict_videos(first, [video], out, **options)
    assert record["model_name"] == "planar_unet" and not record["npy"]
    pngs = {name: (out / "v" / "maps" / name).read_bytes() for name in os.listdir(out / "v" / "maps")}
    for other, shown in [(create_model("spherical_unet", frame_size=(16, 32), width_mult=0.125),
                          "model_name: 'planar_unet' (done.json) vs 'spherical_unet'"),
                         (create_model("planar_unet", frame_size=(16, 32), width_mult=0.25), "model_kwargs"),
                         (_unet(1), "weights_sha1")]:
        with pytest.raises(ValueError, match=f"{out / 'v'} holds predictions made with other model") as err:
            predict_videos(other, [video], out, **options)
        assert shown in str(err.value)
    with pytest.raises(ValueError, match="requested_fps: None"):
        predict_videos(first, [video], out, fps=4, **options)
    assert {n: (out / "v" / "maps" / n).read_bytes() for n in os.listdir(out / "v" / "maps")} == pngs
    # The same model asking for an output it did not write redoes the video; fewer outputs skip it.
    [with_npy] = predict_videos(first, [video], out, save_npy=True, **options)
    assert not with_npy["skipped"] and with_npy["npy"] and len(os.listdir(out / "v" / "maps")) == 6
    [again] = predict_videos(_unet(0), [video], out, **options)
    assert again["skipped"] and again["npy"]
    # overwrite=True replaces another model's outputs, and leaves none of the earlier ones (the .npy
    # maps, and frames beyond the new run's, which a lower frame rate does not reach) among them.
    (out / "v" / "notes.txt").write_text("mine")
    [replaced] = predict_videos(_unet(1), [video], out, overwrite=True, fps=4, **options)
    assert not replaced["skipped"] and replaced["weights_sha1"] != again["weights_sha1"]
    maps = sorted(os.listdir(out / "v" / "maps"))
    assert maps == [f"{t:05d}.png" for t in range(replaced["frames"])] and replaced["frames"] < 3
    assert (out / "v" / "notes.txt").read_text() == "mine"


def test_npy_maps_are_the_raw_model_output(tmp_path):
    import torch

    from sphsal.data import VideoReader
    from sphsal.engine.predict import _clip_item
    from sphsal.engine.runtime import collate_items

    video = _video(tmp_path / "v.mp4", channels=2, n=2)
    model = create_model("stavis_visual", width_mult=1 / 16, clip_len=4, frame_size=(32, 64)).eval()
    predict_videos(model, [video], tmp_path / "out", progress=False, save_npy=True, save_png=False,
                   make_overlay=False)
    saved = np.load(tmp_path / "out" / "v" / "maps" / "00001.npy")
    with VideoReader(video, size=(32, 64)) as reader, torch.no_grad():
        item = _clip_item(reader, 1, 4, None, 0, model.input_spec.clip_mode)
        raw = model(**model.prepare_inputs(collate_items([item])))[0, 0].numpy()
    assert saved.dtype == np.float32 and saved.shape == tuple(model.input_spec.output_size)
    assert saved.min() >= 0 and np.allclose(saved, raw, atol=1e-6)
    assert abs(saved.sum() - 1) > 0.5  # the model's own scale, not normalised (as documented)


def test_bad_prediction_options_are_named_before_any_work(tmp_path):
    video = _video(tmp_path / "v.mp4", channels=2, n=2)
    model = _unet(0)
    for bad, name in [({"batch_size": 0}, "batch_size"), ({"batch_size": 1.5}, "batch_size"),
                      ({"fps": 0}, "fps"), ({"fps": -2.0}, "fps"),
                      ({"fps": 1e-6}, "fps 1e-06 gives less than one frame in the 0.25 s of")]:
        with pytest.raises(ValueError, match=name):
            predict_videos(model, [video], tmp_path / "out", progress=False, **bad)
    assert not (tmp_path / "out").exists()


class _NoFixations:
    """BlobDataset items without the fixation maps."""

    def __init__(self, n=4):
        self.items = BlobDataset(n)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        item = dict(self.items[i])
        del item["fixations"]
        return item


def test_evaluate_needs_fixations_only_for_the_metrics_that_use_them(tmp_path):
    ds = _NoFixations()
    summary = evaluate_model(create_model("tiny_test_model"), ds, metrics=("cc", "kld"), progress=False,
                             device="cpu")
    assert summary["n_frames"] == 4 and -1 <= summary["mean"]["cc"] <= 1
    with pytest.raises(ValueError, match="nss, auc_judd need 'fixations'"):
        evaluate_model(create_model("tiny_test_model"), ds, metrics=("cc", "nss", "auc_judd"), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_model(create_model("tiny_test_model"), ds, metrics=("cc",), batch_size=0, progress=False)


def test_fraction_frame_rates_pass_and_records_of_older_versions_are_named(tmp_path):
    from fractions import Fraction

    from sphsal.engine.predict import _check_options, _previous_record

    _check_options(2, Fraction(15, 2))
    _check_options(2, np.float32(8))
    with pytest.raises(ValueError, match="fps must be"):
        _check_options(2, float("inf"))
    done = tmp_path / "done.json"
    done.write_text(json.dumps({"video": "v.mp4", "frames": 3, "model": "SaliencyUNet", "png": True}))
    with pytest.raises(ValueError, match="older sphsal that did not record the model settings"):
        _previous_record(str(done), {})


def test_weights_digest_is_remembered_until_the_weights_change(monkeypatch):
    from sphsal.engine import predict

    model = _unet(0)
    first = predict._weights_digest(model)
    hashed, sha1 = [], hashlib.sha1
    monkeypatch.setattr(hashlib, "sha1", lambda: hashed.append(1) or sha1())
    assert predict._weights_digest(model) == first and not hashed  # the same state: not hashed again
    with torch.no_grad():
        next(model.parameters()).mul_(2)  # changed in place
    changed = predict._weights_digest(model)
    assert changed != first and len(hashed) == 1
    model.load_state_dict(_unet(0).state_dict())  # copied back into the same tensors
    assert predict._weights_digest(model) == first and len(hashed) == 2
    assert predict._weights_digest(_unet(0)) == first  # another model with the same weights


def test_resizing_for_scoring_and_training_wraps_the_seam():
    """Predictions enlarged to the ground truth's size, and ground truth enlarged to a model's output,
    interpolate across the +-180 deg seam: rolling the map by a column rolls the result."""
    from sphsal.engine.evaluate import upsample_prediction
    from sphsal.engine.runtime import resize_target

    pred = torch.rand(2, 1, 8, 10)
    up = upsample_prediction(pred, (40, 80))
    torch.testing.assert_close(upsample_prediction(pred.roll(1, -1), (40, 80)), up.roll(8, -1))
    target = torch.rand(2, 8, 16)
    big = resize_target(target, (16, 32))
    torch.testing.assert_close(resize_target(target.roll(1, -1), (16, 32)), big.roll(2, -1))


class _PriorModel(torch.nn.Module):
    """Predicts the equator centre bias for every item, whatever it shows."""

    def prepare_inputs(self, batch):
        return {"frames": batch["frames"]}

    def forward(self, frames):
        from sphsal.priors import equator_bias

        return equator_bias(*frames.shape[-2:]).expand(frames.shape[0], 1, -1, -1)


def test_info_gain_over_a_prior_baseline():
    """The ECB prior gains nothing over the ECB baseline; over the planar centre bias it gains what the
    metric gives for the two maps."""
    from sphsal.metrics import info_gain
    from sphsal.priors import center_bias, equator_bias

    ds = BlobDataset(4)
    over_ecb = evaluate_model(_PriorModel(), ds, metrics=("info_gain",), baseline="ecb", progress=False)
    assert over_ecb["mean"]["info_gain"] == pytest.approx(0.0, abs=1e-6)
    over_center = evaluate_model(_PriorModel(), ds, metrics=("info_gain",), baseline="center", progress=False)
    h, w = ds[0]["fixations"].shape
    expected = [float(info_gain(equator_bias(h, w), ds[i]["fixations"], baseline=center_bias(h, w),
                                weights="sphere", reduction="mean")) for i in range(len(ds))]
    per_video = {}
    for i in range(len(ds)):
        per_video.setdefault(ds[i]["video"], []).append(expected[i])
    video_means = [np.mean(v) for v in per_video.values()]
    assert over_center["mean"]["info_gain"] == pytest.approx(np.mean(video_means))
    assert abs(over_center["mean"]["info_gain"]) > 0.05
    with pytest.raises(ValueError, match="baseline must be a map or one of"):
        evaluate_model(_PriorModel(), ds, metrics=("info_gain",), baseline="uniform", progress=False)


def test_shuffled_auc_draws_negatives_from_the_same_videos_other_frames(tmp_path):
    """evaluate_model's auc_shuffled equals sphsal.metrics.evaluate's on the same maps, whose negatives
    are by definition the fixations of the same video's other frames."""
    from sphsal.data import create_dataset, make_dataset
    from sphsal.engine.evaluate import upsample_prediction
    from sphsal.engine.runtime import collate_items
    from sphsal.metrics import evaluate

    root = make_dataset(tmp_path / "data", n_videos=5, duration=1.0, fps=8, height=32, width=64, seed=1)
    ds = create_dataset("360av-hm", root, split="all", clip_len=1, frame_step=2)
    model = create_model("aem_ecb", output_size=(16, 32), clip_len=1)  # upsampled to the 32x64 truth
    summary = evaluate_model(model, ds, metrics=("auc_shuffled",), progress=False)
    predictions, truth = {}, {}
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            key = (item["video"], item["frame_index"])
            pred = model(**model.prepare_inputs(collate_items([item])))
            predictions[key] = upsample_prediction(pred, tuple(item["fixations"].shape))[0]
            truth[key] = {"fixations": item["fixations"]}
    expected = evaluate(predictions, truth, metrics=("auc_shuffled",), weights="sphere", progress=False)
    assert summary["n_videos"] == 5 and summary["mean"]["auc_shuffled"] == pytest.approx(
        expected["mean"]["auc_shuffled"], abs=1e-9)
    assert 0.3 < summary["mean"]["auc_shuffled"] < 0.7  # a centre prior gains little against these negatives
    with pytest.raises(ValueError, match="auc_shuffled' needs a sphsal.data.ClipDataset"):
        evaluate_model(model, BlobDataset(4), metrics=("auc_shuffled",), progress=False)


def test_targets_with_empty_ground_truth_are_an_error_or_left_out(tmp_path):
    """Published map datasets hold a few blank maps (ViNet's loader draws another clip for them): by
    default such a target is an error naming its frame; with empty_truth="next" its item is the next
    target's, and evaluation leaves the blank frames out (and counts them)."""
    import dataclasses

    from sphsal.data import ClipDataset, EmptyGroundTruth, create_dataset, make_dataset

    root = make_dataset(tmp_path / "data", n_videos=1, duration=1.0, fps=8, height=32, width=64, seed=2)
    entry = create_dataset("360av-hm", root, split="all", clip_len=1).entries[0]

    def truth(t):
        if t in (2, 3):
            raise EmptyGroundTruth(f"saliency map of frame {t} in maps/ is empty (all zero)")
        return entry.ground_truth(t)

    blank = dataclasses.replace(entry, ground_truth=truth)
    with pytest.raises(EmptyGroundTruth, match="frame 2 in maps/ is empty .*; pass empty_truth='next'"):
        ClipDataset([blank], clip_len=1)[2]
    lenient = ClipDataset([blank], clip_len=1, empty_truth="next", prev_saliency=True)
    with pytest.warns(UserWarning, match="frame 2 in maps/ is empty .*leaves them out"):
        item = lenient[2]
    assert item["frame_index"] == 4 and float(item["prev_saliency"].abs().sum()) == 0.0  # frame 3 is blank
    assert [lenient[i]["frame_index"] for i in (-1, 3, 5)] == [7, 4, 5]
    assert float(lenient[1]["prev_saliency"].sum()) > 0
    model = create_model("aem_ecb", output_size=(16, 32), clip_len=1)
    scored = ClipDataset([blank], clip_len=1, empty_truth="next")
    with pytest.warns(UserWarning, match="leaves them out"):
        summary = evaluate_model(model, scored, metrics=("cc", "auc_shuffled"), progress=False)
    assert summary["n_frames"] == 6 and summary["skipped_frames"] == 2
    twins = ClipDataset([entry, entry], clip_len=1)  # two videos of one name are still an error, not merged
    with pytest.raises(ValueError, match="frame 0 of video 'synth_000' was already scored"):
        evaluate_model(model, twins, metrics=("cc",), progress=False)
    with pytest.raises(ValueError, match="empty_truth must be one of"):
        ClipDataset([blank], empty_truth="skip")
