import datetime
import os
import pathlib
import struct
import warnings
import zipfile

import numpy as np
import pytest
import torch
from tiny_models import TINY_AVS360, TINY_UNET

from sphsal.models import create_model, load_checkpoint, load_original_checkpoint, save_checkpoint
from sphsal.models.checkpoints import read_checkpoint

# The released AVS360 code names its modules like this (a DAVE-derived ``DAVE`` module wrapped in
# DataParallel); the unused ``upscale*.bn`` and ``combinedEmbedding_equi_cp`` are in its state dict too.
PUBLISHED_PREFIXES = {"visual_erp.": "video_branch.", "visual_cube.": "video_branch_cubic.",
                      "audio.": "audio_branch.", "fusion.": "combinedEmbedding.",
                      "up1.conv.": "upscale1.combine.", "up2.conv.": "upscale2.combine.",
                      "head.": "saliency."}


def _published_layout(model) -> dict:
    state = {}
    for key, value in model.state_dict().items():
        src = next(s for s in PUBLISHED_PREFIXES if key.startswith(s))
        if not key.endswith("num_batches_tracked"):
            state["module." + PUBLISHED_PREFIXES[src] + key[len(src):]] = torch.randn_like(value.float())
    c = model.fusion.out_channels
    state["module.audio_branch.fc_new.weight"] = torch.randn(12, c)
    state["module.upscale1.bn.weight"] = torch.randn(c)
    state["module.combinedEmbedding_equi_cp.weight"] = torch.randn(c, 2 * c, 1, 1)
    return {"state_dict": state, "epoch": 30}


def test_save_load_round_trip_with_weights_only(tmp_path):
    model = create_model("planar_unet", **TINY_UNET).eval()
    opt = torch.optim.Adam(model.parameters())
    path = tmp_path / "run" / "unet.pt"
    save_checkpoint(path, model, optimizer=opt, step=7, extra={"note": "test"})
    raw = torch.load(path, weights_only=True)
    assert raw["model_name"] == "planar_unet" and raw["step"] == 7 and raw["extra"] == {"note": "test"}
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    rebuilt = load_checkpoint(path).eval()          # the model is rebuilt from the stored name and kwargs
    inputs = model.example_inputs()
    with torch.no_grad():
        assert torch.equal(model(**inputs), rebuilt(**inputs))
    other = create_model("planar_unet", **TINY_UNET)
    load_checkpoint(path, other, optimizer=torch.optim.Adam(other.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_engine_training_checkpoints_load_too(tmp_path):
    model = create_model("planar_unet", **TINY_UNET)
    path = tmp_path / "last.pt"
    torch.save({"model": model.state_dict(), "config": {"model": "planar_unet", "model_kwargs": TINY_UNET},
                "progress": {"step": 3}}, path)
    rebuilt = load_checkpoint(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values()))


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        read_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_checkpoint(junk)
    path = tmp_path / "unet.pt"
    save_checkpoint(path, create_model("planar_unet", **TINY_UNET))
    with pytest.raises(ValueError, match="does not fit"):
        load_checkpoint(path, create_model("planar_unet", width_mult=1 / 8, frame_size=(16, 32)))


def _damaged_pickle(data: bytes, path) -> bytes:
    """``data`` (a zip checkpoint saved at ``path``) with the first byte of its pickle overwritten."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data.pkl"))
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    return data[:start] + b"g" + data[start + 1:]


@pytest.mark.parametrize("damage, reason", [
    (lambda data, path: b"", "it is empty"),
    (lambda data, path: b"garbage\n", "it is not a PyTorch checkpoint"),
    (lambda data, path: data[:len(data) // 2], "it is truncated"),
    (lambda data, path: data[:100], "it is truncated"),
    (_damaged_pickle, "it is corrupt or truncated"),
])
def test_unreadable_checkpoints_say_why_in_one_line(tmp_path, damage, reason):
    path = tmp_path / "last.pt"
    save_checkpoint(path, create_model("planar_unet", **TINY_UNET))
    path.write_bytes(damage(path.read_bytes(), path))
    for load in (read_checkpoint, load_checkpoint):
        with pytest.raises(ValueError) as info:
            load(path)
        message = str(info.value)
        assert message.startswith(f"cannot read checkpoint {path}: {reason}")
        # One line, and none of torch's advice to load the file with weights_only=False.
        assert "\n" not in message and "weights_only=False" not in message and "issue" not in message
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_files_a_safe_load_refuses_are_named_without_the_unsafe_advice(tmp_path):
    path = tmp_path / "dated.pt"
    torch.save({"state_dict": {}, "saved": datetime.date(2024, 1, 2)}, path)
    with pytest.raises(ValueError) as info:
        read_checkpoint(path)
    assert str(info.value) == (f"cannot read checkpoint {path}: it holds a datetime.date object, which "
                               "loading with weights_only=True refuses (a checkpoint may hold only tensors, "
                               "numbers, strings and containers of them)")
    scripted = tmp_path / "scripted.pt"
    with pytest.raises(ValueError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation, torch.load's note on such an archive
        torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 1), torch.zeros(1, 2)), scripted)
        read_checkpoint(scripted)
    message = str(info.value)
    assert message.startswith(f"cannot read checkpoint {scripted}: loading with weights_only=True refuses it")
    assert "TorchScript" in message and "\n" not in message and "weights_only=False" not in message


def test_published_avs360_checkpoint_maps_onto_the_model(tmp_path):
    model = create_model("avs360", view="both_planar", **TINY_AVS360)
    published = _published_layout(model)
    path = tmp_path / "avs360_published.pt"
    torch.save(published, path)
    ignored = load_original_checkpoint(model, path)
    assert set(ignored) == {"audio_branch.fc_new.weight", "upscale1.bn.weight",
                            "combinedEmbedding_equi_cp.weight"}
    state = model.state_dict()
    assert torch.equal(state["visual_cube.layer2.0.conv1.weight"],
                       published["state_dict"]["module.video_branch_cubic.layer2.0.conv1.weight"])
    assert torch.equal(state["up1.conv.bias"], published["state_dict"]["module.upscale1.combine.bias"])


def test_visual_only_model_takes_the_visual_half_of_the_fusion_weights():
    full = create_model("avs360", view="erp_planar", **TINY_AVS360)
    published = _published_layout(full)["state_dict"]
    visual = create_model("avs360_visual", view="erp_planar", **TINY_AVS360)
    load_original_checkpoint(visual, published)
    c = visual.fusion.out_channels
    assert torch.equal(visual.fusion.weight, published["module.combinedEmbedding.weight"][:, :c])


def test_mismatched_published_checkpoint_is_refused():
    model = create_model("avs360", view="both_planar", **TINY_AVS360)
    published = _published_layout(model)["state_dict"]
    del published["module.saliency.weight"]
    with pytest.raises(ValueError, match="head.weight"):
        load_original_checkpoint(model, published)
    with pytest.raises(ValueError, match="no published checkpoint layout"):
        load_original_checkpoint(create_model("planar_unet", **TINY_UNET), {})


def test_extra_values_are_made_loadable_or_refused_before_the_file_is_touched(tmp_path):
    model = create_model("planar_unet", **TINY_UNET)
    path = tmp_path / "unet.pt"
    save_checkpoint(path, model, step=np.int64(5),
                    extra={"best_cc": np.float64(0.5), "epoch": np.int32(3), "ok": np.bool_(True),
                           "data": pathlib.Path("runs/x"), "nested": [{"lr": np.float32(0.25)}, (1, 2)]})
    raw = read_checkpoint(path)
    assert raw["step"] == 5 and type(raw["step"]) is int
    assert raw["extra"] == {"best_cc": 0.5, "epoch": 3, "ok": True, "data": "runs/x",
                            "nested": [{"lr": 0.25}, (1, 2)]}
    assert type(raw["extra"]["best_cc"]) is float and type(raw["extra"]["epoch"]) is int
    good = path.read_bytes()
    for extra, named in [({"scores": np.zeros(2)}, r"extra\['scores'\] is a numpy.ndarray"),
                         ({"deep": {"obj": object()}}, r"extra\['deep'\]\['obj'\] is a builtins.object"),
                         ({"keys": {1, frozenset()}}, r"an item of extra\['keys'\] is a builtins.frozenset")]:
        with pytest.raises(ValueError, match=named):
            save_checkpoint(path, model, extra=extra)
        assert path.read_bytes() == good  # the previous checkpoint is intact
    assert sorted(os.listdir(tmp_path)) == ["unet.pt"]
    load_checkpoint(path)


def test_checkpoint_is_fsynced_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.fstat(fd).st_ino)) or fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", os.stat(a).st_ino))
                        or replace(a, b))
    path = tmp_path / "unet.pt"
    save_checkpoint(path, create_model("planar_unet", **TINY_UNET))
    inode = os.stat(path).st_ino
    assert events[:2] == [("fsync", inode), ("replace", inode)]
    assert ("fsync", os.stat(tmp_path).st_ino) in events[2:]  # the folder, after the rename


def _rewrite(path, **changes):
    state = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    torch.save(state, path)


def test_malformed_checkpoints_are_named_and_change_nothing(tmp_path):
    model = create_model("planar_unet", **TINY_UNET)
    path = tmp_path / "unet.pt"
    save_checkpoint(path, model, optimizer=torch.optim.Adam(model.parameters()))
    good = path.read_bytes()
    cases = [({"model_kwargs": {"bogus": 1}}, "cannot rebuild its model.*bogus"),
             ({"model_name": "no_such_model"}, "cannot rebuild its model.*unknown model"),
             ({"state_dict": None}, "has no 'state_dict' entry"),
             ({"state_dict": [1, 2]}, "not a dict of tensors"),
             ({"model_kwargs": [1]}, "keyword arguments are a list")]
    for changes, message in cases:
        path.write_bytes(good)
        _rewrite(path, **changes)
        with pytest.raises(ValueError, match=f"{path}.*{message}"):
            load_checkpoint(path)
    path.write_bytes(good)
    target = create_model("planar_unet", **TINY_UNET)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    params = list(target.parameters())
    wrong_optimizer = torch.optim.Adam(params[:2])
    with pytest.raises(ValueError, match=f"{path}.*optimizer state does not fit"):
        load_checkpoint(path, target, optimizer=wrong_optimizer)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # weights untouched
    wider = create_model("planar_unet", width_mult=1 / 8, frame_size=(16, 32))
    wide_before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(ValueError, match=f"{path} does not fit.*shape mismatches.*width_mult"):
        load_checkpoint(path, wider)
    assert all(torch.equal(wide_before[k], v) for k, v in wider.state_dict().items())  # no partial load


def test_stored_model_name_and_options_are_checked(tmp_path):
    path = tmp_path / "sph.pt"
    save_checkpoint(path, create_model("spherical_unet", **TINY_UNET))
    with pytest.raises(ValueError, match=f"{path} holds a 'spherical_unet' model, not 'planar_unet'"):
        load_checkpoint(path, create_model("planar_unet", **TINY_UNET))
    other_size = {**TINY_UNET, "frame_size": (32, 64)}  # same weights, other input size
    with pytest.warns(UserWarning, match=rf"{path}.*frame_size: \(16, 32\) \(checkpoint\) vs \(32, 64\)"):
        load_checkpoint(path, create_model("spherical_unet", **other_size))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_checkpoint(path, create_model("spherical_unet", width_mult=1 / 16, frame_size=[16, 32]))
        plain = torch.nn.Module()  # a model without a registry name is not compared
        plain.inner = create_model("spherical_unet", **TINY_UNET)
        load_checkpoint(path, plain.inner)


def test_caches_and_staged_files_skip_the_fsync(tmp_path, monkeypatch):
    from sphsal.atomic import atomic_path

    calls = []
    monkeypatch.setattr(os, "fsync", calls.append)
    with atomic_path(tmp_path / "cache.npy", durable=False) as tmp:
        np.save(tmp, np.zeros(3))
    assert calls == [] and np.load(tmp_path / "cache.npy").shape == (3,)


def test_unet_checkpoint_of_an_older_sphsal_keeps_the_previous_frames_map(tmp_path):
    """Until prev_interval existed the U-Net read the map of the frame before; a checkpoint written then
    (no prev_interval stored) rebuilds with prev_interval=1, and loading it into a model of the new
    default (5) names the difference."""
    model = create_model("planar_unet", **TINY_UNET)
    path = tmp_path / "old.pt"
    save_checkpoint(path, model)
    raw = torch.load(path, weights_only=True)
    assert raw["model_kwargs"]["prev_interval"] == 5  # written down although not given
    del raw["model_kwargs"]["prev_interval"]
    torch.save(raw, path)
    assert load_checkpoint(path).input_spec.prev_saliency_interval == 1
    with pytest.warns(UserWarning, match=r"prev_interval: 1 \(checkpoint\) vs 5"):
        load_checkpoint(path, create_model("planar_unet", **TINY_UNET))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_checkpoint(path, create_model("planar_unet", **TINY_UNET, prev_interval=1))
