"""Each adapter reads a tiny fixture written in its real on-disk format; conventions are converted."""

import math
import os
import pickle

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from data_fixtures import (
    H,
    W,
    near,
    peak,
    pixel_of,
    write_jpg_frames,
    write_stavis_tree,
    write_video,
    write_video_with_audio,
)

from sphsal.data import create_dataset, list_datasets, make_video, split_videos
from sphsal.data.adapters._common import uv_to_directions
from sphsal.data.adapters.vr_eyetracking import read_gaze_txt


def check_item(item, clip_len, h=H, w=W):
    assert item["frames"].shape == (3, clip_len, h, w) and item["frames"].dtype == torch.float32
    assert item["saliency"].shape == (h, w) and item["fixations"].shape == (h, w)
    assert item["saliency"].sum() > 0 and item["fixations"].sum() >= 1
    assert set(item["fixations"].unique().tolist()) <= {0.0, 1.0}
    assert isinstance(item["video"], str) and isinstance(item["frame_index"], int)


def test_registry_lists_every_adapter():
    assert list_datasets() == ["360av-hm", "eccv18", "folder", "pvs-hm", "salient360", "stavis",
                               "vr-eyetracking"]
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        create_dataset("nope", ".")


def test_splits_are_deterministic_and_disjoint():
    names = [f"v{i:02d}" for i in range(12)][::-1]
    train, test = split_videos(names, "train"), split_videos(names, "test")
    assert test == ["v04", "v09"] and sorted(train + test) == sorted(names)
    assert split_videos(names, "all") == sorted(names)
    with pytest.raises(ValueError, match="split"):
        split_videos(names, "val")
    assert split_videos(names[:4], "train") == sorted(names[:4])
    with pytest.raises(ValueError, match="none of these 4; use split 'all'"):  # would be empty
        split_videos(names[:4], "test")


# --- 360av-hm
@pytest.fixture(scope="module")
def av360_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("av360hm")
    make_video(root / "videos" / "clipA.mp4", duration=1.0, fps=8, height=H, width=W, seed=1)
    for condition in ("ambix", "mono", "none"):
        folder = root / "dataset_public" / condition / "clipA"
        folder.mkdir(parents=True)
        for p, (u, v) in enumerate([(0.25, 0.25), (0.25, 0.25)]):
            rows = "\n".join(f"{t / 16:.4f},{u},{v}" for t in range(16))
            (folder / f"user{p}.csv").write_text("time,2dmu,2dmv\n" + rows + "\n")
    return root


def test_360avhm_reads_gaze_csvs_from_the_top_left(av360_root, tmp_path):
    ds = create_dataset("360av-hm", av360_root, clip_len=3, cache_dir=tmp_path)
    assert len(ds) == 8
    item = ds[4]
    check_item(item, 3)
    assert item["audio"].shape[0] == 4 and item["sample_rate"] == 16000
    # u = v = 0.25: a quarter turn to the left, 45 degrees up.
    assert near(peak(item["saliency"]), pixel_of(math.pi / 2, math.pi / 4))
    assert len(list((tmp_path / "groundtruth").rglob("*.npy"))) == 1  # cached
    torch.testing.assert_close(create_dataset("360av-hm", av360_root, clip_len=3, cache_dir=tmp_path)[4]
                               ["saliency"], item["saliency"])


def test_360avhm_options_and_bad_inputs(av360_root, tmp_path):
    with pytest.raises(ValueError, match="condition"):
        create_dataset("360av-hm", av360_root, condition="stereo")
    with pytest.raises(FileNotFoundError, match="no_such_root"):
        create_dataset("360av-hm", tmp_path / "no_such_root")
    bad = av360_root / "dataset_public" / "mono" / "clipA" / "user1.csv"
    bad.write_text("t,x,y\n0.1,0.5,0.5\n")
    with pytest.raises(ValueError, match="user1.csv.*wrong columns"):
        create_dataset("360av-hm", av360_root, condition="mono", cache_dir=False)
    with pytest.raises(TypeError, match="unknown option"):
        create_dataset("360av-hm", av360_root, clip_length=3)


# --- eccv18
def test_eccv18_reads_frames_and_a_plain_data_pickle(tmp_path):
    write_jpg_frames(str(tmp_path / "vidA"), 3, "%04d.jpg", h=H, w=W)
    vinfo = {"vidA": {f"{k:04d}": [(0.75, 0.5), (0.75, 0.5)] for k in range(1, 4)}}
    with open(tmp_path / "vinfo.pkl", "wb") as f:
        pickle.dump(vinfo, f, protocol=2)
    ds = create_dataset("eccv18", tmp_path, clip_len=2, cache_dir=False)
    assert len(ds) == 3
    item = ds[2]
    check_item(item, 2)
    assert item["audio"].shape == (0, 0) and item["sample_rate"] == 0
    assert near(peak(item["saliency"]), pixel_of(-math.pi / 2, 0.0))  # x = 0.75: a quarter turn right
    with pytest.raises(IndexError, match="frame -1 out of range for the 3 frames in .*vidA"):
        ds.entries[0].frames([-1, 0])  # not the last frame, silently


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_eccv18_refuses_pickles_that_would_run_code(tmp_path, capsys):
    write_jpg_frames(str(tmp_path / "vidA"), 1, "%04d.jpg")
    with open(tmp_path / "vinfo.pkl", "wb") as f:
        pickle.dump({"vidA": {"0001": [_Exploit()]}}, f)
    with pytest.raises(ValueError, match="vinfo.pkl.*refusing"):
        create_dataset("eccv18", tmp_path)
    assert "never run" not in capsys.readouterr().out
    # numpy arrays and scalars are data: points stored as arrays load (protocol 2, as Python 2 wrote)
    with open(tmp_path / "vinfo.pkl", "wb") as f:
        pickle.dump({"vidA": {"0001": np.array([[0.75, 0.5]]), "0002": [(np.float64(0.25), 0.5)]}}, f,
                    protocol=2)
    item = create_dataset("eccv18", tmp_path, clip_len=1, cache_dir=False)[0]
    assert near(peak(item["saliency"]), pixel_of(-math.pi / 2, 0.0, *item["saliency"].shape),
                w=item["saliency"].shape[1])
    with open(tmp_path / "vinfo.pkl", "wb") as f:  # protocol 5 rebuilds arrays with _frombuffer
        pickle.dump({"vidA": {"0001": np.array([[0.75, 0.5]])}}, f, protocol=5)
    assert len(create_dataset("eccv18", tmp_path, clip_len=1, cache_dir=False)) == 1
    with open(tmp_path / "vinfo.pkl", "wb") as f:  # an object array's elements are restricted too
        pickle.dump({"vidA": {"0001": np.array([_Exploit()], dtype=object)}}, f)
    with pytest.raises(ValueError, match="vinfo.pkl.*refusing"):
        create_dataset("eccv18", tmp_path)
    assert "never run" not in capsys.readouterr().out


# --- vr-eyetracking
def test_vr_eyetracking_converts_bottom_left_fractions(tmp_path):
    (tmp_path / "videos").mkdir()
    write_video(str(tmp_path / "videos" / "007.mp4"), 10, 10, h=H, w=W)
    for p in ("p001", "p002"):
        folder = tmp_path / "Gaze_txt_files" / p
        folder.mkdir(parents=True)
        # the published lines: "frame", frame index FROM 1, "forward", head x, y, "eye", gaze x, y
        # (fractions of the panorama from its bottom-left corner)
        lines = [f"frame,{k},forward,0.5,0.5,eye,0.25,0.75" for k in range(1, 11)]
        (folder / f"007._2017-10-13-10-{p[-2:]}_ori_0.txt").write_text("\n".join(lines) + "\n")
    ds = create_dataset("vr-eyetracking", tmp_path, clip_len=4, fps=5, cache_dir=False)
    assert len(ds) == 5
    item = ds[3]
    check_item(item, 4)
    assert near(peak(item["saliency"]), pixel_of(math.pi / 2, math.pi / 4))  # u 0.25, v = 1 - 0.75
    # frame k (1-based) is sampled at its middle, (k - 0.5) / fps; skipped frames leave gaps
    path = tmp_path / "gaze.txt"
    path.write_text("frame,1,forward,0.5,0.5,eye,0.5,0.5\nframe,2,forward,0.5,0.5,eye,0.5,1\n"
                    "frame,4,forward,0.5,0.5,eye,0.5,0.5\n")
    samples = read_gaze_txt(str(path), 3, 10)
    assert np.allclose(samples.time, [0.05, 0.15, 0.35]) and samples.viewer.tolist() == [3, 3, 3]
    assert np.allclose(samples.el, [0, math.pi / 2, 0], atol=1e-6)  # y = 1 is the top
    (tmp_path / "Gaze_txt_files" / "p002" / "007._2017-10-13-10-02_ori_0.txt").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="ori_0.txt has wrong columns"):
        create_dataset("vr-eyetracking", tmp_path)


# --- pvs-hm
def test_pvs_hm_reads_lat_lon_degrees_left_positive(tmp_path):
    (tmp_path / "videos").mkdir()
    write_video(str(tmp_path / "videos" / "A380.mp4"), 6, 6, h=H, w=W)
    n = 12  # two samples per frame
    data = np.tile([30.0, 90.0, -20.0, -45.0], (n, 1))  # viewer 0 (lat, lon), viewer 1 (lat, lon)
    scipy.io.savemat(tmp_path / "FULLdata_per_video_frame.mat", {"A380": data})
    ds = create_dataset("pvs-hm", tmp_path, clip_len=2, cache_dir=False)
    item = ds[5]
    check_item(item, 2)
    sal = item["saliency"]
    for az, el in ((math.pi / 2, math.radians(30)), (-math.pi / 4, math.radians(-20))):
        r, c = pixel_of(az, el)
        assert sal[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].max() > 0.5 * sal.max()
        assert item["fixations"][max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].sum() >= 1


def test_pvs_hm_latitudes_beyond_the_poles_are_an_error_naming_the_file(tmp_path):
    # (lon, lat) written in the wrong order: "latitudes" of 150 and -120 degrees. Without the check the
    # error came only when an item was read, from the metrics, naming neither the file nor the video.
    (tmp_path / "videos").mkdir()
    write_video(str(tmp_path / "videos" / "A380.mp4"), 6, 6, h=H, w=W)
    data = np.tile([150.0, 30.0, -120.0, -20.0], (12, 1))
    scipy.io.savemat(tmp_path / "FULLdata_per_video_frame.mat", {"A380": data})
    with pytest.raises(ValueError, match=r"FULLdata_per_video_frame.mat \[A380\]: latitude .* 150 degrees"):
        create_dataset("pvs-hm", tmp_path, clip_len=1, cache_dir=False)
    # The poles themselves are latitudes.
    poles = np.tile([90.0, 0.0, -90.0, 10.0], (12, 1))
    scipy.io.savemat(tmp_path / "FULLdata_per_video_frame.mat", {"A380": poles})
    assert len(create_dataset("pvs-hm", tmp_path, clip_len=1, cache_dir=False)) == 6


# --- salient360
def test_salient360_reads_bin_maps_and_fixation_csv(tmp_path):
    (tmp_path / "videos").mkdir()
    write_video(str(tmp_path / "videos" / "3_Park.mp4"), 4, 8, h=H, w=W)
    maps = np.zeros((4, H, W), dtype="<f4")
    for k in range(4):
        maps[k, 5 + k, 10 + 3 * k] = 1.0  # one bright pixel per frame
    (tmp_path / "saliency").mkdir()
    bin_path = tmp_path / "saliency" / f"3_Park_{W}x{H}x4_32b.bin"
    maps.tofile(bin_path)
    (tmp_path / "fixations").mkdir()
    (tmp_path / "fixations" / "3_Park_fixations.csv").write_text(
        "Idx, longitude, latitude, start timestamp, end timestamp, start frame, end frame\n"
        "0, 0.5, 0.5, 0, 200, 1, 2\n1, 0.25, 0.75, 200, 500, 3, 4\n")  # frames numbered from 1
    ds = create_dataset("salient360", tmp_path, clip_len=2)
    items = [ds[k] for k in range(4)]
    for k, item in enumerate(items):
        check_item(item, 2)
        assert peak(item["saliency"]) == (5 + k, 10 + 3 * k)
    # lon/lat in [0, 1] from the top-left: (0.5, 0.5) is the front, (0.25, 0.75) left and down.
    assert [near(it["fixations"].nonzero()[0].tolist(), pixel_of(0.0, 0.0)) for it in items[:2]] == [True] * 2
    assert near(items[3]["fixations"].nonzero()[0].tolist(), pixel_of(math.pi / 2, -math.pi / 4))
    assert all(int(it["fixations"].sum()) == 1 for it in items)
    bin_path.write_bytes(bin_path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="3_Park_64x32x4_32b.bin.*truncated"):
        create_dataset("salient360", tmp_path)
    bin_path.unlink()
    maps[:3].tofile(tmp_path / "saliency" / f"3_Park_{W}x{H}x3_32b.bin")  # one map short: the last reused
    assert peak(create_dataset("salient360", tmp_path, clip_len=1)[3]["saliency"]) == (7, 16)
    (tmp_path / "saliency" / f"3_Park_{W}x{H}x3_32b.bin").unlink()
    maps[:2].tofile(tmp_path / "saliency" / f"3_Park_{W}x{H}x2_32b.bin")  # two short: refused
    with pytest.raises(ValueError, match="x2_32b.bin holds 2 maps, but .*3_Park.mp4 has 4 frames"):
        create_dataset("salient360", tmp_path)


@pytest.mark.parametrize("bits", [16, 64])
def test_salient360_reads_the_float_size_its_bin_name_gives(tmp_path, bits):
    """The toolbox's reader takes _16b, _32b and _64b maps (float16 / 32 / 64, by the name)."""
    (tmp_path / "videos").mkdir()
    write_video(str(tmp_path / "videos" / "3_Park.mp4"), 2, 8, h=H, w=W)
    maps = np.zeros((2, H, W), dtype=f"<f{bits // 8}")
    maps[1, 4, 7] = 0.5
    (tmp_path / "saliency").mkdir()
    maps.tofile(tmp_path / "saliency" / f"3_Park_{W}x{H}x2_{bits}b.bin")
    saliency = create_dataset("salient360", tmp_path, clip_len=1)[1]["saliency"]
    assert saliency.dtype == torch.float32 and peak(saliency) == (4, 7)
    (tmp_path / "saliency" / f"3_Park_{W}x{H}x2_{bits}b.bin").write_bytes(maps[:1].tobytes())
    with pytest.raises(ValueError, match=f"promises 2 float{bits} maps.*truncated"):
        create_dataset("salient360", tmp_path)
    maps.tofile(tmp_path / "saliency" / f"3_Park_{W}x{H}x2_{bits}b.bin")
    maps.astype("<f4").tofile(tmp_path / "saliency" / f"3_Park_{W}x{H}x2_32b.bin")
    with pytest.raises(ValueError, match=f"2 map files could be those of '3_Park'.*x2_{bits}b.bin.*keep one"):
        create_dataset("salient360", tmp_path)


def test_salient360_video_takes_its_own_maps_not_those_of_a_longer_name(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "saliency").mkdir()
    for name, row in (("1_Bar", 3), ("1_Bar_2", 9)):
        write_video(str(tmp_path / "videos" / f"{name}.mp4"), 2, 8, h=H, w=W)
        maps = np.zeros((2, H, W), dtype="<f4")
        maps[:, row, 5] = 1.0
        maps.tofile(tmp_path / "saliency" / f"{name}_{W}x{H}x2_32b.bin")
    data = create_dataset("salient360", tmp_path, clip_len=1, short_audio="silence")  # no audio: unused
    assert [peak(data[k]["saliency"])[0] for k in range(4)] == [3, 3, 9, 9]
    with pytest.raises(ValueError, match="short_audio must be one of"):
        create_dataset("salient360", tmp_path, short_audio="silent")


# --- stavis
def test_stavis_reads_folds_maps_fixations_and_audio(tmp_path):
    write_stavis_tree(str(tmp_path), 25, 6, 16000)
    train = create_dataset("stavis", tmp_path, split="train", clip_len=3, clip_mode="center")
    test = create_dataset("stavis", tmp_path, split="test", clip_len=3)
    assert train.videos == ["DB/v"] and test.videos == ["DB/w"]
    assert len(create_dataset("stavis", tmp_path, databases="DB")) == 12
    item = train[2]
    check_item(item, 3, h=16, w=32)
    assert item["fixations"].nonzero().tolist() == [[8, 3]]  # fixMap_00003.mat
    assert item["audio"].shape == (1, 16000 * 3 // 25)
    with pytest.raises(FileNotFoundError, match="OTHER_list_train_1_fps.txt"):
        create_dataset("stavis", tmp_path, databases="OTHER")


def test_stavis_audio_shorter_than_the_video_is_an_error(tmp_path):
    write_stavis_tree(str(tmp_path), 25, 6, 16000, audio_frames=3)
    with pytest.raises(ValueError, match=r"v.wav is shorter than the video.*short_audio='silence'"):
        create_dataset("stavis", tmp_path, split="train", clip_len=2)
    with pytest.raises(ValueError, match="short_audio must be one of"):
        create_dataset("stavis", tmp_path, split="train", short_audio="pad")


def test_stavis_short_audio_read_as_silence_on_request(tmp_path):
    """STAViS's released loader clamps its audio windows to the wav: with short_audio='silence' the
    frames past the wav's 3 frames (of 6) hear silence, the earlier ones the wav, and one warning names
    the file."""
    write_stavis_tree(str(tmp_path), 25, 6, 16000, clicks=(0, 1, 2), audio_frames=3)
    with pytest.warns(UserWarning, match=r"v.wav is shorter than the video.*read as silence") as caught:
        data = create_dataset("stavis", tmp_path, split="train", clip_len=1, short_audio="silence")
        items = [data[t] for t in range(6)]
    assert sum("v.wav" in str(w.message) for w in caught) == 1  # once per track, not per item
    per_frame = 16000 // 25
    for t, item in enumerate(items):
        assert item["audio"].shape == (1, per_frame)
        assert float(item["audio"].abs().sum()) == (1.0 if t < 3 else 0.0)



@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_folder_video_with_short_audio_is_refused_or_silent_past_its_end(tmp_path, ext):
    """A Matroska audio track declares no duration of its own: the container's (the video's 2 s) passed
    the probe, and short_audio='silence' still raised at the first item, from the decoded length."""
    from sphsal.data.synthetic import _write_streams

    (tmp_path / "videos").mkdir()
    tone = np.tile(0.3 * np.sin(np.arange(8000) * 0.2, dtype=np.float32), (4, 1))  # 0.5 s
    _write_streams(str(tmp_path / "videos" / f"a.{ext}"), [np.zeros((H, W, 3), np.uint8)] * 16, 8, H, W,
                   tone, 16000, "aac")  # 2 s of video
    (tmp_path / "saliency" / "a").mkdir(parents=True)
    for k in range(16):
        cv2.imwrite(str(tmp_path / "saliency" / "a" / f"{k:04d}.png"), np.full((H, W), 9, np.uint8))
    with pytest.raises(ValueError, match=f"a.{ext} is shorter than the video.*short_audio=silence"):
        create_dataset("folder", tmp_path)
    with pytest.warns(UserWarning, match=f"a.{ext} is shorter than the video"):
        data = create_dataset("folder", tmp_path, clip_len=1, short_audio="silence")
    assert float(data[1]["audio"].abs().sum()) > 10 and float(data[10]["audio"].abs().sum()) == 0.0


# --- folder
def test_folder_layout_with_and_without_fixations(tmp_path):
    (tmp_path / "videos").mkdir()
    write_video(str(tmp_path / "videos" / "mine.mp4"), 8, 8, h=H, w=W)
    for sub in ("saliency", "fixations"):
        (tmp_path / sub / "mine").mkdir(parents=True)
    for k in range(6):  # maps for the first 6 of 8 frames, numbered from 1
        sal = np.zeros((H, W), np.uint8)
        sal[10, 20 + k] = 255
        cv2.imwrite(str(tmp_path / "saliency" / "mine" / f"frame_{k + 1}.png"), sal)
        fix = np.zeros((H, W), np.uint8)
        fix[3, k] = 255
        cv2.imwrite(str(tmp_path / "fixations" / "mine" / f"{k + 1:04d}.png"), fix)
    ds = create_dataset("folder", tmp_path, clip_len=4, size=(16, 32))
    assert len(ds) == 6
    item = ds[5]
    check_item(item, 4, h=16, w=32)
    assert peak(item["saliency"]) == (5, 12)
    assert item["fixations"].nonzero().tolist() == [[1, 2]]
    assert item["audio"].shape == (0, 0)
    for path in (tmp_path / "fixations" / "mine").iterdir():
        path.unlink()
    (tmp_path / "fixations" / "mine").rmdir()
    item = create_dataset("folder", tmp_path, clip_len=1)[2]
    assert item["fixations"].nonzero().tolist() == [[10, 22]]


def test_corrupt_video_in_a_dataset_is_named(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "broken.mp4").write_bytes(os.urandom(2000))
    (tmp_path / "saliency" / "broken").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "saliency" / "broken" / "1.png"), np.full((4, 8), 9, np.uint8))
    with pytest.raises(ValueError, match="broken.mp4"):
        create_dataset("folder", tmp_path)


def test_360avhm_video_with_audio_shorter_than_its_frames_is_named(av360_root, tmp_path):
    from sphsal.data.synthetic import _write_streams

    root = tmp_path / "short"
    (root / "videos").mkdir(parents=True)
    frames = [np.zeros((H, W, 3), np.uint8)] * 16  # 2 s at 8 fps
    tone = np.tile(0.3 * np.sin(np.arange(8000) * 0.2, dtype=np.float32), (4, 1))
    _write_streams(str(root / "videos" / "clipA.mp4"), frames, 8, H, W, tone, 16000, "aac")  # 0.5 s of audio
    (root / "dataset_public").mkdir()
    os.symlink(av360_root / "dataset_public" / "ambix", root / "dataset_public" / "ambix")
    with pytest.raises(ValueError, match="clipA.mp4 is shorter than the video"):
        create_dataset("360av-hm", root)
    with pytest.warns(UserWarning, match="clipA.mp4 is shorter than the video"):
        data = create_dataset("360av-hm", root, short_audio="silence", clip_len=1)
    assert data.index[1] == (0, 1) and data.index[5] == (0, 5)
    assert float(data[1]["audio"].abs().sum()) > 10 and float(data[5]["audio"].abs().sum()) == 0.0  # 0.625 s


# --- bad inputs shared by every adapter
@pytest.mark.parametrize("name", ["360av-hm", "eccv18", "folder", "pvs-hm", "salient360", "stavis",
                                  "vr-eyetracking"])
def test_every_adapter_names_a_missing_root(name, tmp_path):
    missing = tmp_path / "no_such_root"
    with pytest.raises(FileNotFoundError, match="no_such_root"):
        create_dataset(name, missing)
    # A root that exists but lacks the adapter's files names what it expected, never an empty dataset.
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        create_dataset(name, tmp_path)


def test_360avhm_condition_picks_the_gaze_folder_and_defaults_to_ambix(tmp_path):
    make_video(tmp_path / "videos" / "clipA.mp4", duration=0.5, fps=8, height=H, width=W, seed=2)
    # Each condition looks elsewhere: ambix a quarter turn left, mono a quarter turn right, none the front.
    looks = {"ambix": (0.25, 0.5), "mono": (0.75, 0.5), "none": (0.5, 0.5)}
    for condition, (u, v) in looks.items():
        folder = tmp_path / "dataset_public" / condition / "clipA"
        folder.mkdir(parents=True)
        rows = "\n".join(f"{t / 16:.4f},{u},{v}" for t in range(8))
        (folder / "user0.csv").write_text("time,2dmu,2dmv\n" + rows + "\n")
    expected = {"ambix": math.pi / 2, "mono": -math.pi / 2, "none": 0.0}
    default = create_dataset("360av-hm", tmp_path, clip_len=1, cache_dir=False)[2]
    assert near(peak(default["saliency"]), pixel_of(expected["ambix"], 0.0))
    for condition, az in expected.items():
        item = create_dataset("360av-hm", tmp_path, condition=condition, clip_len=1, cache_dir=False)[2]
        assert near(peak(item["saliency"]), pixel_of(az, 0.0)), condition
    # videos stored per condition, as some download scripts do: the ambiX one is read
    (tmp_path / "videos" / "ambix").mkdir()
    (tmp_path / "videos" / "clipA.mp4").rename(tmp_path / "videos" / "ambix" / "clipA.mp4")
    item = create_dataset("360av-hm", tmp_path, condition="none", clip_len=1, cache_dir=False)[2]
    assert item["audio"].shape[0] == 4 and near(peak(item["saliency"]), pixel_of(0.0, 0.0))


def _salient360_bar(root, fixation_file: str, fixation_csv: str):
    """A salient360 root with one 2-frame video ``1_Bar``, uniform maps and the given fixation CSV."""
    (root / "videos").mkdir(parents=True)
    write_video(str(root / "videos" / "1_Bar.mp4"), 2, 8, h=H, w=W)
    (root / "saliency").mkdir()
    np.ones((2, H, W), dtype="<f4").tofile(root / "saliency" / f"1_Bar_{W}x{H}x2_32b.bin")
    (root / "fixations").mkdir()
    (root / "fixations" / fixation_file).write_text(fixation_csv)


def test_salient360_fixation_csv_with_wrong_columns_is_named(tmp_path):
    _salient360_bar(tmp_path, "1_Bar_fixations.csv", "Idx, x, y, start frame, end frame\n0, 0.5, 0.5, 0, 1\n")
    with pytest.raises(ValueError, match="1_Bar_fixations.csv has wrong columns.*longitude"):
        create_dataset("salient360", tmp_path)


def test_an_all_zero_saliency_map_is_an_error_naming_its_folder(tmp_path):
    (tmp_path / "videos").mkdir()
    write_video(str(tmp_path / "videos" / "mine.mp4"), 2, 8, h=H, w=W)
    (tmp_path / "saliency" / "mine").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "saliency" / "mine" / "1.png"), np.full((H, W), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "saliency" / "mine" / "2.png"), np.zeros((H, W), np.uint8))
    ds = create_dataset("folder", tmp_path, clip_len=1)
    check_item(ds[0], 1)
    with pytest.raises(ValueError, match=r"frame 1 in .*saliency/mine is empty .*empty_truth='next'"):
        ds[1]
    lenient = create_dataset("folder", tmp_path, clip_len=1, empty_truth="next")
    with pytest.warns(UserWarning, match="saliency/mine is empty"):
        assert lenient[1]["frame_index"] == 0  # the next target with ground truth, wrapping around
    from sphsal.data import EmptyGroundTruth, MapGroundTruth

    negative = MapGroundTruth(lambda k: np.full((4, 8), -1.0), None, None, "maps/")
    with pytest.raises(ValueError, match="frame 0 in maps/ is not finite and non-negative") as err:
        negative(0)
    assert not isinstance(err.value, EmptyGroundTruth)  # an error even with empty_truth="next"


# --- audio the dataset needs
def _av360_tree(root, video_writer, rows="0.1,0.25,0.5\n0.6,0.25,0.5\n"):
    """A 360av-hm tree with video 'clipA' (written by ``video_writer(path)``) and one viewer's CSV."""
    (root / "videos").mkdir(parents=True)
    video_writer(str(root / "videos" / "clipA.mp4"))
    gaze = root / "dataset_public" / "ambix" / "clipA"
    gaze.mkdir(parents=True)
    (gaze / "user0.csv").write_text("time,2dmu,2dmv\n" + rows)
    return gaze / "user0.csv"


def test_360avhm_video_without_ambisonic_audio_is_named_when_the_dataset_is_built(tmp_path):
    _av360_tree(tmp_path / "stereo", lambda p: write_video_with_audio(p, 8, 8, channels=2, h=H, w=W))
    with pytest.raises(ValueError, match=r"clipA.mp4.*needs ambisonic audio.*stereo \(2 channels\)"):
        create_dataset("360av-hm", tmp_path / "stereo", cache_dir=False)
    _av360_tree(tmp_path / "silent", lambda p: write_video(p, 8, 8, h=H, w=W))
    with pytest.raises(ValueError, match="clipA.mp4 has no audio stream"):
        create_dataset("360av-hm", tmp_path / "silent", cache_dir=False)
    _av360_tree(tmp_path / "foa", lambda p: write_video_with_audio(p, 8, 8, channels=4, h=H, w=W))
    ds = create_dataset("360av-hm", tmp_path / "foa", clip_len=1, cache_dir=False)
    assert ds.entries[0].audio.num_channels == 4 and ds[0]["audio"].shape[0] == 4


def test_optional_audio_keeps_any_channel_count(tmp_path):
    (tmp_path / "videos").mkdir()
    write_video_with_audio(str(tmp_path / "videos" / "mine.mp4"), 4, 8, channels=2, h=H, w=W)
    (tmp_path / "saliency" / "mine").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "saliency" / "mine" / "0.png"), np.full((H, W), 200, np.uint8))
    assert create_dataset("folder", tmp_path, clip_len=1)[0]["audio"].shape[0] == 2


def test_sample_rate_option_resamples_every_video_to_one_rate(tmp_path):
    """Videos recorded at 48 and 16 kHz could not share a batch (their windows differ in length); with
    the dataset option sample_rate every track is resampled when loaded, the stored rate kept apart."""
    from sphsal.audio import load_audio
    from sphsal.data.clips import audio_window, clip_span
    from sphsal.engine.runtime import collate_items

    (tmp_path / "videos").mkdir()
    for name, rate in (("hi", 48000), ("lo", 16000)):
        write_video_with_audio(str(tmp_path / "videos" / f"{name}.mp4"), 8, 8, channels=4, sample_rate=rate,
                               h=H, w=W)
        (tmp_path / "saliency" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "saliency" / name / "3.png"), np.full((H, W), 200, np.uint8))
    stored = create_dataset("folder", tmp_path, clip_len=2)
    assert [item["sample_rate"] for item in stored] == [48000, 16000]
    with pytest.raises(ValueError, match="dataset option sample_rate, --dataset-arg sample_rate="):
        collate_items([stored[0], stored[1]])
    one_rate = create_dataset("folder", tmp_path, clip_len=2, sample_rate=16000.0)
    batch = collate_items([one_rate[0], one_rate[1]])
    assert batch["sample_rate"].tolist() == [16000, 16000] and batch["audio"].shape == (2, 4, 4000)
    track, _ = load_audio(str(tmp_path / "videos" / "hi.mp4"), 16000, align_to_video=True)
    s0, s1 = audio_window(*clip_span(one_rate[0]["frame_index"], 2, 8), 16000)
    expected = np.concatenate([np.zeros((4, max(-s0, 0)), np.float32), track[:, max(s0, 0):s1]], axis=1)
    torch.testing.assert_close(batch["audio"][0], torch.from_numpy(expected))
    assert stored[0]["sample_rate"] == 48000  # the stored rate's track is cached apart
    for bad in (0, -8000, 16000.5, "16k"):
        with pytest.raises(ValueError, match="sample_rate"):
            create_dataset("folder", tmp_path, sample_rate=bad)


# --- gaze coordinates must be normalised
def test_uv_to_directions_rejects_pixels_and_clips_rounding():
    with pytest.raises(ValueError, match=r"view.csv: column 'u' holds values from 64 to 64.*\[0, 1\]"):
        uv_to_directions([64.0], [32.0], "view.csv")
    with pytest.raises(ValueError, match="column 'y_norm'"):
        uv_to_directions([0.5], [-0.5], "x", ("x_norm", "y_norm"))
    az, el = uv_to_directions([1.0005, 0.5, np.nan], [0.5, -0.0005, 0.5])
    assert abs(az[0]) == pytest.approx(math.pi) and el[1] == pytest.approx(math.pi / 2) and np.isnan(az[2])


def test_gaze_csv_in_pixels_is_an_error_naming_the_file_and_column(tmp_path):
    csv = _av360_tree(tmp_path, lambda p: write_video_with_audio(p, 8, 8, channels=4, h=H, w=W),
                      rows="0.1,32.0,16.0\n0.6,40.0,16.0\n")
    with pytest.raises(ValueError, match=f"{csv}: column '2dmu' holds values from 32 to 40"):
        create_dataset("360av-hm", tmp_path, cache_dir=False)


def test_binary_gaze_csv_is_an_error_naming_the_file(tmp_path):
    # A corrupt (non-UTF-8) CSV raised a bare UnicodeDecodeError that named no file.
    (tmp_path / "videos").mkdir()
    gaze = tmp_path / "dataset_public" / "ambix" / "clipA"
    gaze.mkdir(parents=True)
    (gaze / "user0.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"user0.csv is not a text table"):
        create_dataset("360av-hm", tmp_path, cache_dir=False)


def test_other_gaze_formats_in_pixels_are_errors_naming_the_file(tmp_path):
    # vr-eyetracking: gaze x, y in columns 6, 7
    (tmp_path / "vr" / "videos").mkdir(parents=True)
    write_video(str(tmp_path / "vr" / "videos" / "007.mp4"), 4, 10, h=H, w=W)
    folder = tmp_path / "vr" / "Gaze_txt_files" / "p001"
    folder.mkdir(parents=True)
    (folder / "007.x_ori_0.txt").write_text("".join(f"frame,{k},forward,0.5,0.5,eye,0.25,480\n"
                                                    for k in range(1, 5)))
    with pytest.raises(ValueError, match=r"007.x_ori_0.txt: column '7 \(gaze y\)' holds values from 480"):
        create_dataset("vr-eyetracking", tmp_path / "vr", cache_dir=False)
    # salient360: fixation longitude / latitude
    root = tmp_path / "s360"
    _salient360_bar(root, "1_Bar.csv", "longitude, latitude, start frame, end frame\n1920, 0.5, 0, 1\n")
    with pytest.raises(ValueError, match="1_Bar.csv: column 'longitude'"):
        create_dataset("salient360", root)
    # eccv18: points in vinfo.pkl
    root = tmp_path / "eccv"
    write_jpg_frames(str(root / "vidA"), 1, "%04d.jpg", h=H, w=W)
    with open(root / "vinfo.pkl", "wb") as f:
        pickle.dump({"vidA": {"0001": [(0.5, 300.0)]}}, f, protocol=2)
    with pytest.raises(ValueError, match=r"vinfo.pkl \[vidA\]: column 'y_norm'"):
        create_dataset("eccv18", root, cache_dir=False)


# --- folder: maps indexed by their frame numbers
def _folder_tree(root, numbers, n_frames=6):
    """A folder-layout tree: video 'mine' of ``n_frames`` frames and a saliency map per file name in
    ``numbers`` whose single bright pixel sits in column 4 * (its number)."""
    (root / "videos").mkdir(parents=True)
    write_video(str(root / "videos" / "mine.mp4"), n_frames, 8, h=H, w=W)
    (root / "saliency" / "mine").mkdir(parents=True)
    for name in numbers:
        sal = np.zeros((H, W), np.uint8)
        sal[8, 4 * int(os.path.splitext(name)[0])] = 255
        cv2.imwrite(str(root / "saliency" / "mine" / name), sal)


def test_folder_gap_in_the_map_numbering_skips_the_frame_instead_of_shifting(tmp_path):
    _folder_tree(tmp_path, ["0000.png", "0002.png", "0003.png"])
    ds = create_dataset("folder", tmp_path, clip_len=2, prev_saliency=True)
    assert [item["frame_index"] for item in ds] == [0, 2, 3]
    assert [peak(item["saliency"]) for item in ds] == [(8, 0), (8, 8), (8, 12)]
    item = ds[1]  # frame 2: frame 1 has no map, so no previous map either
    assert float(item["prev_saliency"].sum()) == 0 and float(ds[2]["prev_saliency"].max()) > 0
    # Without map 0000 the smallest number (2) becomes frame 0, unless first_number says otherwise.
    (tmp_path / "saliency" / "mine" / "0000.png").unlink()
    assert [item["frame_index"] for item in create_dataset("folder", tmp_path, clip_len=1)] == [0, 1]
    numbered = create_dataset("folder", tmp_path, clip_len=1, first_number=0)
    assert [item["frame_index"] for item in numbered] == [2, 3] and peak(numbered[0]["saliency"]) == (8, 8)
    with pytest.raises(ValueError, match="0002.png is numbered below first_number=3"):
        create_dataset("folder", tmp_path, first_number=3)
    with pytest.raises(ValueError, match="first_number"):
        create_dataset("folder", tmp_path, first_number=-1)


def test_folder_two_maps_with_one_number_are_an_error_naming_both(tmp_path):
    _folder_tree(tmp_path, ["0000.png", "0002.png", "2.png"])
    with pytest.raises(ValueError, match=r"two files carry the number 2: .*/0002.png and .*/2.png"):
        create_dataset("folder", tmp_path)


# --- stavis fold lists
@pytest.mark.parametrize("line, what", [("v 6 0", "frame rate"), ("v 6 -25", "frame rate"),
                                        ("v 0 25", "frame count"), ("v 6 1/0", "expected")])
def test_stavis_fold_list_values_are_checked_naming_file_and_line(tmp_path, line, what):
    write_stavis_tree(str(tmp_path), 25, 6, 16000)
    fold = tmp_path / "fold_lists" / "DB_list_train_1_fps.txt"
    fold.write_text(f"\n{line}\n")
    with pytest.raises(ValueError, match=f"DB_list_train_1_fps.txt, line 2: .*{what}"):
        create_dataset("stavis", tmp_path, split="train")


def test_stavis_binary_fold_list_is_an_error_naming_the_file(tmp_path):
    # A corrupt (non-UTF-8) fold list raised a bare UnicodeDecodeError that named no file.
    write_stavis_tree(str(tmp_path), 25, 6, 16000)
    (tmp_path / "fold_lists" / "DB_list_train_1_fps.txt").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="DB_list_train_1_fps.txt is not a text fold list"):
        create_dataset("stavis", tmp_path, split="train")
