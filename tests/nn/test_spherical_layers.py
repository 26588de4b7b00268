import warnings

import pytest
import torch
from torch import nn

from sphsal.nn import (
    SphericalAvgPool2d,
    SphericalConv2d,
    SphericalConv3d,
    SphericalConvTranspose2d,
    SphericalMaxPool2d,
    convert_to_spherical,
)
from sphsal.ops import sphere_conv2d, sphere_conv3d, sphere_conv_transpose2d


def _twin_outputs(planar: nn.Module, sph: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both layers' outputs on ``x`` once the planar layer's state dict (same names and shapes) is loaded
    into its spherical twin, a subclass of the planar layer."""
    assert isinstance(sph, type(planar))
    shapes = lambda m: {k: v.shape for k, v in m.state_dict().items()}
    assert shapes(sph) == shapes(planar)
    sph.load_state_dict(planar.state_dict())
    return sph(x), planar(x)


def test_conv2d_is_a_drop_in_twin_of_nn_conv2d():
    planar = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    sph = SphericalConv2d(3, 5, 3, stride=2, interpolation="bilinear", stencil="gnomonic")
    x = torch.randn(2, 3, 8, 16)
    out, planar_out = _twin_outputs(planar, sph, x)
    assert out.shape == planar_out.shape == (2, 5, 4, 8)
    expected = sphere_conv2d(x, planar.weight, planar.bias, 2, 1, "bilinear", "gnomonic")
    torch.testing.assert_close(out, expected)
    assert "stencil=gnomonic" in repr(sph)


def test_conv3d_shapes_and_state_dict():
    planar = nn.Conv3d(3, 4, (3, 5, 5), stride=(2, 1, 1), padding=(1, 2, 2), bias=False)
    sph = SphericalConv3d(3, 4, (3, 5, 5), stride=(2, 1, 1), bias=False)
    sph.load_state_dict(planar.state_dict())
    x = torch.randn(1, 3, 6, 8, 16)
    out = sph(x)
    assert out.shape == planar(x).shape == (1, 4, 3, 8, 16)
    torch.testing.assert_close(out, sphere_conv3d(x, planar.weight, None, (2, 1)))


@pytest.mark.parametrize("kwargs,match", [(dict(kernel_size=4), "odd"), (dict(stride=(1, 2)), "stride"),
                                          (dict(stencil="square"), "stencil"),
                                          (dict(padding=0), r"padding=0 is not the 'same' padding \(1, 1\)")])
def test_bad_layer_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SphericalConv2d(2, 2, **kwargs)


def test_planar_keyword_arguments_carry_over():
    """nn.Conv2d / nn.Conv3d keyword arguments, "same" padding included, build the spherical twin."""
    kwargs = dict(kernel_size=5, stride=2, padding=4, dilation=2, groups=2, bias=False)
    planar, sph = nn.Conv2d(4, 6, **kwargs), SphericalConv2d(4, 6, **kwargs)
    sph.load_state_dict(planar.state_dict())
    assert sph.padding == planar.padding == (4, 4) and sph(torch.randn(1, 4, 8, 16)).shape == (1, 6, 4, 8)
    kwargs3 = dict(kernel_size=(3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2))
    SphericalConv3d(2, 4, **kwargs3).load_state_dict(nn.Conv3d(2, 4, **kwargs3).state_dict())
    assert SphericalConv3d(2, 4, 3, padding="same").padding == (1, 1, 1)
    with pytest.raises(ValueError, match=r"padding=2 .*\(1, 2, 2\)"):
        SphericalConv3d(2, 4, (3, 5, 5), padding=2)


def test_positional_arguments_follow_nn_conv():
    """nn.Conv2d's / nn.Conv3d's leading arguments in their order; the spherical options keyword-only."""
    planar, sph = nn.Conv2d(4, 6, 5, 1, 4, 2, 2, False), SphericalConv2d(4, 6, 5, 1, 4, 2, 2, False)
    assert (sph.padding, sph.dilation, sph.groups, sph.bias) == (planar.padding, planar.dilation, 2, None)
    sph3 = SphericalConv3d(2, 4, 3, 1, 1, 1, 2, False)
    assert (sph3.padding, sph3.groups, sph3.bias) == ((1, 1, 1), 2, None)
    with pytest.raises(ValueError, match=r"padding=2 is not the 'same' padding \(1, 1\)"):
        SphericalConv2d(3, 8, 3, 1, 2)  # nn.Conv2d's padding=2, not a dilation
    with pytest.raises(TypeError):
        SphericalConv2d(3, 8, 3, 1, 1, 1, 1, True, "bilinear")


class _Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        same = stride == 1 and cin == cout
        self.down = nn.Identity() if same else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.down(x))


def _resnet():
    return nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2, 1), _Block(8, 8, 1),
                         _Block(8, 16, 2), nn.AvgPool2d(2, 2), nn.Conv2d(16, 4, 3, 1, 1, groups=2))


def test_convert_resnet_keeps_shapes_and_weights():
    torch.manual_seed(0)
    planar = _resnet().eval()
    model = _resnet().eval()
    model.load_state_dict(planar.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every layer has a twin: nothing is left planar
        convert_to_spherical(model)
    assert isinstance(model[0], SphericalConv2d) and isinstance(model[3].conv1, SphericalConv2d)
    assert isinstance(model[4].down, SphericalConv2d) and isinstance(model[2], SphericalMaxPool2d)
    assert isinstance(model[5], SphericalAvgPool2d) and isinstance(model[6], SphericalConv2d)
    assert model[6].groups == 2
    for key, value in planar.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    x = torch.randn(2, 3, 16, 32)
    with torch.no_grad():
        assert model(x).shape == planar(x).shape == (2, 4, 2, 4)


def _mobilenet_block(channels: int) -> nn.Sequential:
    """Depthwise 3x3 (channel multiplier 2), batch norm, pointwise 1x1: a MobileNet-style block."""
    return nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, 1, 1, groups=channels, bias=False),
                         nn.BatchNorm2d(2 * channels), nn.ReLU6(), nn.Conv2d(2 * channels, channels, 1))


def test_convert_depthwise_separable_block_keeps_weights_and_runs_spherical_ops():
    torch.manual_seed(0)
    planar = _mobilenet_block(4).eval()
    model = convert_to_spherical(_mobilenet_block(4).eval())
    model.load_state_dict(planar.state_dict())
    depthwise = model[0]
    assert isinstance(depthwise, SphericalConv2d) and depthwise.groups == 4
    assert depthwise.weight.shape == planar[0].weight.shape == (8, 1, 3, 3)
    x = torch.randn(2, 4, 16, 32)
    with torch.no_grad():
        out = model(x)
        expected = planar[3](planar[2](planar[1](sphere_conv2d(x, planar[0].weight, groups=4))))
    assert out.shape == planar(x).shape == (2, 4, 16, 32)
    torch.testing.assert_close(out, expected)


def test_grouped_conv3d_is_a_drop_in_twin():
    planar = nn.Conv3d(4, 6, 3, padding=1, groups=2)
    sph = SphericalConv3d(4, 6, 3, groups=2, interpolation="bilinear")
    sph.load_state_dict(planar.state_dict())
    x = torch.randn(1, 4, 3, 8, 16)
    torch.testing.assert_close(sph(x), sphere_conv3d(x, planar.weight, planar.bias, 1, 1, "bilinear",
                                                     groups=2))
    assert "groups=2" in repr(sph)


def test_convert_3d_network_and_unsupported_padding_warning():
    model = nn.Sequential(nn.Conv3d(2, 4, (3, 3, 3), padding=(1, 1, 1)), nn.Conv2d(4, 4, 3, padding=0))
    with pytest.warns(UserWarning, match=r"'1' \(Conv2d\).*padding"):
        convert_to_spherical(model, interpolation="bilinear")
    assert isinstance(model[0], SphericalConv3d) and model[0].interpolation == "bilinear"
    assert model[0](torch.randn(1, 2, 4, 8, 16)).shape == (1, 4, 4, 8, 16)


def test_convert_stride_one_pools_and_warn_on_pools_without_a_twin():
    model = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.AvgPool2d((3, 3), (1, 1), (1, 1)), nn.MaxPool2d(3, 3))
    with pytest.warns(UserWarning, match=r"'2' \(MaxPool2d\).*kernel_size=3, stride=3"):
        convert_to_spherical(model)
    assert isinstance(model[0], SphericalMaxPool2d) and (model[0].kernel_size, model[0].stride) == (3, 1)
    assert isinstance(model[1], SphericalAvgPool2d) and model[1].stride == 1
    assert type(model[2]) is nn.MaxPool2d
    x = torch.randn(1, 2, 8, 16)
    assert model[1](model[0](x)).shape == x.shape


def test_conv_transpose2d_is_a_drop_in_twin_of_nn_conv_transpose2d():
    planar = nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2)
    sph = SphericalConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2, interpolation="bilinear")
    x = torch.randn(2, 4, 8, 16)
    out, planar_out = _twin_outputs(planar, sph, x)
    assert out.shape == planar_out.shape == (2, 6, 16, 32)
    torch.testing.assert_close(out, sphere_conv_transpose2d(x, planar.weight, planar.bias, 2, 1, "bilinear",
                                                            groups=2))
    torch.testing.assert_close(sph(x, output_size=(16, 32)), out)
    with pytest.raises(ValueError, match=r"output_size=\(17, 32\) is not \(16, 32\)"):
        sph(x, output_size=(17, 32))
    assert "stencil=cap" in repr(sph)


@pytest.mark.parametrize("kwargs,match", [
    (dict(output_padding=0), r"output_padding=0 is not 1 \(stride - 1"),
    (dict(padding=0), r"padding=0 is not the 'same' padding \(1, 1\)"),
    (dict(kernel_size=4), "odd")])
def test_bad_transposed_layer_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SphericalConvTranspose2d(2, 2, **{"kernel_size": 3, "stride": 2, **kwargs})


def test_convert_encoder_decoder_with_transposed_convolutions():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ConvTranspose2d(8, 3, 3, 2, 1, 1),
                          nn.ConvTranspose2d(3, 3, 4, 2, 1), nn.ConvTranspose3d(3, 3, 3, padding=1))
    weight = model[1].weight.clone()
    with pytest.warns(UserWarning) as record:
        convert_to_spherical(model, stencil="gnomonic")
    messages = [str(r.message) for r in record]
    assert any("'2' (ConvTranspose2d) planar: kernel_size=(4, 4)" in m for m in messages)
    assert any("'3' (ConvTranspose3d) planar" in m for m in messages)
    decoder = model[1]
    assert isinstance(decoder, SphericalConvTranspose2d) and decoder.stencil == "gnomonic"
    assert torch.equal(decoder.weight, weight)
    x = torch.randn(1, 3, 8, 16)
    assert model[1](model[0](x)).shape == x.shape


def test_layers_kept_planar_on_purpose_stay_planar_without_a_warning():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 3, 4, 2, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert_to_spherical(model, keep_planar=("1",))
    assert isinstance(model[0], SphericalConv2d) and type(model[1]) is nn.ConvTranspose2d


def test_convert_keeps_shared_layers_shared_and_frozen_layers_frozen():
    shared = nn.Conv2d(3, 3, 3, padding=1)
    model = nn.Sequential(nn.Sequential(shared, nn.ReLU()), nn.Sequential(shared))
    model.tied = shared  # registered a third time, under another name
    shared.weight.requires_grad_(False)
    model.eval()
    convert_to_spherical(model)
    twin = model[0][0]
    assert isinstance(twin, SphericalConv2d) and model[1][0] is twin and model.tied is twin
    assert not twin.weight.requires_grad and twin.bias.requires_grad and not twin.training


def test_convert_a_layer_itself_returns_its_twin():
    planar = nn.Conv2d(3, 4, 3, padding=1)
    twin = convert_to_spherical(planar, interpolation="bilinear")
    assert isinstance(twin, SphericalConv2d) and twin.interpolation == "bilinear"
    assert torch.equal(twin.weight, planar.weight)
    assert isinstance(convert_to_spherical(nn.MaxPool2d(2)), SphericalMaxPool2d)


@pytest.mark.parametrize("layer,match", [
    (nn.Conv3d(2, 2, 3, padding=1, padding_mode="circular"), "padding_mode='circular'"),
    (nn.Conv3d(2, 2, (2, 3, 3), padding="same"), "even temporal kernel"),
    (nn.AvgPool2d(2, divisor_override=1), "divisor_override=1"),
    (nn.MaxPool2d(2, return_indices=True), "return_indices"),
    (nn.utils.parametrizations.weight_norm(nn.Conv2d(2, 2, 3, padding=1)), "reparametrized"),
    (nn.utils.spectral_norm(nn.Conv2d(2, 2, 3, padding=1)), "reparametrized"),
    (nn.LazyConv2d(2, 3, padding=1), "lazy"),
])
def test_layers_whose_options_the_twin_would_drop_stay_planar_with_a_warning(layer, match):
    model = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), layer)
    with pytest.warns(UserWarning, match=match):
        convert_to_spherical(model)
    assert model[1] is layer and isinstance(model[0], SphericalConv2d)


def test_layers_run_under_autocast_as_planar_convolutions_do():
    """Mixed precision: a planar layer hands half-precision activations to spherical layers with float32
    weights; under torch.autocast they run in the autocast dtype (outside it, mixed dtypes are an error)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), SphericalConv2d(4, 4, interpolation="bilinear"),
                        SphericalConvTranspose2d(4, 2, 3, 2))
    x = torch.randn(2, 3, 8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), net(x), rtol=0.05, atol=0.05)
    y.float().square().sum().backward()
    assert net[1].weight.grad.dtype == torch.float32 and net[1].weight.grad.abs().sum() > 0
    clip = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), SphericalConv3d(4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert clip(torch.randn(1, 3, 2, 8, 16)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="x is torch.bfloat16 on cpu but weight is torch.float32"):
        net[1](torch.randn(1, 4, 8, 16, dtype=torch.bfloat16))


def test_padding_mode_carries_over_only_as_zeros():
    """nn.Conv2d's default padding_mode="zeros" is accepted as a keyword; any other mode is refused, naming
    the layer (the spherical layers do not pad in space)."""
    assert SphericalConv2d(2, 4, 3, padding=1, padding_mode="zeros").padding_mode == "zeros"
    SphericalConv3d(2, 4, 3, padding=1, padding_mode="zeros")
    SphericalConvTranspose2d(2, 4, 3, 2, 1, 1, padding_mode="zeros")
    for layer, args in ((SphericalConv2d, (2, 4, 3)), (SphericalConv3d, (2, 4, 3)),
                        (SphericalConvTranspose2d, (2, 4, 3, 2))):
        with pytest.raises(ValueError, match=f"{layer.__name__}: padding_mode='circular'"):
            layer(*args, padding_mode="circular")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_convert_replaces_any_padding_mode_of_an_image_convolution(mode):
    """A Conv2d's padding mode treats the ERP image's borders; on the sphere there are none."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, padding_mode=mode))
    weight = model[0].weight.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert_to_spherical(model)
    assert isinstance(model[0], SphericalConv2d) and torch.equal(model[0].weight, weight)


def test_convert_one_by_one_convolution_with_valid_padding():
    """padding="valid" of a 1x1 kernel is its "same" padding: the layer converts."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1, padding="valid"), nn.Conv3d(4, 2, 1, padding="valid"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert_to_spherical(model)
    assert isinstance(model[0], SphericalConv2d) and isinstance(model[1], SphericalConv3d)
    with pytest.raises(ValueError, match="padding='valid' is not the 'same' padding"):
        SphericalConv2d(3, 4, 3, padding="valid")


@pytest.mark.parametrize("cls,planar", [(SphericalMaxPool2d, nn.MaxPool2d),
                                        (SphericalAvgPool2d, nn.AvgPool2d)])
def test_pools_take_the_planar_arguments(cls, planar):
    """nn.MaxPool2d's / nn.AvgPool2d's leading arguments in their order (the stencil keyword-only)."""
    x = torch.randn(1, 2, 8, 16)
    for args in ((3, 2, 1), (2, 2, 0), ((3, 3), (1, 1), (1, 1)), (2,)):
        sph = cls(*args, stencil="gnomonic")
        assert sph(x).shape == planar(*args)(x).shape and sph.stencil == "gnomonic"
    torch.testing.assert_close(cls(2, None)(x), planar(2)(x))


@pytest.mark.parametrize("cls,kwargs,match", [
    (SphericalMaxPool2d, dict(kernel_size=3, stride=2, padding=0), "SphericalMaxPool2d: padding=0 is not 1"),
    (SphericalAvgPool2d, dict(kernel_size=2, padding=1), "SphericalAvgPool2d: padding=1 is not 0"),
    (SphericalMaxPool2d, dict(kernel_size=3, padding=1, dilation=2), "dilation=2 is not supported"),
    (SphericalMaxPool2d, dict(kernel_size=2, return_indices=True), "return_indices=True is not supported"),
    (SphericalMaxPool2d, dict(kernel_size=3, padding=1, ceil_mode=True), "ceil_mode=True"),
    (SphericalAvgPool2d, dict(kernel_size=2, divisor_override=1), "divisor_override=1"),
    (SphericalAvgPool2d, dict(kernel_size=2, stride=1), "stride=1 is not supported"),
    (SphericalMaxPool2d, dict(kernel_size=(3, 2)), "kernel_size must be an int or a pair of equal ints"),
    (SphericalMaxPool2d, dict(kernel_size=3, stencil="square"), "SphericalMaxPool2d: stencil must be one of"),
])
def test_pool_options_without_a_spherical_meaning_are_refused(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_convert_keeps_tied_parameters_the_same_objects():
    """A weight tied between layers (an encoder's Conv2d and its decoder's ConvTranspose2d, two Conv2d) is
    still one Parameter after conversion: the twins hold the planar layers' parameters themselves."""
    enc, dec = nn.Conv2d(4, 8, 3, 2, 1), nn.ConvTranspose2d(8, 4, 3, 2, 1, 1)
    dec.weight = enc.weight
    a, b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
    b.weight = a.weight
    model = nn.ModuleDict(dict(enc=enc, dec=dec, a=a, b=b))
    params = list(model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert_to_spherical(model)
    assert isinstance(model.dec, SphericalConvTranspose2d) and isinstance(model.b, SphericalConv2d)
    assert model.dec.weight is model.enc.weight is enc.weight and model.b.weight is model.a.weight
    assert model.enc.bias is enc.bias and model.dec.bias is dec.bias
    converted = list(model.parameters())
    assert len(converted) == len(params) == 6 and all(p is q for p, q in zip(converted, params))
    model.b.weight = nn.Parameter(torch.zeros_like(b.weight))  # the twin's containers are its own
    assert b.weight is a.weight


def test_optimizer_built_before_conversion_trains_the_converted_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(4, 2, 3, 2, 1, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    convert_to_spherical(model)
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(1, 3, 8, 16)).square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    optimizer.step()
    for p, p0, g in zip(model.parameters(), before, grads):
        assert g.abs().sum() > 0
        torch.testing.assert_close(p.detach(), p0 - 0.5 * g)


class _StdConv2d(nn.Conv2d):
    """A weight-standardised convolution (as timm's StdConv2d): its own forward."""

    def forward(self, x):
        w = self.weight - self.weight.mean((1, 2, 3), keepdim=True)
        return nn.functional.conv2d(x, w, self.bias, self.stride, self.padding)


class _GainConv2d(nn.Conv2d):
    """A convolution with an extra parameter that its own forward uses."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gain = nn.Parameter(torch.ones(self.out_channels, 1, 1, 1))

    def _conv_forward(self, x, weight, bias):
        return super()._conv_forward(x, weight * self.gain, bias)


class _PlainPool(nn.MaxPool2d):
    """A subclass that keeps nn.MaxPool2d's forward."""


class _TaggedConv2d(nn.Conv2d):
    """A subclass that keeps nn.Conv2d's forward and carries an extra buffer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("tag", torch.arange(3.0))


def test_convert_leaves_subclasses_with_their_own_forward_planar_with_a_warning():
    std, gain = _StdConv2d(4, 4, 3, padding=1), _GainConv2d(4, 4, 3, padding=1)
    tagged, pool = _TaggedConv2d(4, 4, 3, padding=1), _PlainPool(2)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Sequential(std, gain), tagged, pool)
    with pytest.warns(UserWarning) as record:
        convert_to_spherical(model)
    messages = sorted(str(r.message) for r in record)
    assert len(messages) == 2
    assert "'1.0' (_StdConv2d) planar: _StdConv2d overrides nn.Conv2d's forward" in messages[0]
    assert "'1.1' (_GainConv2d) planar: _GainConv2d overrides nn.Conv2d's _conv_forward" in messages[1]
    assert model[1][0] is std and model[1][1] is gain and isinstance(model[0], SphericalConv2d)
    assert isinstance(model[2], SphericalConv2d) and model[2].tag is tagged.tag
    assert set(model[2].state_dict()) == set(tagged.state_dict())
    assert isinstance(model[3], SphericalMaxPool2d)


def test_convert_carries_hooks_over_to_the_twin():
    """Forward, pre-forward and backward hooks registered on a planar layer run on its twin, and their
    handles still remove them."""
    conv, pool = nn.Conv2d(2, 3, 3, padding=1), nn.MaxPool2d(2)
    calls = []
    pre = conv.register_forward_pre_hook(lambda m, args: calls.append(("pre", type(m).__name__)))
    conv.register_forward_hook(lambda m, args, out: out * 2)
    conv.register_full_backward_hook(lambda m, gin, gout: calls.append(("backward", type(m).__name__)))
    pool.register_forward_hook(lambda m, args, out: calls.append(("pool", tuple(out.shape))))
    model = convert_to_spherical(nn.Sequential(conv, pool))
    assert isinstance(model[0], SphericalConv2d) and isinstance(model[1], SphericalMaxPool2d)
    x = torch.randn(1, 2, 8, 16, requires_grad=True)
    out = model[0](x)
    torch.testing.assert_close(out, 2 * sphere_conv2d(x, conv.weight, conv.bias))
    out.sum().backward()
    model[1](out)
    assert calls == [("pre", "SphericalConv2d"), ("backward", "SphericalConv2d"), ("pool", (1, 3, 4, 8))]
    pre.remove()
    model[0](x)
    assert calls[-1] == ("pool", (1, 3, 4, 8))


def test_conv3d_same_padding_with_an_even_temporal_kernel_is_refused():
    """nn.Conv3d's "same" pads an even temporal kernel unevenly (T frames out); this layer would pad
    kt // 2 frames at both ends (T + 1)."""
    with pytest.raises(ValueError, match=r"padding='same' with the even temporal kernel of kernel_size=\(2,"):
        SphericalConv3d(2, 4, (2, 3, 3), padding="same")
    odd = SphericalConv3d(2, 4, (3, 3, 3), padding="same")
    x = torch.randn(1, 2, 4, 8, 16)
    assert odd(x).shape == nn.Conv3d(2, 4, 3, padding="same")(x).shape == (1, 4, 4, 8, 16)


_LAYERS = {
    "conv2d": (lambda: SphericalConv2d(2, 3, 3, stride=2), (2, 8, 16)),
    "conv3d": (lambda: SphericalConv3d(2, 3, 3), (2, 3, 8, 16)),
    "conv_transpose2d": (lambda: SphericalConvTranspose2d(2, 3, 3, 2), (2, 8, 16)),
    "max_pool2d": (lambda: SphericalMaxPool2d(3, 2), (2, 8, 16)),
    "avg_pool2d": (lambda: SphericalAvgPool2d(2, 2), (2, 8, 16)),
}


@pytest.mark.parametrize("name", list(_LAYERS))
def test_unbatched_inputs_as_the_planar_layers_take_them(name):
    make, shape = _LAYERS[name]
    torch.manual_seed(0)
    layer, x = make(), torch.randn(*shape)
    out = layer(x)
    torch.testing.assert_close(out, layer(x[None])[0])
    assert out.dim() == x.dim()
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}: x must be \(B, .*\) or unbatched"):
        layer(x[0])


def test_conv_transpose2d_output_size_of_an_unbatched_input():
    layer, x = SphericalConvTranspose2d(2, 3, 3, 2), torch.randn(2, 4, 8)
    assert layer(x, output_size=(3, 8, 16)).shape == nn.ConvTranspose2d(2, 3, 3, 2, 1)(x, (8, 16)).shape


@pytest.mark.parametrize("name", list(_LAYERS))
def test_fx_symbolic_trace_keeps_each_layer_one_call(name):
    """torch.fx traces a model of spherical layers (each one node, as nn.Conv2d is a leaf) and a layer
    itself; the traced GraphModules compute the model's output, also at another resolution."""
    make, shape = _LAYERS[name]
    torch.manual_seed(0)
    layer = make()
    channels = layer(torch.randn(1, *shape)).shape[1]
    norm = nn.BatchNorm2d(channels) if len(shape) == 3 else nn.BatchNorm3d(channels)
    model = nn.Sequential(layer, norm, nn.ReLU()).eval()
    traced, traced_layer = torch.fx.symbolic_trace(model), torch.fx.symbolic_trace(layer)
    calls = [n for n in traced.graph.nodes if n.op == "call_function"]
    assert len(calls) == 1 and calls[0].target.__module__.startswith("sphsal.nn")
    for x in (torch.randn(2, *shape), torch.randn(1, *shape[:-2], 16, 32)):
        torch.testing.assert_close(traced(x), model(x))
        torch.testing.assert_close(traced_layer(x), layer(x))
