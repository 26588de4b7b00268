import pytest
import torch
from tiny_models import TINY_STAVIS, TINY_STAVIS_VISUAL, ambisonic_batch, conv_types, roll_mismatch

from sphsal.models import create_model, load_original_checkpoint
from sphsal.models.backbones.soundnet import _STAVIS_INDEX
from sphsal.models.stavis import STAViS, centre_clip


def test_published_recipe_and_middle_target_frame():
    model = STAViS(width_mult=1 / 32)  # sizes only
    spec = model.input_spec
    assert (spec.clip_len, spec.frame_size, spec.clip_mode) == (16, (112, 112), "center")
    assert spec.audio_channels == 1
    assert model.default_loss == "0.1*bce_raw+2*cc+nss"
    assert model.default_optimizer["name"] == "sgd" and model.default_optimizer["lr"] == 1e-2
    assert create_model("stavis_visual", width_mult=1 / 32).input_spec.audio_channels == 0
    frames = torch.arange(20.0).view(1, 1, 20, 1, 1)  # frame k holds the value k; the target is frame 10
    assert centre_clip(frames, 16).flatten().tolist() == list(range(2, 18))
    assert centre_clip(frames[:, :, :5], 4).flatten().tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("name", ["vinet", "avinet", "stavis", "stavis_visual", "mvva"])
def test_every_baseline_and_its_spherical_variant_build_at_the_default_sizes(name):
    planar, sph = create_model(name, width_mult=1 / 32), create_model(name + "_sph", width_mult=1 / 32)
    assert planar.input_spec.clip_len == sph.input_spec.clip_len
    if name.startswith("stavis"):  # the published 112 x 112 grid is odd-width at stride 16
        assert (planar.input_spec.frame_size, sph.input_spec.frame_size) == ((112, 112), (112, 224))
    else:
        assert planar.input_spec.frame_size == sph.input_spec.frame_size


@pytest.mark.parametrize("name", ["stavis_sph", "stavis_visual_sph"])
def test_spherical_stavis_is_seam_consistent(name):
    torch.manual_seed(0)
    kwargs = TINY_STAVIS if name == "stavis_sph" else TINY_STAVIS_VISUAL
    sph, planar = create_model(name, **kwargs), create_model(name.replace("_sph", ""), **kwargs)
    planar.load_state_dict(sph.state_dict())  # same names and shapes
    planar_types, sph_types = conv_types(planar), conv_types(sph)
    changed = {(planar_types[n], t) for n, t in sph_types.items() if t != planar_types[n]}
    assert changed <= {("Conv3d", "SphericalConv3d"), ("Conv2d", "SphericalConv2d"),
                       ("MaxPool3d", "EquirectMaxPool3d")}
    inputs = sph.example_inputs(2)
    assert sph(**inputs).shape == (2, 1, 32, 64)
    assert roll_mismatch(sph, inputs, 16) < 1e-4  # stride 16: one column of layer3's grid
    # (float32 rounding: 1.3e-5 of the output's std for ViNet on an AMD EPYC, whose oneDNN kernels order
    # sums differently from column to column; the planar model's mismatch is of order 1)
    assert roll_mismatch(planar, inputs, 16) > 1e-3


def test_prepare_inputs_and_bad_inputs():
    model = create_model("stavis", **TINY_STAVIS)
    inputs = model.prepare_inputs(ambisonic_batch(0.0, batch_size=2, frames=5, channels=1, size=(48, 96)))
    assert inputs["frames"].shape == (2, 3, 4, 32, 64) and inputs["audio"].shape == (2, 4574)
    with pytest.raises(ValueError, match=r"stavis: missing input 'audio', expected \(B, 4574\).*mono"):
        model(frames=inputs["frames"])
    with pytest.raises(ValueError, match=r"stavis: frames must be \(B, 3, 4, 32, 64\)"):
        model(frames=inputs["frames"][:, :, :3], audio=inputs["audio"])
    assert set(create_model("stavis_visual", **TINY_STAVIS_VISUAL).prepare_inputs(
        {"frames": torch.rand(1, 3, 4, 32, 64)})) == {"frames"}


def published_stavis_state(model: STAViS) -> dict:
    """The model's weights laid out as the released STAViS ``ResNet`` checkpoint (fixed bilinear kernels,
    the last head's score conv and both fusion convs included)."""
    width = model.heads[0].side_prep.out_channels
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("visual."):
            state[key[len("visual."):]] = value
        elif key.startswith("heads."):
            _, i, part, name = key.split(".")
            state[f"score_dsn.{i}.{'score_dsn' if part == 'score' else part}.{name}"] = value
        elif key.startswith("localisation."):
            _, part, name = key.split(".")
            state[f"fusion3.{'w_a_rgb' if part == 'bilinear' else part}.{name}"] = value
        elif key.startswith("audio."):
            _, kind, i, name = key.split(".")
            index = _STAVIS_INDEX[int(i)] + (kind == "bn")
            conv_weight = kind == "conv" and name == "weight"
            state[f"soundnet8.{index}.{name}"] = value[:, :, None] if conv_weight else value
        else:
            state[key.replace("fuse.", "fuseav." if model.use_audio else "fuse.")] = value
    for i, stride in enumerate((2, 4, 8, 16)):
        state[f"score_dsn.{i}.upscale.weight"] = torch.zeros(width, width, 2 * stride, 2 * stride)
        state[f"score_dsn.{i}.upscale_.weight"] = torch.zeros(1, 1, 2 * stride, 2 * stride)
    state["score_dsn.3.score_dsn.weight"] = torch.zeros(1, width, 1, 1)
    return state


@pytest.mark.parametrize("name", ["stavis", "stavis_visual"])
def test_load_original_checkpoint_maps_the_published_layout(name):
    kwargs = TINY_STAVIS if name == "stavis" else TINY_STAVIS_VISUAL
    torch.manual_seed(3)
    source, target = create_model(name, **kwargs), create_model(name, **kwargs)
    ignored = load_original_checkpoint(target, published_stavis_state(source))
    assert "score_dsn.3.score_dsn.weight" in ignored and "score_dsn.0.upscale.weight" in ignored
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_training_data_and_prediction_centre_the_clip_on_the_target(tmp_path):
    import numpy as np

    from sphsal.data import make_dataset
    from sphsal.engine.predict import predict_videos
    from sphsal.engine.train import dataset_for_model
    from sphsal.viz import write_video

    root = make_dataset(tmp_path / "data", n_videos=1, duration=1.0, fps=8, height=32, width=64, seed=3)
    model = create_model("stavis", **TINY_STAVIS)
    dataset = dataset_for_model(model, "360av-hm", root)
    assert (dataset.clip_len, dataset.clip_mode) == (4, "center")
    item = dataset[3]
    assert torch.equal(item["frames"][:, 2], dataset[2]["frames"][:, 3])  # frame 3 sits at index 4 // 2
    frames = [(np.random.default_rng(k).random((32, 64, 3)) * 255).astype(np.uint8) for k in range(4)]
    write_video(tmp_path / "v.mp4", frames, 8, audio=np.zeros((1, 8000), np.float32), sample_rate=16000)
    visual = create_model("stavis_visual", **TINY_STAVIS_VISUAL)
    [record] = predict_videos(visual, [tmp_path / "v.mp4"], tmp_path / "out", progress=False,
                              make_overlay=False)
    assert record["frames"] == 4 and len(list((tmp_path / "out" / "v" / "maps").iterdir())) == 4


def test_predicting_a_silent_video_with_an_audio_model_names_the_file(tmp_path):
    import numpy as np

    from sphsal.engine.predict import predict_videos
    from sphsal.viz import write_video

    frames = [np.zeros((32, 64, 3), np.uint8)] * 4
    write_video(tmp_path / "silent.mp4", frames, 8)
    with pytest.raises(ValueError, match="silent.mp4"):
        predict_videos(create_model("stavis", **TINY_STAVIS), [tmp_path / "silent.mp4"], tmp_path / "out",
                       progress=False, make_overlay=False)
