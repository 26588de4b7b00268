import pytest
import torch
from tiny_models import TINY_UNET

from sphsal.models import build_loss, create_model
from sphsal.models.spherical_unet import SaliencyUNet


def test_published_layout():
    model = create_model("planar_unet")
    assert model.input_spec.frame_size == (240, 480) and model.input_spec.needs_prev_saliency
    assert model.enc1[0].in_channels == 4
    assert [getattr(model, f"enc{i}")[0].out_channels for i in range(1, 5)] == [64, 128, 256, 256]
    assert [model.dec3[0].out_channels, model.dec2[0].out_channels, model.out.out_channels] == [128, 64, 1]
    assert model.default_loss == "sphere_sse"  # the released SphereMSE: not divided by the total 4 pi
    assert model.default_optimizer == {"name": "sgd", "lr": 1e-4, "momentum": 0.9, "weight_decay": 1e-5}


def test_spherical_unet_uses_spherical_convolutions_everywhere():
    from sphsal.nn import SphericalConv2d

    model = create_model("spherical_unet", **TINY_UNET)
    assert not any(type(m) is torch.nn.Conv2d for m in model.modules())
    assert sum(isinstance(m, SphericalConv2d) for m in model.modules()) == 7


def test_previous_map_enters_at_ten_times_its_scale():
    model = create_model("planar_unet", **TINY_UNET).eval()
    inputs = model.example_inputs()
    seen = {}
    model.enc1.register_forward_hook(lambda m, args, out: seen.setdefault("x", args[0]))
    with torch.no_grad():
        model(**inputs)
    assert torch.allclose(seen["x"][:, 3:], 10 * inputs["prev_saliency"])


def test_prepare_inputs_takes_the_last_frame_and_the_previous_map():
    model = create_model("planar_unet", **TINY_UNET)
    frames = torch.rand(2, 3, 3, 32, 64)
    prev = torch.rand(2, 32, 64) * 5
    inputs = model.prepare_inputs({"frames": frames, "prev_saliency": prev})
    assert inputs["image"].shape == (2, 3, 16, 32)
    assert torch.allclose(inputs["image"], torch.nn.functional.interpolate(
        frames[:, :, -1], size=(16, 32), mode="bilinear", antialias=True))
    assert inputs["prev_saliency"].shape == (2, 1, 16, 32)
    assert torch.allclose(inputs["prev_saliency"].amax(dim=(1, 2, 3)), torch.ones(2))
    first = model.prepare_inputs({"frames": frames})
    assert torch.count_nonzero(first["prev_saliency"]) == 0


def test_default_loss_training_pulls_the_map_towards_ten_times_the_target():
    model = create_model("planar_unet", **TINY_UNET).train()
    inputs = model.example_inputs(batch_size=2)
    target = torch.rand(2, 16, 32)
    loss_fn = build_loss(model.default_loss)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(20):
        loss = loss_fn(model(**inputs), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = model(**inputs)[:, 0]
    scale = (out * target).sum() / (target * target).sum()
    assert 5 < scale < 15   # the ground truth's peak is near 1, the output's target is 10x


def test_bad_sizes_and_inputs_are_named():
    with pytest.raises(ValueError, match="multiples of 8"):
        SaliencyUNet(spherical=False, frame_size=(20, 40))
    model = create_model("planar_unet", **TINY_UNET)
    with pytest.raises(ValueError, match="prev_saliency"):
        model(image=torch.rand(1, 3, 16, 32), prev_saliency=torch.rand(1, 16, 32))


def test_spherical_unet_needs_an_even_deepest_grid_width():
    # W = 40: the deepest grid is 3 x 5, too narrow to wrap over the poles; the planar model runs it.
    with pytest.raises(ValueError, match=r"spherical_unet: frame_size must have W a multiple of 16"):
        create_model("spherical_unet", width_mult=1 / 16, frame_size=(24, 40))
    planar = create_model("planar_unet", width_mult=1 / 16, frame_size=(24, 40))
    assert planar(**planar.example_inputs(1)).shape == (1, 1, 24, 40)
    model = create_model("spherical_unet", **TINY_UNET)
    with pytest.raises(ValueError, match=r"spherical_unet: image W must be a multiple of 16"):
        model(image=torch.rand(1, 3, 16, 40), prev_saliency=torch.rand(1, 1, 16, 40))
    out = model(image=torch.rand(1, 3, 24, 48), prev_saliency=torch.rand(1, 1, 24, 48))
    assert out.shape == (1, 1, 24, 48)


def test_float64_previous_map_gives_the_float32_output():
    model = create_model("spherical_unet", **TINY_UNET).eval()
    image = torch.rand(1, 3, 16, 32)
    prev64 = torch.rand(1, 1, 16, 32, dtype=torch.float64)
    with torch.no_grad():
        out64 = model(image=image, prev_saliency=prev64)
        out32 = model(image=image, prev_saliency=prev64.float())
    assert out64.dtype == torch.float32
    torch.testing.assert_close(out64, out32)
