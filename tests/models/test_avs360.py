import pytest
import torch
from tiny_models import TINY_AVS360, ambisonic_batch

from sphsal.models import create_model
from sphsal.models.avs360 import AVS360
from sphsal.sphere import directions_to_vectors, equirect_directions


def _positive_decoder(model: AVS360) -> None:
    """Make the decoder a positive smoothing operator, so the output's mass follows the fused features."""
    for conv in (model.up1.conv, model.up2.conv, model.head):
        torch.nn.init.constant_(conv.weight, 1.0 / conv.weight[0].numel())
        torch.nn.init.zeros_(conv.bias)


def _mass_by_column(out: torch.Tensor) -> torch.Tensor:
    return out[0, 0].sum(dim=0)


def test_aem_peak_moves_the_output_mass():
    model = create_model("avs360", view="both_planar", **TINY_AVS360).eval()
    _positive_decoder(model)
    inputs = model.example_inputs()
    h, w = model.fusion_size
    left, right = torch.zeros(1, 1, h, w), torch.zeros(1, 1, h, w)
    left[..., :, 0] = 1.0          # ERP column 0: the left hemisphere (azimuths 180..0 deg)
    right[..., :, w - 1] = 1.0     # last column: the right hemisphere
    with torch.no_grad():
        out_left = model(**{**inputs, "aem": left})
        out_right = model(**{**inputs, "aem": right})
    half = out_left.shape[-1] // 2
    assert not torch.allclose(out_left, out_right)
    assert _mass_by_column(out_left)[:half].sum() > 0.5 > _mass_by_column(out_right)[:half].sum()


def test_prepare_inputs_builds_every_tensor_from_an_ambisonic_batch():
    model = create_model("avs360", view="both_planar", **TINY_AVS360)
    batch = ambisonic_batch(az_deg=-45.0, batch_size=2, frames=3, size=(48, 96))
    inputs = model.prepare_inputs(batch)
    t = TINY_AVS360["clip_len"]
    assert inputs["frames"].shape == (2, 3, t, 32, 64)
    assert inputs["faces"].shape == (2, 6, 3, t, 32, 32)
    assert inputs["audio_mel"].shape == (2, 3, t, 64, 64)
    assert inputs["aem"].shape == (2, 1, *model.fusion_size)
    # A source at azimuth -45 deg (front right) is loudest in the right hemisphere, the second column.
    aem = inputs["aem"][0, 0]
    assert aem[0, 1] == pytest.approx(1.0) and aem[0, 0] < 0.9
    out = model(**inputs)
    assert out.shape == (2, 1, *model.input_spec.output_size)


def test_plane_wave_energy_aem_is_sharper_than_the_published_cardioid_rms():
    batch = ambisonic_batch(az_deg=0.0, frames=3, size=(48, 96))
    maps = {}
    for decoder, quantity in (("cardioid", "rms"), ("pwd", "energy")):
        model = create_model("avs360", view="erp_planar", aem_decoder=decoder, aem_quantity=quantity,
                             **{**TINY_AVS360, "frame_size": (128, 256)})
        maps[decoder] = model.prepare_inputs(batch)["aem"][0, 0]  # 4 x 8 fusion grid, front = columns 3, 4
    for aem in maps.values():
        assert aem.max() == pytest.approx(1.0) and aem[1:3, 3:5].min() > 0.8
    # the equator cells 45-135 degrees off the source (columns 1, 2 and 5, 6)
    side = [1, 2, 5, 6]
    assert maps["pwd"][1:3, side].max() < 0.4 and maps["cardioid"][1:3, side].min() > 0.35
    assert (maps["pwd"][1:3, side] < 0.6 * maps["cardioid"][1:3, side]).all()
    with pytest.raises(ValueError, match="aem_decoder"):
        create_model("avs360", aem_decoder="hypercube")
    with pytest.raises(ValueError, match="aem_quantity"):
        create_model("aem_ecb", aem_quantity="loudness")


def test_stereo_audio_is_refused_unless_the_aem_is_off():
    batch = ambisonic_batch(az_deg=0.0, channels=2)
    with pytest.raises(ValueError, match="stereo.*not ambisonic.*use_aem=False"):
        create_model("avs360", view="erp_planar", **TINY_AVS360).prepare_inputs(batch)
    for model in (create_model("avs360", view="erp_planar", use_aem=False, **TINY_AVS360),
                  create_model("avs360_no_aem", view="erp_planar", **TINY_AVS360)):
        inputs = model.prepare_inputs(batch)
        assert "aem" not in inputs and inputs["audio_mel"].shape[1:3] == (3, TINY_AVS360["clip_len"])
    assert "audio_mel" not in create_model("avs360_visual", view="erp_planar", **TINY_AVS360).prepare_inputs(
        {"frames": batch["frames"]})


def test_spherical_erp_branch_is_built_from_spherical_convolutions():
    from sphsal.nn import SphericalConv3d

    model = create_model("avs360", view="erp_spherical", **TINY_AVS360)
    convs = [m for m in model.visual_erp.modules() if isinstance(m, torch.nn.Conv3d | SphericalConv3d)]
    assert convs and all(isinstance(m, SphericalConv3d) for m in convs)
    assert model.visual_cube is None
    assert not any(isinstance(m, SphericalConv3d) for m in model.audio.modules())


def test_views_build_the_expected_branches():
    both = create_model("avs360", view="both_planar", **TINY_AVS360)
    assert both.visual_erp is not None and both.visual_cube is not None
    cube = create_model("avs360", view="cubemap", **TINY_AVS360)
    assert cube.visual_erp is None and set(cube.example_inputs()) == {"faces", "audio_mel", "aem"}
    visual = create_model("avs360_visual", view="cubemap", **TINY_AVS360)
    assert visual.audio is None and set(visual.example_inputs()) == {"faces"}
    assert visual.input_spec.audio_channels == 0 and not visual.input_spec.needs_aem


def test_published_default_sizes():
    model = AVS360.__new__(AVS360)  # sizes only: building the full model is covered by the benchmark
    AVS360.__init__(model, view="both_planar", width_mult=1 / 32)
    assert model.input_spec.clip_len == 16
    assert model.input_spec.frame_size == (256, 320)
    assert model.fusion_size == (8, 10) and model.input_spec.output_size == (32, 40)
    assert model.default_loss == "bce" and model.default_optimizer["lr"] == 1e-5


def test_bad_options_and_inputs_are_named():
    with pytest.raises(ValueError, match="view"):
        AVS360(view="panorama")
    with pytest.raises(ValueError, match="frame_size"):
        AVS360(frame_size=(100, 200))
    with pytest.raises(ValueError, match="avs360_visual fixes use_aem"):
        create_model("avs360_visual", use_aem=True)
    model = create_model("avs360", view="erp_planar", **TINY_AVS360)
    inputs = model.example_inputs()
    with pytest.raises(ValueError, match="missing input 'aem'"):
        model(frames=inputs["frames"], audio_mel=inputs["audio_mel"])
    with pytest.raises(ValueError, match="aem must be"):
        model(**{**inputs, "aem": torch.rand(1, 1, 3, 3)})


def test_output_aem_is_off_by_default_and_leaves_the_published_model_unchanged():
    default = create_model("avs360", view="both_planar", **TINY_AVS360)
    explicit = create_model("avs360", view="both_planar", output_aem=False, **TINY_AVS360)
    assert not default.output_aem and "aem_out" not in default.example_inputs()
    assert default.state_dict().keys() == explicit.state_dict().keys()
    assert default.head.in_channels == default.up2.conv.out_channels
    batch = ambisonic_batch(az_deg=0.0, frames=3, size=(48, 96))
    assert "aem_out" not in default.prepare_inputs(batch)
    # inert without the AEM, so the ablations take the same options as the full model
    for name in ("avs360_visual", "avs360_no_aem"):
        ablation = create_model(name, view="erp_planar", output_aem=True, **TINY_AVS360)
        assert not ablation.output_aem and ablation.head.in_channels == ablation.up2.conv.out_channels


def test_output_aem_feeds_the_head_an_output_resolution_map_from_the_audio():
    model = create_model("avs360", view="both_planar", output_aem=True, **TINY_AVS360)
    h, w = model.input_spec.output_size
    assert model.head.in_channels == model.up2.conv.out_channels + 1
    inputs = model.example_inputs(batch_size=2)
    assert inputs["aem_out"].shape == (2, 1, h, w)
    out = model(**inputs)
    assert out.shape == (2, 1, h, w)
    assert torch.allclose(out.sum(dim=(2, 3)), torch.ones(2, 1), atol=1e-5)
    # from a batch: a source at azimuth -90 deg (the right, 3/4 of the ERP width) peaks there
    batch = ambisonic_batch(az_deg=-90.0, batch_size=2, frames=3, size=(48, 96))
    built = model.prepare_inputs(batch)
    assert built["aem_out"].shape == (2, 1, h, w) and built["aem"].shape == (2, 1, *model.fusion_size)
    column = int(built["aem_out"][0, 0].sum(dim=0).argmax())
    assert abs(column + 0.5 - 0.75 * w) <= 1
    with pytest.raises(ValueError, match="missing input 'aem_out'"):
        model(**{k: v for k, v in inputs.items() if k != "aem_out"})
    with pytest.raises(ValueError, match="aem_out must be"):
        model(**{**inputs, "aem_out": torch.rand(2, 1, h // 2, w // 2)})


def test_output_aem_moves_the_output_mass_and_gets_gradients():
    model = create_model("avs360", view="both_planar", output_aem=True, **TINY_AVS360)
    _positive_decoder(model)
    torch.nn.init.constant_(model.head.weight[:, -1], 4.0)
    inputs = model.example_inputs()
    h, w = model.input_spec.output_size
    inputs["aem"] = torch.ones(1, 1, *model.fusion_size)  # the coarse AEM says nothing
    left, right = torch.zeros(1, 1, h, w), torch.zeros(1, 1, h, w)
    left[..., : w // 2] = 1.0
    right[..., w // 2:] = 1.0
    with torch.no_grad():
        out_left = model(**{**inputs, "aem_out": left})
        out_right = model(**{**inputs, "aem_out": right})
    assert _mass_by_column(out_left)[: w // 2].sum() > 0.5 > _mass_by_column(out_right)[: w // 2].sum()

    model = create_model("avs360", view="both_planar", output_aem=True, **TINY_AVS360)
    inputs = model.example_inputs(batch_size=2)
    inputs["aem_out"].requires_grad_(True)
    target = torch.rand(2, 1, h, w)
    loss = -(target / target.sum(dim=(2, 3), keepdim=True) * model(**inputs).clamp_min(1e-12).log()).sum()
    loss.backward()
    assert model.head.weight.grad[:, -1].abs().sum() > 0
    assert inputs["aem_out"].grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)



def test_float64_aem_gives_the_float32_output():
    torch.manual_seed(0)
    model = create_model("avs360", view="erp_planar", **TINY_AVS360).eval()
    inputs = model.example_inputs()
    aem64 = torch.rand(1, 1, *model.fusion_size, dtype=torch.float64)
    with torch.no_grad():
        out64 = model(**{**inputs, "aem": aem64})
        out32 = model(**{**inputs, "aem": aem64.float()})
    assert out64.dtype == torch.float32
    torch.testing.assert_close(out64, out32)


def _unit_vector_scene(h: int, w: int) -> torch.Tensor:
    """A smooth ERP clip ``(1, 3, 1, h, w)``: each pixel's unit vector mapped to ``[0, 1]`` colours."""
    return ((1 + directions_to_vectors(*equirect_directions(h, w))) / 2).permute(2, 0, 1)[None, :, None]


def test_prepare_inputs_accepts_frames_of_odd_width():
    model = create_model("avs360", **TINY_AVS360).eval()
    inputs = model.prepare_inputs(ambisonic_batch(30.0, 1, frames=1, size=(33, 67)))
    assert inputs["faces"].shape == (1, 6, 3, TINY_AVS360["clip_len"], 32, 32)
    with torch.no_grad():
        out = model(**inputs)
    assert out.shape == (1, 1, 4, 8) and torch.isfinite(out).all()
    # The odd-width clip gives the faces of the same scene sampled on a finer, even grid.
    odd = model.clip_to_faces(_unit_vector_scene(33, 67))
    assert (odd - model.clip_to_faces(_unit_vector_scene(66, 134))).abs().max() < 0.005
