import json
import os

import numpy as np
import pytest

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


def test_unet_prediction_feeds_back_its_previous_map(tmp_path, monkeypatch):
    import torch

    from sphsal.engine.evaluate import upsample_prediction

    video = _video(tmp_path / "v.mp4", channels=4, n=3)
    torch.manual_seed(0)
    model = create_model("spherical_unet", frame_size=(16, 32), width_mult=0.125)
    seen = []
    original = model.prepare_inputs
    monkeypatch.setattr(model, "prepare_inputs", lambda batch: seen.append(batch["prev_saliency"].clone())
                        or original(batch))
    predict_videos(model, [video], tmp_path / "out", progress=False, save_npy=True, make_overlay=False)
    assert len(seen) == 3 and float(seen[0].abs().sum()) == 0.0
    first = torch.from_numpy(np.load(tmp_path / "out" / "v" / "maps" / "00000.npy"))
    assert torch.allclose(seen[1][0], upsample_prediction(first[None, None], (32, 64))[0])


def test_training_dataset_gets_the_previous_ground_truth(tmp_path):
    from sphsal.data import make_dataset
    from sphsal.engine.train import dataset_for_model

    root = make_dataset(tmp_path / "data", n_videos=1, duration=1.0, fps=8, height=32, width=64, seed=3)
    model = create_model("planar_unet", frame_size=(16, 32), width_mult=0.125)
    ds = dataset_for_model(model, "360av-hm", root)
    assert ds.clip_len == model.input_spec.clip_len
    assert float(ds[0]["prev_saliency"].abs().sum()) == 0.0
    assert np.allclose(ds[3]["prev_saliency"].numpy(), ds[2]["saliency"].numpy())
