"""Facts of the released ViNet / AViNet, STAViS and SoundNet code, checked against independent
re-computations with the released operators (strided temporal convolutions, trilinear upsampling,
transposed-convolution upsampling, SoundNet's 2D-convolution layout and input range).

Sources: samyak0210/ViNet ``model.py`` (DecoderConvUp, VideoAudioSaliencyModel) and ``dataloader.py``;
atsiami/STAViS ``models/dsam_layers.py``, ``models/av_fusion.py``, ``datasets/saliency_db.py``;
cvondrick/soundnet ``extract_feat.lua`` (``sound:mul(2^-23) -- make range [-256, 256]``).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sphsal.models.avinet import AViNet
from sphsal.models.backbones.soundnet import INPUT_SCALE, KERNELS, POOLS, SoundNet8
from sphsal.models.spherical import bilinear_upsample
from sphsal.models.stavis import SoundLocalisation
from sphsal.models.vinet import ViNetDecoder


def _randomise_batchnorm(module: torch.nn.Module, generator: torch.Generator) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator, dtype=m.running_mean.dtype))
            m.running_var.copy_(torch.rand(n, generator=generator, dtype=m.running_var.dtype) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=generator, dtype=m.weight.dtype) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=generator, dtype=m.bias.dtype))


def test_soundnet_sees_the_released_input_range():
    """ViNet and STAViS load 32-bit samples times 2 ** -23 (a [-256, 256] waveform) and run SoundNet as
    ``Conv2d`` with ``(k, 1)`` kernels, stride 2, padding k / 2, BN, ReLU, max-pools 8 / 8 / 4."""
    assert INPUT_SCALE == 256.0 == 2.0 ** 31 * 2.0 ** -23
    g = torch.Generator().manual_seed(0)
    net = SoundNet8(width_mult=1 / 16).double().eval()
    _randomise_batchnorm(net, g)
    wave = torch.rand(2, 6000, generator=g, dtype=torch.float64) * 2 - 1  # a [-1, 1] waveform
    x = (256.0 * wave)[:, None, :, None]  # the released (B, 1, S, 1) input
    for i, (conv, bn) in enumerate(zip(net.conv, net.bn)):
        k = KERNELS[i]
        x = F.conv2d(x, conv.weight[..., None], conv.bias, stride=(2, 1), padding=(k // 2, 0))
        x = F.relu(F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=1e-5))
        if i in POOLS:
            x = F.max_pool2d(x, (POOLS[i], 1), (POOLS[i], 1))
    with torch.no_grad():
        out = net(wave)
    torch.testing.assert_close(out, x[..., 0])
    assert out.shape[-1] == SoundNet8.output_length(6000)
    assert SoundNet8.output_length(70560) == 3 and SoundNet8.output_length(35280) == 2


def test_vinet_decoder_is_the_released_strided_temporal_decoder():
    """DecoderConvUp: bias-free Conv3d (1,3,3)/1, (3,3,3)/(3,1,1), (5,3,3)/(5,1,1) x2, (2,3,3)/(2,1,1),
    (2,1,1)/(2,1,1), ReLU, trilinear (1, 2, 2) upsampling after the first five, skips concatenated
    along time, a biased 1x1x1 conv and a sigmoid."""
    torch.manual_seed(0)
    channels = (64, 52, 30, 12)
    dec = ViNetDecoder(channels, clip_len=32, width_mult=1 / 16).double().eval()
    y0 = torch.randn(1, 64, 4, 1, 2, dtype=torch.float64)
    y1 = torch.randn(1, 52, 8, 2, 4, dtype=torch.float64)
    y2 = torch.randn(1, 30, 16, 4, 8, dtype=torch.float64)
    y3 = torch.randn(1, 12, 16, 8, 16, dtype=torch.float64)

    def released(i, z):
        layer = getattr(dec, f"conv{i}")
        w, f = layer.conv.weight, layer.fold
        w = w.reshape(w.shape[0], -1, f, *w.shape[3:])  # the released (Co, Ci, f, k, k) kernel
        assert layer.conv.bias is None
        return F.relu(F.conv3d(z, w, stride=(f, 1, 1), padding=(0, w.shape[-1] // 2, w.shape[-1] // 2)))

    def up(z):
        return F.interpolate(z, scale_factor=(1, 2, 2), mode="trilinear", align_corners=False)

    z = up(released(1, y0))
    z = up(released(2, torch.cat((z, y1), 2)))
    z = up(released(3, torch.cat((z, y2), 2)))
    z = up(released(4, torch.cat((z, y3), 2)))
    z = up(released(5, z))
    z = released(6, z)
    assert z.shape[2] == 1 and dec.conv6.conv.kernel_size == (1, 1, 1) and dec.head.bias is not None
    expected = torch.sigmoid(dec.head(z))[:, :, 0]
    with torch.no_grad():
        torch.testing.assert_close(dec(y0, y1, y2, y3), expected)
    assert [getattr(dec, f"conv{i}").fold for i in range(1, 7)] == [1, 3, 5, 5, 2, 2]


def test_avinet_fusion_is_the_released_pooling_and_per_channel_bilinear():
    """VideoAudioSaliencyModel: MaxPool3d((4,1,1), stride=(2,1,2)) of y0, nn.Bilinear over (the pooled
    grid of a channel, SoundNet's steps of that channel), reshaped to y0's grid, into the decoder."""
    torch.manual_seed(1)
    model = AViNet(width_mult=1 / 16, clip_len=32, frame_size=(32, 64), audio_samples=4574).eval()
    inputs = model.example_inputs(2)
    with torch.no_grad():
        y0, y1, y2, y3 = model.encoder(inputs["frames"])
        assert y0.shape[2] == 4
        v = F.max_pool3d(y0, (4, 1, 1), stride=(2, 1, 2))
        fused = model.bilinear(v.flatten(2), model.audio(inputs["audio"]).flatten(2)).reshape(y0.shape)
        torch.testing.assert_close(model(**inputs), model.decoder(fused, y1, y2, y3))


def _released_bilinear_kernel(size: int) -> np.ndarray:
    """STAViS ``upsample_filt``: the fixed kernel of its frozen ``ConvTranspose2d`` upsampling."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


def test_stavis_upsampling_is_the_released_transposed_conv_away_from_the_border():
    """dsam_score_dsn: ConvTranspose2d(kernel 2 s, stride s) with the bilinear kernel, centre-cropped to
    the frame; sphsal's bilinear upsampling equals it except in the ``s``-pixel border the released
    zero padding darkens (documented in sphsal.models.stavis)."""
    torch.manual_seed(2)
    for stride in (2, 4, 8, 16):
        x = torch.rand(1, 1, 5, 6, dtype=torch.float64)
        kernel = torch.from_numpy(_released_bilinear_kernel(2 * stride))[None, None]
        full = F.conv_transpose2d(x, kernel, stride=stride)
        crop = stride // 2  # center_crop to (stride h, stride w)
        released = full[..., crop: crop + 5 * stride, crop: crop + 6 * stride]
        ours = bilinear_upsample(x, stride)
        inner = (slice(None), slice(None), slice(stride, -stride), slice(stride, -stride))
        torch.testing.assert_close(ours[inner], released[inner])


def test_stavis_localisation_reads_the_middle_two_frames():
    """av_module: ``rgb[:, :, T//2-1 : T//2+1]`` averaged over time, Linear + ReLU per position and for
    the audio vector, Bilinear(128, 128, 64), bilinear x8 upsampling."""
    torch.manual_seed(3)
    loc = SoundLocalisation(16, 32, 8, hidden=8, out_channels=4).eval()
    visual = torch.rand(2, 16, 4, 3, 3)
    audio = torch.rand(2, 32)
    changed = visual.clone()
    changed[:, :, [0, 3]] = torch.rand(2, 16, 2, 3, 3)  # frames outside the middle two
    with torch.no_grad():
        out = loc(visual, audio)
        torch.testing.assert_close(loc(changed, audio), out)
        v = visual[:, :, 1:3].mean(2).flatten(2).transpose(1, 2)
        a = F.relu(loc.affine_audio(audio))[:, None].expand(-1, 9, -1)
        maps = loc.bilinear(F.relu(loc.affine_rgb(v)).contiguous(), a.contiguous())
        expected = bilinear_upsample(maps.transpose(1, 2).reshape(2, 4, 3, 3), 8)
    torch.testing.assert_close(out, expected)


def test_mvva_forward_is_the_released_data_flow():
    """visual_audio_face_modal_combine_net (MinglangQiao/visual_audio_saliency ``model.py``): object
    stream on the later frame, motion stream on cat(earlier, later), cat(flow, object) into three convs,
    a 2-layer ConvLSTM stepped over consecutive frames; audio 3D CNN flattened (channel, time) ->
    channels; fusion: sum of the three 3x3 conv + ReLU, cat(sum, modality) -> 3x3 conv + ReLU each,
    1x1 conv over cat(visual, audio, face). sphsal adds a softplus to the released linear map."""
    from tiny_models import TINY_MVVA

    from sphsal.models.mvva import MVVA

    torch.manual_seed(4)
    m = MVVA(**TINY_MVVA).eval()
    inputs = m.example_inputs(2)
    frames, mel, face = inputs["frames"], inputs["mel"], inputs["face"]
    relu, pool = F.relu, m.pool
    hidden = [None, None]
    with torch.no_grad():
        for s in range(m.steps):
            later = frames[:, :, m.clip_len - m.steps + s]
            earlier = frames[:, :, m.clip_len - m.steps + s - m.gap]
            x = relu(m.conv1_2(relu(m.conv1_1(later))))
            x = relu(m.conv2_2(relu(m.conv2_1(pool(x)))))
            x = relu(m.conv3_1(pool(x)))
            x = relu(m.conv4_1(pool(x)))
            y = m.flow_conv3(m.flow_conv2(m.flow_conv1(torch.cat((earlier, later), 1))))
            y = m.flow_deconv5(pool(y))
            z = relu(m.combine_conv3(relu(m.combine_conv2(relu(m.combine_conv1(torch.cat((y, x), 1)))))))
            for i, cell in enumerate((m.cell0, m.cell1)):
                if hidden[i] is None:
                    zeros = torch.zeros(2, cell.hidden, *z.shape[-2:])
                    hidden[i] = (zeros, zeros)
                h, c = hidden[i]
                gi = torch.sigmoid(cell.Wxi(z) + cell.Whi(h))
                gf = torch.sigmoid(cell.Wxf(z) + cell.Whf(h))
                c = gf * c + gi * torch.tanh(cell.Wxc(z) + cell.Whc(h))
                h = torch.sigmoid(cell.Wxo(z) + cell.Who(h)) * torch.tanh(c)
                hidden[i] = (h, c)
                z = h
        visual = z
        a = F.max_pool3d(relu(m.conv1_3d(mel)), 2)
        a = F.max_pool3d(relu(m.conv2b_3d(relu(m.conv2a_3d(a)))), (2, 1, 1))
        a = F.max_pool3d(relu(m.conv3_3d(a)), (2, 1, 1))
        audio = a.view(2, -1, *a.shape[-2:])
        common = torch.cat([relu(m.conv_normal_visual1(visual)), relu(m.conv_normal_audio1(audio)),
                            relu(m.conv_normal_face1(face))], 1)
        n, c, h, w = common.shape
        common = common.reshape(n, 1, 3, c // 3, h, w).sum(2).view(n, c // 3, h, w)
        final = torch.cat([relu(m.conv_normal_visual2(torch.cat([common, visual], 1))),
                           relu(m.conv_normal_audio2(torch.cat([common, audio], 1))),
                           relu(m.conv_normal_face2(torch.cat([common, face], 1)))], 1)
        torch.testing.assert_close(m(**inputs), F.softplus(m.visual_hmap(final)))


def test_stavis_trains_each_part_at_its_released_learning_rate():
    # main.py (audio-visual, learning_rate 0.01): global lr/100, sal lr/100, sound lr/10, fusion lr;
    # get_fine_tuning_parameters(model, lr_sal): side_prep lr_sal (bias 2x), score_dsn and fuse(av)
    # lr_sal / 10 (bias 2x). Visual-only: global lr/10, no sound or fusion.
    from sphsal.engine.train import build_optimizer
    from sphsal.models import create_model

    expected = {"visual.conv1.weight": 1e-4, "heads.0.side_prep.weight": 1e-4, "heads.2.side_prep.bias": 2e-4,
                "heads.1.score.weight": 1e-5, "heads.1.score.bias": 2e-5, "fuse.weight": 1e-5,
                "fuse.bias": 2e-5, "audio.conv.0.weight": 1e-3, "localisation.bilinear.weight": 1e-2}
    for name, visual_lr in (("stavis", 1e-4), ("stavis_visual", 1e-3), ("stavis_sph", 1e-4)):
        model = create_model(name, width_mult=1 / 16)
        optimizer = build_optimizer(model, model.default_optimizer)
        rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
        params = dict(model.named_parameters())
        assert len(rate) == len(params)  # every parameter trains, once
        for key, lr in {**expected, "visual.conv1.weight": visual_lr}.items():
            if key in params:
                assert rate[id(params[key])] == pytest.approx(lr), (name, key)
        assert all(g["momentum"] == 0.9 and g["dampening"] == 0.9 and g["weight_decay"] == 1e-5
                   for g in optimizer.param_groups)


def test_stavis_new_layers_start_from_the_released_initialisation():
    # models/resnet.py: every Conv2d N(0, 0.001) with zero bias, then fuse / fuseav / score_dsn biases
    # -6; Linear and Bilinear kaiming_normal_(mode='fan_out') with zero bias.
    from sphsal.models import create_model

    torch.manual_seed(0)
    model = create_model("stavis").requires_grad_(False)
    for head in model.heads:
        assert float(head.side_prep.weight.std()) == pytest.approx(1e-3, rel=0.05)
        assert torch.count_nonzero(head.side_prep.bias) == 0
        if head.score is not None:
            assert float(head.score.bias) == -6.0
    assert float(model.fuse.bias) == -6.0 and float(model.fuse.weight.abs().max()) < 5e-3
    bilinear = model.localisation.bilinear  # weight (64, 128, 128): fan-out 64 * 128
    assert float(bilinear.weight.std()) == pytest.approx((2 / (64 * 128)) ** 0.5, rel=0.05)
    rgb = model.localisation.affine_rgb  # (128, 512): fan-out 128
    assert float(rgb.weight.std()) == pytest.approx((2 / 128) ** 0.5, rel=0.05)
    assert torch.count_nonzero(bilinear.bias) == 0 and torch.count_nonzero(rgb.bias) == 0
