import pytest
import torch

from sphsal.models.backbones.resnet3d import BasicBlock3d, resnet3d18, scaled_widths, shortcut_a


def test_published_feature_grid_for_16x256x320_clips():
    net = resnet3d18(width_mult=1 / 16)
    out = net(torch.randn(1, 3, 16, 256, 320))
    assert out.shape == (1, 32, 1, 8, 10)
    assert net.out_channels == 32


def test_resnet18_layout_and_published_parameter_names():
    net = resnet3d18()
    names = set(net.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer4.1.bn2.weight"} <= names
    assert not any("downsample" in n for n in names)  # type-A shortcut: no parameters
    assert [len(getattr(net, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]
    assert net.conv1.weight.shape == (64, 3, 7, 7, 7)
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(33.2e6, rel=0.01)


def test_shortcut_a_subsamples_and_zero_pads_channels():
    x = torch.randn(2, 3, 5, 6, 7)
    y = shortcut_a(x, 8, 2)
    assert y.shape == (2, 8, 3, 3, 4)
    assert torch.equal(y[:, :3], x[:, :, ::2, ::2, ::2])
    assert torch.count_nonzero(y[:, 3:]) == 0


def test_basic_block_identity_path_when_convs_output_zero():
    block = BasicBlock3d(4, 4)
    torch.nn.init.zeros_(block.bn2.weight)
    x = torch.rand(1, 4, 3, 5, 5)
    assert torch.allclose(block(x), x)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="width_mult"):
        scaled_widths(0)
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        resnet3d18(width_mult=1 / 16)(torch.randn(3, 16, 32, 32))
