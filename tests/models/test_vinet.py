import pytest
import torch
from tiny_models import TINY_VINET, ambisonic_batch, conv_types, roll_mismatch

from sphsal.models import create_model, load_original_checkpoint
from sphsal.models.vinet import DECODER_NAMES, ViNet


def test_published_size_and_parameter_count():
    model = ViNet()  # no forward at full size: counting parameters is cheap
    assert abs(sum(p.numel() for p in model.parameters()) / 31.1e6 - 1) < 0.03
    spec = model.input_spec
    assert (spec.clip_len, spec.frame_size, spec.output_size) == (32, (224, 384), (224, 384))
    assert spec.clip_mode == "end"
    assert model.default_loss == "kld" and model.default_optimizer == {"name": "adam", "lr": 1e-4,
                                                                        "weight_decay": 0.0}
    assert [getattr(model.decoder, f"conv{i}").fold for i in range(1, 7)] == [1, 3, 5, 5, 2, 2]


def test_tiny_shapes_and_the_spherical_variant_differs_only_in_layer_types():
    planar, sph = create_model("vinet", **TINY_VINET), create_model("vinet_sph", **TINY_VINET)
    out = planar(**planar.example_inputs(2))
    assert out.shape == (2, 1, 64, 128) and ((out > 0) & (out < 1)).all()
    shapes = {k: v.shape for k, v in planar.state_dict().items()}
    assert shapes == {k: v.shape for k, v in sph.state_dict().items()}
    planar_types, sph_types = conv_types(planar), conv_types(sph)
    assert planar_types.keys() == sph_types.keys()
    assert {sph_types[n] for n, t in planar_types.items() if t == "Conv3d"} == {"SphericalConv3d"}
    padded = [n for n, t in sph_types.items() if t == "EquirectMaxPool3d"]  # the spatially padded pools
    assert len(padded) == 12 and {planar_types[n] for n in padded} == {"MaxPool3d"}
    assert sph.decoder.up.erp and not planar.decoder.up.erp


def test_spherical_vinet_is_seam_consistent_and_planar_is_not():
    torch.manual_seed(0)
    sph = create_model("vinet_sph", **TINY_VINET)
    inputs = sph.example_inputs(2)
    assert roll_mismatch(sph, inputs, 32) < 1e-4  # one column of the deepest grid (stride 32)
    # (float32 rounding: 1.3e-5 of the output's std for ViNet on an AMD EPYC, whose oneDNN kernels order
    # sums differently from column to column; the planar model's mismatch is of order 1)
    planar = create_model("vinet", **TINY_VINET)
    planar.load_state_dict(sph.state_dict())
    assert roll_mismatch(planar, inputs, 32) > 1e-3


def test_prepare_inputs_and_bad_inputs():
    model = create_model("vinet", **TINY_VINET)
    inputs = model.prepare_inputs(ambisonic_batch(0.0, batch_size=2, frames=3, size=(48, 96)))
    assert set(inputs) == {"frames"} and inputs["frames"].shape == (2, 3, 8, 64, 128)
    with pytest.raises(ValueError, match=r"vinet: frames must be \(B, 3, 8, 64, 128\)"):
        model(frames=torch.randn(1, 3, 16, 64, 128))
    with pytest.raises(ValueError, match="clip_len must be a positive multiple of 8"):
        ViNet(clip_len=12)
    with pytest.raises(ValueError, match="multiple of 64"):
        create_model("vinet_sph", width_mult=1 / 16, frame_size=(64, 96))


def published_vinet_state(model: ViNet) -> dict:
    """The model's weights laid out as the released ViNet checkpoint (``backbone.*``, ``decoder.convtsp*``
    with unfolded ``(Co, Ci, f, 3, 3)`` weights), wrapped as ``DataParallel`` saved them."""
    back = {dst: src for src, dst in DECODER_NAMES.items()}
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("encoder."):
            state["module.backbone." + key[len("encoder."):]] = value.clone()
            continue
        rest = key[len("decoder."):]
        prefix = next(p for p in back if rest.startswith(p))
        if rest.endswith("conv.weight"):
            fold = getattr(model.decoder, prefix.split(".")[0]).fold
            value = value.reshape(value.shape[0], -1, fold, *value.shape[3:])
        state["module.decoder." + back[prefix] + rest[len(prefix):]] = value.clone()
    return {"state_dict": state}


def test_load_original_checkpoint_maps_the_published_layout():
    torch.manual_seed(1)
    source = ViNet(width_mult=1 / 16, frame_size=(32, 64))  # the published 32-frame decoder
    published = published_vinet_state(source)
    assert published["state_dict"]["module.decoder.convtsp2.0.weight"].shape[2] == 3
    target = ViNet(width_mult=1 / 16, frame_size=(32, 64))
    assert load_original_checkpoint(target, published) == []
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    with pytest.raises(ValueError, match="missing"):
        load_original_checkpoint(target, {k: v for k, v in published["state_dict"].items()
                                          if "convtsp1" not in k})
