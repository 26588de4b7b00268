"""Facts of the released AVS360 (FannyChao/AVS360_audiovisual_saliency_360, DAVE-derived) and GTSD
spherical U-Net (vhchuong/Saliency-prediction-for-360-degree-video) code that sphsal's models follow."""

import math

import pytest
import torch
import torch.nn.functional as F
from tiny_models import TINY_AVS360, TINY_UNET

from sphsal.models import create_model
from sphsal.models.avs360 import KINETICS_MEAN, KINETICS_STD
from sphsal.priors import equator_bias
from sphsal.sphere import equirect_directions


def _capture(module: torch.nn.Module, store: dict, key: str, output: bool = True):
    def hook(m, args, out):
        store[key] = out if output else args[0]
    return module.register_forward_hook(hook)


# ----------------------------------------------------------------------------------------- AVS360
def test_frames_are_normalised_with_the_kinetics_mean_and_std():
    # utils/process_video_audio.py: MEAN = [110.63666788, 103.16065604, 96.29023126] / 255,
    # STD = [38.7568578, 37.88248729, 40.02898126] / 255, applied to the ERP frames and the cube faces.
    model = create_model("avs360_visual", view="both_planar", **TINY_AVS360)
    mean = torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1)
    assert torch.allclose(mean.flatten() * 255, torch.tensor([110.63666788, 103.16065604, 96.29023126]))
    assert torch.allclose(std.flatten() * 255, torch.tensor([38.7568578, 37.88248729, 40.02898126]))
    inputs = model.prepare_inputs({"frames": mean.expand(1, 3, 2, 32, 64).clone()})
    assert inputs["frames"].abs().max() < 1e-5 and inputs["faces"].abs().max() < 1e-5
    inputs = model.prepare_inputs({"frames": torch.ones(1, 3, 2, 32, 64)})
    assert torch.allclose(inputs["frames"], ((1 - mean) / std).expand_as(inputs["frames"]), atol=1e-5)


def test_cube_branch_stem_max_pool_does_not_pad_time():
    # utils/resnet3D_cubic.py: CubePad(1) in H, W, then MaxPool3d(3, stride=2, padding=0): 16 frames -> 7;
    # the ERP branch (utils/resnet3D.py) pools with padding=1: 16 frames -> 8.
    model = create_model("avs360_visual", view="both_planar", width_mult=1 / 16, clip_len=16,
                         frame_size=(32, 64), face_size=32).eval()
    seen = {}
    _capture(model.visual_cube.maxpool, seen, "cube")
    _capture(model.visual_erp.maxpool, seen, "erp")
    with torch.no_grad():
        out = model(**model.example_inputs())
    assert seen["cube"].shape[2] == 7 and seen["erp"].shape[2] == 8
    assert seen["cube"].shape[-2:] == (8, 8)  # 32 x 32 faces: stem /2, cube-padded pool /2
    assert out.shape == (1, 1, 4, 8)
    # clips shorter than the 3-frame window keep a frame of temporal padding (the tiny test models)
    tiny = create_model("avs360_visual", view="cubemap", **TINY_AVS360)
    assert tiny.visual_cube.maxpool.padding == (1, 0, 0)


def test_fusion_is_relu_of_ecb_times_one_plus_aem_times_x_plus_its_max():
    # model_predi.py: eq_b = eq_b * (1.0 + aem); x = eq_b * (x + x.max()); x = relu(x) (max per sample here)
    torch.manual_seed(0)
    model = create_model("avs360", view="erp_planar", head_activation="relu", **TINY_AVS360).eval()
    inputs = model.example_inputs(batch_size=2)
    seen = {}
    _capture(model.fusion, seen, "x")
    _capture(model.up1, seen, "fused", output=False)
    with torch.no_grad():
        model(**inputs)
    x = seen["x"]
    expected = F.relu(model.ecb * (1 + inputs["aem"]) * (x + x.amax(dim=(1, 2, 3), keepdim=True)))
    torch.testing.assert_close(seen["fused"], expected)


def test_decoder_steps_and_head_as_released():
    # model_predi.py: ScaleUp = bilinear x2 (align_corners=True), 3x3 conv (padding 1), ReLU (its bn unused);
    # 512 -> 512 -> 128, 1x1 conv to 1, ReLU, division by the sum; a 32 x 40 map for 256 x 320 frames.
    model = create_model("avs360", view="erp_planar", width_mult=1 / 4, clip_len=2, frame_size=(32, 64))
    assert (model.up1.conv.in_channels, model.up1.conv.out_channels) == (128, 128)
    assert (model.up2.conv.in_channels, model.up2.conv.out_channels) == (128, 32)
    assert model.up1.conv.kernel_size == (3, 3) and model.up1.conv.padding == (1, 1)
    assert model.head.kernel_size == (1, 1) and model.head.out_channels == 1
    assert model.fusion.kernel_size == (1, 1) and model.fusion.in_channels == 2 * 128
    x = torch.randn(1, 128, 2, 3)
    expected = F.relu(model.up1.conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)))
    torch.testing.assert_close(model.up1(x), expected)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_equator_centre_bias_matches_the_released_ecb_image():
    # ECB.png (300 x 600): a Gaussian of sigma 25 px (15 deg) in elevation and 125 px (75 deg) in azimuth,
    # resized to 10 x 8 and divided by its maximum (predict.py / train.py).
    model = create_model("avs360_visual", view="erp_planar", width_mult=1 / 16, clip_len=2,
                         frame_size=(256, 320))
    ecb = model.ecb[0, 0]
    assert ecb.shape == (8, 10) and ecb.max() == pytest.approx(1.0)
    torch.testing.assert_close(ecb, equator_bias(8, 10))
    az, el = equirect_directions(8, 10, dtype=torch.float64)
    daz = torch.remainder(az + math.pi, 2 * math.pi) - math.pi
    gauss = torch.exp(-0.5 * (el / math.radians(15)) ** 2 - 0.5 * (daz / math.radians(75)) ** 2)
    torch.testing.assert_close(ecb.double(), gauss / gauss.max(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------- spherical U-Net
def test_unet_skips_take_the_encoder_features_before_pooling_and_nearest_upsampling():
    # model.py (Final1): r4 = up(r4); conv5(cat([r4, r3])); r5 = up(r5); conv6(cat([r5, r2])); r6 = up(r6);
    # conv7(cat([r6, r1])), nn.Upsample(scale_factor=2) (nearest), r1..r3 taken before MaxPool2d(2, 2).
    model = create_model("planar_unet", **TINY_UNET).eval()
    seen = {}
    for name in ("enc1", "enc2", "enc3", "enc4", "dec3", "dec2"):
        _capture(getattr(model, name), seen, name)
    for name in ("dec3", "dec2", "out"):
        _capture(getattr(model, name), seen, name + "_in", output=False)
    with torch.no_grad():
        model(**model.example_inputs(batch_size=2))

    def up(x):
        return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)

    c4 = seen["enc4"].shape[1]
    assert seen["enc1"].shape[-2:] == (16, 32) and seen["enc4"].shape[-2:] == (2, 4)
    torch.testing.assert_close(seen["dec3_in"], torch.cat((up(seen["enc4"]), seen["enc3"]), dim=1))
    torch.testing.assert_close(seen["dec2_in"], torch.cat((up(seen["dec3"]), seen["enc2"]), dim=1))
    torch.testing.assert_close(seen["out_in"], torch.cat((up(seen["dec2"]), seen["enc1"]), dim=1))
    assert seen["dec3_in"].shape[1] == c4 + seen["enc3"].shape[1]


def test_unet_batch_norm_and_relu_follow_every_conv_but_the_last():
    # model.py: conv1..conv6 each followed by BatchNorm2d and ReLU; conv7 (to 1 channel) by neither.
    model = create_model("planar_unet")
    widths = []
    for name in ("enc1", "enc2", "enc3", "enc4", "dec3", "dec2"):
        conv, bn, relu = getattr(model, name)
        assert conv.kernel_size == (3, 3) and isinstance(bn, torch.nn.BatchNorm2d)
        assert isinstance(relu, torch.nn.ReLU) and bn.num_features == conv.out_channels
        widths.append((conv.in_channels, conv.out_channels))
    assert widths == [(4, 64), (64, 128), (128, 256), (256, 256), (512, 128), (256, 64)]
    assert isinstance(model.out, torch.nn.Conv2d)
    assert (model.out.in_channels, model.out.out_channels) == (128, 1)
    assert isinstance(model.pool, torch.nn.MaxPool2d) and model.pool.kernel_size == 2


def test_unet_reads_the_map_of_five_frames_earlier():
    # train.py and the test script build VRVideo(..., frame_interval=5): the input map is the ground
    # truth of frame fid - 5 (testing too).
    # Frames without one (fid - 5 <= 0) get the map of one fixation at (0.5, 0.5): the front.
    model = create_model("planar_unet", **TINY_UNET)
    assert model.input_spec.needs_prev_saliency and model.input_spec.prev_saliency_interval == 5
    assert model.input_spec.prev_saliency_start == "centre"
    with pytest.raises(ValueError, match="prev_start must be one of"):
        create_model("planar_unet", **TINY_UNET, prev_start="front")
    with pytest.raises(ValueError, match="prev_interval must be an integer >= 1"):
        create_model("planar_unet", **TINY_UNET, prev_interval=0)
