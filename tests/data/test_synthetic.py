import dataclasses
import gc
import json
import math
import os

import numpy as np
import pytest
import torch
from data_fixtures import SYNTHETIC, synthetic_root

from sphsal.audio import energy_map, load_audio, read_sa3d
from sphsal.data import VideoReader, create_dataset, default_dataset, make_dataset, make_video
from sphsal.data.synthetic import (
    TIMBRES,
    SyntheticScene,
    make_scene,
    render_audio,
    render_background,
    render_frame,
    simulate_gaze,
)
from sphsal.sphere import directions_to_vectors, equirect_directions, solid_angle_weights


def scenes(root):
    with open(os.path.join(root, "synthetic.json")) as f:
        meta = json.load(f)
    out = {}
    for name, s in meta["scenes"].items():
        out[name] = SyntheticScene(*(np.array(s[k]) for k in ("start", "axis", "speed", "radius", "colour")),
                                   s["timbre"], np.array(s["pitch"]), [tuple(x) for x in s["segments"]],
                                   s["duration"], s["audio_decisive"], s["background_seed"])
    return out


def test_layout_of_the_generated_dataset():
    root = synthetic_root()
    names = [f"synth_{i:03d}" for i in range(SYNTHETIC["n_videos"])]
    assert sorted(os.listdir(os.path.join(root, "videos"))) == [n + ".mp4" for n in names]
    for condition in ("none", "mono", "ambix"):
        folder = os.path.join(root, "dataset_public", condition, names[0])
        assert len(os.listdir(folder)) == SYNTHETIC["n_viewers"]
    with open(os.path.join(folder, "viewer_00.csv")) as f:
        assert f.readline().strip() == "time,2dmu,2dmv"
    path = os.path.join(root, "videos", names[0] + ".mp4")
    with VideoReader(path) as reader:
        assert (len(reader), reader.fps, reader.height, reader.width) == (16, 8, 64, 128)
    audio, rate = load_audio(path)
    assert audio.shape[0] == 4 and rate == 16000 and audio.shape[1] >= 2 * 16000
    assert read_sa3d(path).ambisonic_order == 1


def test_generation_is_deterministic_per_seed(tmp_path):
    params = {"n_videos": 1, "duration": 1.0, "fps": 4, "height": 16, "width": 32, "n_viewers": 2}
    a = make_dataset(tmp_path / "a", seed=5, **params)
    b = make_dataset(tmp_path / "b", seed=5, **params)
    c = make_dataset(tmp_path / "c", seed=6, **params)

    def content(root):
        with open(os.path.join(root, "synthetic.json")) as f:
            scene = json.load(f)["scenes"]
        with open(os.path.join(root, "dataset_public", "ambix", "synth_000", "viewer_01.csv")) as f:
            return scene, f.read()

    assert content(a) == content(b) and content(a) != content(c)


def test_objects_cross_the_seam_and_near_the_poles():
    rng = np.random.default_rng(0)
    for _ in range(5):
        scene = make_scene(rng, duration=2.0, n_objects=4)
        az, el = scene.directions(np.linspace(0, 2.0, 81))
        assert np.any(np.abs(np.diff(az[0])) > math.pi)  # object 0 wraps from +180 to -180 degrees
        assert np.abs(el[1]).max() > math.radians(50)
        segments = scene.segments
        assert segments[0][0] == 0 and segments[-1][1] == pytest.approx(2.0)
        assert all(1 <= len(objs) <= 2 for _, _, objs in segments)
        assert len({objs for _, _, objs in segments}) >= 2  # the sounding object switches


@pytest.mark.parametrize("az_deg, el_deg", [(179.0, 0.0), (30.0, 72.0)])
def test_discs_are_drawn_as_caps_on_the_sphere(az_deg, el_deg):
    h, w = 128, 256
    centre = directions_to_vectors(math.radians(az_deg), math.radians(el_deg)).numpy()
    radius = math.radians(12)
    scene = SyntheticScene(centre[None], np.array([[0.0, 0.0, 1.0]]), np.zeros(1), np.array([radius]),
                           np.array([[1.0, 0.0, 0.0]]), ["harmonic"], np.array([220.0]), [(0.0, 1.0, (0,))],
                           1.0, True, 0)
    az, el = equirect_directions(h, w, dtype=torch.float64)
    pixels = directions_to_vectors(az, el).numpy().astype(np.float32)
    img = render_frame(scene, 0.0, pixels, np.zeros((h, w, 3), np.uint8))
    covered = (img[..., 0] > 0.3 * 255).astype(np.float64)  # the disc's texture keeps red >= 0.6
    area = float((torch.from_numpy(covered) * solid_angle_weights(h, w, dtype=torch.float64)).sum())
    cap = 2 * math.pi * (1 - math.cos(radius))
    assert area == pytest.approx(cap, rel=0.1)
    if az_deg == 179.0:
        assert covered[:, 0].any() and covered[:, -1].any()  # split by the seam


def _frame(scene, t, h=32, w=64):
    az, el = equirect_directions(h, w, dtype=torch.float64)
    pixels = directions_to_vectors(az, el).numpy().astype(np.float32)
    return render_frame(scene, t, pixels, np.zeros((h, w, 3), np.uint8))


def test_video_frame_pictures_the_middle_of_its_interval(tmp_path):
    # Frame k covers [k/fps, (k+1)/fps); its gaze samples ((k + 1/4)/fps, (k + 3/4)/fps) and its audio
    # energy window centre on (k + 1/2)/fps, so the picture must show the scene then, not at k/fps
    # (there the discs sat 2-4 degrees, about one ground-truth sigma, behind the gaze and the sound).
    fps, h, w = 8, 64, 128
    scene = make_video(tmp_path / "v.mp4", duration=2.0, fps=fps, height=h, width=w, seed=5,
                       audio_codec="alac")
    az, el = equirect_directions(h, w, dtype=torch.float64)
    pixels = directions_to_vectors(az, el).numpy().astype(np.float32)
    background = (render_background(pixels, scene.background_seed) * 255.0 + 0.5).astype(np.uint8)
    with VideoReader(tmp_path / "v.mp4") as reader:
        for k in (3, 8, 12):
            decoded = reader.read_frame(k, dtype=torch.uint8).permute(1, 2, 0).numpy().astype(np.float64)
            renders = {t: render_frame(scene, t / fps, pixels, background).astype(np.float64)
                       for t in (k, k + 0.5, k + 1)}
            moved = np.ptp(np.stack(list(renders.values())), axis=0) > 30  # pixels the discs moved over
            error = {t: np.abs(decoded - r)[moved].mean() for t, r in renders.items()}
            assert error[k + 0.5] < 0.5 * min(error[k], error[k + 1])


def test_audio_decisive_hides_which_object_sounds_from_the_picture():
    for seed in range(3):
        scene = make_scene(np.random.default_rng(seed), duration=2.0, n_objects=4, audio_decisive=True)
        # Every object looks the same and the picture does not depend on which one sounds.
        assert np.ptp(scene.colour, axis=0).max() == 0
        for k in range(4):
            other = dataclasses.replace(scene, segments=[(0.0, 2.0, (k,))])
            assert np.array_equal(_frame(other, 0.7), _frame(scene, 0.7))
        # Without it the sounding object is drawn differently (brighter, with a rim).
        visible = dataclasses.replace(scene, audio_decisive=False)
        frames = [_frame(dataclasses.replace(visible, segments=[(0.0, 2.0, (k,))]), 0.7) for k in range(4)]
        assert not np.array_equal(frames[0], frames[1])
    shown = make_scene(np.random.default_rng(0), duration=2.0, n_objects=4, audio_decisive=False)
    assert np.ptp(shown.colour, axis=0).max() > 0


def test_sources_have_distinct_timbres_and_are_encoded_at_their_directions():
    rate, block = 16000, 400  # 25 ms blocks
    for seed in range(3):
        scene = make_scene(np.random.default_rng(seed), duration=3.0, n_objects=4)
        assert sorted(scene.timbre) == sorted(TIMBRES) and len(set(scene.pitch.tolist())) == 4
        audio = render_audio(scene, rate, np.random.default_rng(seed)).astype(np.float64)
        w, y, z, x = audio  # ambiX: ACN order W, Y, Z, X (SN3D)
        checked = 0
        for t0, t1, objs in scene.segments:
            if len(objs) != 1:
                continue
            # Blocks well inside the segment (away from the 10 ms fades); intensity = W times (X, Y, Z).
            for s0 in range(int((t0 + 0.03) * rate), int((t1 - 0.03) * rate) - block, block):
                sl = slice(s0, s0 + block)
                intensity = np.array([np.sum(w[sl] * x[sl]), np.sum(w[sl] * y[sl]), np.sum(w[sl] * z[sl])])
                truth = scene.vectors([(s0 + block / 2) / rate])[objs[0], 0]
                cos = intensity @ truth / np.linalg.norm(intensity)
                assert cos > math.cos(math.radians(3)), (seed, t0, objs)
                checked += 1
        assert checked > 20


def test_viewers_prefer_sounding_objects_and_the_equator():
    scene = make_scene(np.random.default_rng(1), duration=4.0, n_objects=4)
    gaze = np.concatenate(simulate_gaze(scene, np.random.default_rng(2), 20, 16.0, attention=0.75))
    targets = scene.vectors(gaze[:, 0])  # (K, N, 3)
    aim = directions_to_vectors(gaze[:, 1], gaze[:, 2]).numpy()
    closest = np.argmax(np.einsum("knc,nc->kn", targets, aim), axis=0)
    sounding = scene.sounding(gaze[:, 0])[closest, np.arange(len(closest))]
    assert sounding.mean() > 0.5
    assert np.median(np.abs(gaze[:, 2])) < math.radians(45)


def test_roundtrip_through_the_360avhm_adapter():
    root = synthetic_root()
    ds = create_dataset("360av-hm", root, clip_len=4, size=(32, 64), cache_dir=False)
    assert len(ds) == SYNTHETIC["n_videos"] * 16
    item = ds[20]
    assert item["frames"].shape == (3, 4, 32, 64) and item["audio"].shape == (4, 8000)
    assert item["saliency"].shape == (32, 64) and float(item["saliency"].sum()) == pytest.approx(1.0)
    assert item["video"] == "synth_001" and item["frame_index"] == 4
    # Ground truth mass sits closer to the sounding object with ambisonic audio than without audio.
    scene = scenes(root)["synth_001"]
    az, el = equirect_directions(32, 64, dtype=torch.float64)
    pixels = directions_to_vectors(az, el).numpy()

    def mass_near_sounding(condition):
        data = create_dataset("360av-hm", root, condition=condition, clip_len=1, size=(32, 64),
                              cache_dir=False)
        total = []
        for it in (data[k] for k in range(16, 32)):
            t = (it["frame_index"] + 0.5) / 8
            loud = np.flatnonzero(scene.sounding([t])[:, 0])
            near = np.zeros((32, 64), bool)
            for k in loud:
                near |= pixels @ scene.vectors([t])[k, 0] > math.cos(math.radians(20))
            total.append(float(it["saliency"][torch.from_numpy(near)].sum()))
        return np.mean(total)

    assert mass_near_sounding("ambix") > mass_near_sounding("none") + 0.1


def test_audio_energy_map_correlates_with_ground_truth_saliency():
    ds = create_dataset("360av-hm", synthetic_root(), clip_len=4, frame_step=2, cache_dir=False)
    ccs = []
    for item in ds:
        h, w = item["saliency"].shape
        aem = energy_map(item["audio"], item["sample_rate"], 8, h, w, num_frames=4)[-1]
        ccs.append(float(torch.corrcoef(torch.stack((aem.flatten(), item["saliency"].flatten())))[0, 1]))
    assert min(ccs) > 0 and np.mean(ccs) > 0.1


def test_items_batch_and_the_dataset_survives_pickling():
    import pickle

    ds = create_dataset("360av-hm", synthetic_root(), clip_len=3, frame_step=5, cache_dir=False)
    clone = pickle.loads(pickle.dumps(ds))
    torch.testing.assert_close(clone[1]["frames"], ds[1]["frames"])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["frames"].shape == (4, 3, 3, 64, 128) and batch["audio"].shape == (4, 4, 6000)
    assert batch["frame_index"].tolist() == [0, 5, 10, 15]


def test_default_dataset_is_generated_once(tmp_path):
    params = {"n_videos": 1, "duration": 0.5, "fps": 4, "height": 16, "width": 32, "n_viewers": 2}
    root = default_dataset(tmp_path / "default", **params)
    stamp = os.path.getmtime(os.path.join(root, "synthetic.json"))
    assert default_dataset(tmp_path / "default", **params) == root
    assert os.path.getmtime(os.path.join(root, "synthetic.json")) == stamp
    assert len(create_dataset("360av-hm", root, clip_len=1, cache_dir=False)) == 2


def test_frames_without_gaze_are_an_error_naming_the_file(tmp_path):
    root = make_dataset(tmp_path / "d", n_videos=1, duration=1.0, fps=4, height=16, width=32, n_viewers=1)
    csv = tmp_path / "d" / "dataset_public" / "ambix" / "synth_000" / "viewer_00.csv"
    csv.write_text("time,2dmu,2dmv\n0.1,0.5,0.5\n")
    ds = create_dataset("360av-hm", root, clip_len=1, cache_dir=False)
    ds[0]
    with pytest.raises(ValueError, match="viewer_00.csv.*no gaze sample|no gaze sample.*synth_000"):
        ds[3]


def test_dataloader_workers_after_reads_in_the_parent():
    # Forked workers inherit the parent's open decoder; they must reopen the file, not hang on it.
    ds = create_dataset("360av-hm", synthetic_root(), clip_len=2, frame_step=4, cache_dir=False)
    expected = ds[3]["frames"]
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, timeout=60,
                                         multiprocessing_context="fork")
    frames = torch.cat([batch["frames"] for batch in loader])
    assert frames.shape[0] == len(ds)
    torch.testing.assert_close(frames[3], expected)


def _collect_garbage(_worker_id):
    gc.collect()


def test_workers_never_free_decoders_inherited_from_the_parent():
    # A dropped reader leaves its threaded decoder in PyAV's own reference cycles until the next garbage
    # collection. A worker must never be the one to free it: its threads do not exist in the worker and
    # freeing it there blocks forever.
    ds = create_dataset("360av-hm", synthetic_root(), clip_len=2, frame_step=4, cache_dir=False)
    gc.disable()  # keep the garbage until the fork
    try:
        reader = VideoReader(os.path.join(synthetic_root(), "videos", ds.videos[0] + ".mp4"))
        reader.read_frame(5)  # the decoder's threads are running
        del reader
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, timeout=60,
                                             multiprocessing_context="fork", worker_init_fn=_collect_garbage)
        assert sum(batch["frames"].shape[0] for batch in loader) == len(ds)
    finally:
        gc.enable()


TINY = {"n_videos": 1, "duration": 0.5, "fps": 4, "height": 16, "width": 32, "n_viewers": 1}


def test_make_dataset_refuses_a_non_empty_root_and_overwrite_replaces_it(tmp_path):
    root = make_dataset(tmp_path / "d", seed=1, **{**TINY, "n_videos": 2})
    before = {p: p.read_bytes() for p in (tmp_path / "d").rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="dataset root .*d is not empty.*overwrite=True"):
        make_dataset(root, seed=2, **TINY)
    assert {p: p.read_bytes() for p in (tmp_path / "d").rglob("*") if p.is_file()} == before
    make_dataset(root, seed=2, overwrite=True, **TINY)  # one video now: nothing of the old one is left
    assert os.listdir(tmp_path / "d" / "videos") == ["synth_000.mp4"]
    assert os.listdir(tmp_path / "d" / "dataset_public" / "ambix") == ["synth_000"]
    assert json.loads((tmp_path / "d" / "synthetic.json").read_text())["seed"] == 2
    assert sorted(os.listdir(tmp_path)) == ["d"]  # no temporary folder left behind
    # overwrite never deletes a folder that is not a synthetic dataset; an empty folder is fine
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="mine holds no synthetic.json"):
        make_dataset(tmp_path / "mine", overwrite=True, **TINY)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    (tmp_path / "empty").mkdir()
    assert len(create_dataset("360av-hm", make_dataset(tmp_path / "empty", **TINY), clip_len=1,
                              cache_dir=False)) == 2
    # nor a synthetic dataset that holds files of the user's own
    (tmp_path / "d" / "notes.txt").write_text("mine")
    (tmp_path / "d" / "videos" / "mine.mp4").write_bytes(b"video")
    with pytest.raises(ValueError, match=r"holds files that make_dataset did not write \(notes.txt, "
                                         r"videos/mine.mp4\)"):
        make_dataset(root, seed=3, overwrite=True, **TINY)
    assert (tmp_path / "d" / "notes.txt").read_text() == "mine"
    assert json.loads((tmp_path / "d" / "synthetic.json").read_text())["seed"] == 2


def test_a_failed_make_dataset_leaves_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match="n_objects"):  # fails while writing the first video
        make_dataset(tmp_path / "d", n_objects=1, **TINY)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("options, argument", [
    ({"fps": 0}, "fps"), ({"fps": -8}, "fps"), ({"fps": float("nan")}, "fps"), ({"fps": float("inf")}, "fps"),
    ({"duration": 0.05, "fps": 8}, "duration"), ({"duration": float("nan")}, "duration"),
    ({"sample_rate": 0}, "sample_rate"), ({"sample_rate": 100}, "sample_rate"),
    ({"sample_rate": 7_000_000, "audio_codec": "alac"}, "sample_rate"), ({"height": 16.0}, "height"),
    ({"width": 31}, "width"), ({"audio_codec": "mp3"}, "audio_codec"),
])
def test_bad_video_options_are_named_before_anything_is_written(tmp_path, options, argument):
    params = {"duration": 0.5, "fps": 4, "height": 16, "width": 32, **options}
    with pytest.raises(ValueError, match=argument):
        make_video(tmp_path / "v.mp4", **params)
    with pytest.raises(ValueError, match=argument):
        make_dataset(tmp_path / "d", n_videos=1, n_viewers=1, **params)
    assert os.listdir(tmp_path) == []


def test_short_videos_and_other_sample_rates_are_usable(tmp_path):
    scene = make_video(tmp_path / "v.mp4", duration=0.1, fps=8, height=16, width=32, sample_rate=8000,
                       audio_codec="alac")  # round(0.8) = 1 frame
    with VideoReader(tmp_path / "v.mp4") as reader:
        assert len(reader) == 1
    audio, rate = load_audio(tmp_path / "v.mp4")
    assert rate == 8000 and audio.shape == (4, 800) and scene.duration == pytest.approx(0.1)


def test_default_dataset_is_regenerated_when_the_generator_changes(tmp_path, monkeypatch):
    # The cached default dataset is keyed by the generator version too: a fixed generator (frames at the
    # middle of their interval) must not keep serving a copy written by the old one.
    from sphsal.data import synthetic

    monkeypatch.setenv("SPHSAL_CACHE", str(tmp_path))
    old = default_dataset(**TINY)
    assert default_dataset(**TINY) == old
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    new = default_dataset(**TINY)
    assert new != old and os.path.isfile(os.path.join(new, "synthetic.json"))
