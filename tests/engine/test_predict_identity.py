"""``predict_videos``: which video a finished output folder belongs to, the VIDEO argument, and the advice
for AEM models on videos without ambisonic audio."""

import json
import os

import numpy as np
import pytest

from sphsal.engine.predict import predict_videos
from sphsal.models import create_model
from sphsal.viz import write_video

OPTIONS = dict(progress=False, make_overlay=False, device="cpu")


def _video(path, channels=4, seed=0, n=3, fps=8, sr=16000):
    """A short mp4 of random frames (``seed``) with a ``channels``-channel tone."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = np.arange(int(sr * n / fps)) / sr
    audio = np.stack([0.2 * np.sin(2 * np.pi * (300 + 100 * seed + 50 * c) * t)
                      for c in range(channels)]).astype(np.float32)
    rng = np.random.default_rng(seed)
    frames = [(rng.random((32, 64, 3)) * 255).astype(np.uint8) for _ in range(n)]
    write_video(str(path), frames, fps, audio=audio, sample_rate=sr)
    return str(path)


def _prior():
    return create_model("aem_ecb", output_size=(16, 32))


def _outputs(folder):
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(folder) for f in files}


def test_another_video_of_the_same_name_is_not_skipped(tmp_path):
    first = _video(tmp_path / "a" / "amb.mp4", seed=0)
    other = _video(tmp_path / "b" / "amb.mp4", seed=1)
    out = tmp_path / "out"
    [record] = predict_videos(_prior(), [first], out, **OPTIONS)
    assert record["source"] == {"size": os.path.getsize(first), "mtime_ns": os.stat(first).st_mtime_ns}
    kept = _outputs(out / "amb")
    # Same name, other file: its outputs are not the other video's (an error, as for other settings).
    with pytest.raises(ValueError, match="holds predictions made from another video file") as err:
        predict_videos(_prior(), [other], out, **OPTIONS)
    assert repr(first) in str(err.value)
    assert "with other model settings" not in str(err.value)
    assert _outputs(out / "amb") == kept
    # overwrite=True redoes it for the video given.
    [redone] = predict_videos(_prior(), [other], out, overwrite=True, **OPTIONS)
    assert not redone["skipped"] and redone["video"] == other
    assert json.loads((out / "amb" / "done.json").read_text())["video"] == other
    # The same file under another spelling of its path is skipped, reported under the path given now.
    [again] = predict_videos(_prior(), [os.path.relpath(other)], out, **OPTIONS)
    assert again["skipped"] and again["video"] == os.path.relpath(other)


def test_a_changed_video_or_another_model_is_named_as_such(tmp_path):
    video = _video(tmp_path / "v.mp4")
    out = tmp_path / "out"
    predict_videos(_prior(), [video], out, **OPTIONS)
    stat = os.stat(video)
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten in place, same size
    with pytest.raises(ValueError, match=r"another video file \('.*v\.mp4' as recorded, or that file changed "
                                         r"since\)"):
        predict_videos(_prior(), [video], out, **OPTIONS)
    other = create_model("aem_ecb", output_size=(16, 32), floor=0.5)
    with pytest.raises(ValueError, match="from another video file .* and with other model settings") as err:
        predict_videos(other, [video], out, **OPTIONS)
    assert "model_kwargs" in str(err.value) and "mtime_ns" in str(err.value)


def test_records_without_the_source_video_are_redone_only_with_overwrite(tmp_path):
    video = _video(tmp_path / "v.mp4")
    out = tmp_path / "out"
    predict_videos(_prior(), [video], out, **OPTIONS)
    done = out / "v" / "done.json"
    record = json.loads(done.read_text())
    del record["source"]  # as sphsal wrote it before it recorded the source
    done.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="older sphsal that did not record the source video; pass "
                                         r"overwrite=True \(sphsal predict --overwrite\)"):
        predict_videos(_prior(), [video], out, **OPTIONS)
    [redone] = predict_videos(_prior(), [video], out, overwrite=True, **OPTIONS)
    assert not redone["skipped"] and "source" in json.loads(done.read_text())


def test_a_folder_is_named_as_the_video_argument(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    # a model that reads no audio: the folder was reported as an "audio file"
    model = create_model("planar_unet", frame_size=(16, 32), width_mult=0.125)
    with pytest.raises(IsADirectoryError, match=f"video argument {folder} is a folder, not a video file"):
        predict_videos(model, [folder], tmp_path / "out", **OPTIONS)
    with pytest.raises(FileNotFoundError, match="video file"):
        predict_videos(model, [tmp_path / "missing.mp4"], tmp_path / "out", **OPTIONS)
    assert not (tmp_path / "out").exists()


def test_aem_advice_on_a_stereo_video_depends_on_a_use_aem_option(tmp_path):
    video = _video(tmp_path / "stereo.mp4", channels=2)
    with pytest.raises(ValueError, match="stereo") as err:
        predict_videos(_prior(), [video], tmp_path / "out", **OPTIONS)
    assert "aem_ecb has no use_aem option, so it cannot run without ambisonic audio" in str(err.value)
    assert "--no-aem" not in str(err.value) and "use_aem=False" not in str(err.value)
    avs360 = create_model("avs360", view="erp_planar", width_mult=0.0625, clip_len=2, frame_size=(32, 64))
    with pytest.raises(ValueError, match=r"stereo.*sphsal predict --no-aem, model option use_aem=False"):
        predict_videos(avs360, [video], tmp_path / "out", **OPTIONS)
