import pytest
import torch
from tiny_models import TINY_AVINET, ambisonic_batch

from sphsal.models import create_model, load_original_checkpoint
from sphsal.models.avinet import AViNet
from sphsal.models.vinet import DECODER_NAMES


def test_published_sizes():
    model = AViNet(width_mult=1 / 32)  # sizes only (full-size counts: benchmarks/bench_models.py)
    assert model.bilinear.in1_features == 42 and model.bilinear.in2_features == 3
    assert model.bilinear.out_features == 4 * 7 * 12 and model.audio_samples == 70560
    assert model.input_spec.audio_channels == 1 and model.default_loss == "kld"


@pytest.mark.parametrize("fusion", ["bilinear", "transformer"])
def test_tiny_forward_and_spherical_visual_branch(fusion):
    from sphsal.nn import SphericalConv3d

    model = create_model("avinet_sph", fusion=fusion, **TINY_AVINET)
    out = model(**model.example_inputs(2))
    assert out.shape == (2, 1, 64, 128) and ((out > 0) & (out < 1)).all()
    convs = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convs and all(isinstance(m, SphericalConv3d) for m in convs)
    assert not any(isinstance(m, SphericalConv3d) for m in model.audio.modules())


def test_prepare_inputs_downmixes_stereo_and_forward_refuses_multichannel_audio():
    model = create_model("avinet", **{**TINY_AVINET, "audio_samples": 13230})
    inputs = model.prepare_inputs(ambisonic_batch(30.0, batch_size=2, frames=3, channels=2, size=(48, 96)))
    assert inputs["audio"].shape == (2, 13230) and inputs["frames"].shape == (2, 3, 8, 64, 128)
    # the clip's 0.3 s (6,615 samples at 22,050 Hz) is Hann-windowed and centred in the 0.6 s buffer
    audio = inputs["audio"]
    assert audio[:, :3300].abs().max() == 0 and audio[:, -3300:].abs().max() == 0
    assert (audio[:, 6000:7200].abs().amax(dim=1) > 0.1).all()
    with pytest.raises(ValueError, match=r"avinet: audio must be \(B, 13230\).*mono waveform"):
        model(frames=inputs["frames"], audio=torch.randn(2, 2, 13230))
    with pytest.raises(ValueError, match="needs batch keys"):
        model.prepare_inputs({"frames": torch.rand(1, 3, 8, 64, 128)})


def test_load_original_checkpoint_maps_the_published_layout():
    torch.manual_seed(2)
    source = AViNet(width_mult=1 / 16, frame_size=(32, 64), audio_samples=4574)
    back = {dst: src for src, dst in DECODER_NAMES.items()}
    published = {"audionet.conv8_objs.weight": torch.zeros(3, 64, 8, 1)}
    for key, value in source.state_dict().items():
        if key.startswith("encoder."):
            published["visual_model.backbone." + key[len("encoder."):]] = value
        elif key.startswith("decoder."):
            rest = key[len("decoder."):]
            prefix = next(p for p in back if rest.startswith(p))
            fold = getattr(source.decoder, prefix.split(".")[0]).fold if rest.endswith("conv.weight") else 1
            value = value.reshape(value.shape[0], -1, fold, *value.shape[3:]) if fold > 1 else value
            published["visual_model.decoder." + back[prefix] + rest[len(prefix):]] = value
        elif key.startswith("audio."):
            _, kind, i, name = key.split(".")
            layer = f"{'conv' if kind == 'conv' else 'batchnorm'}{int(i) + 1}"
            conv_weight = name == "weight" and kind == "conv"
            published[f"audionet.{layer}.{name}"] = value[..., None] if conv_weight else value
        else:
            published[key] = value
    target = AViNet(width_mult=1 / 16, frame_size=(32, 64), audio_samples=4574)
    assert load_original_checkpoint(target, published) == ["audionet.conv8_objs.weight"]
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
