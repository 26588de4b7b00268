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
