"""Use SphericalConv2d in your own model, or convert an existing planar model.

Run: python examples/spherical_conv_in_your_model.py

Shows that (1) SphericalConv2d is a drop-in for nn.Conv2d (same parameters, planar weights load
unchanged), (2) rotating the ERP input about the polar axis by k columns rotates the output by k columns,
up to float32 rounding (about 1e-7: the seam at +-180 deg is not a border, while nn.Conv2d's zero
padding shows it), and (3) convert_to_spherical turns every Conv2d / ConvTranspose2d / MaxPool2d /
AvgPool2d of a model into its spherical twin, keeping the weights.
"""

import torch
from torch import nn

from sphsal.nn import SphericalConv2d, convert_to_spherical


def tiny_encoder_decoder(conv=nn.Conv2d) -> nn.Sequential:
    """A small planar CNN as you might already have one (3 -> 32 channels, two stride-2 steps, then a
    transposed convolution back up one step)."""
    return nn.Sequential(
        conv(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(2),
        conv(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
    )


def main() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 128)  # (B, C, H, W) ERP images, W = 2H

    # 1. Drop-in: the spherical layer takes the planar layer's weights as they are.
    planar = nn.Conv2d(3, 8, 3, padding=1)
    spherical = SphericalConv2d(3, 8, 3)
    spherical.load_state_dict(planar.state_dict())
    print("planar vs spherical output shapes:", tuple(planar(x).shape), tuple(spherical(x).shape))

    # 2. Rotation about the polar axis by k columns = rolling the output by k columns, up to rounding: the
    #    sums run in another order where the columns move (no bit-for-bit promise for float data).
    k = 37
    rolled_then_conv = spherical(torch.roll(x, k, dims=-1))
    conv_then_rolled = torch.roll(spherical(x), k, dims=-1)
    print("max |conv(roll x) - roll(conv x)|:", float((rolled_then_conv - conv_then_rolled).abs().max()))
    plain = planar(torch.roll(x, k, dims=-1)) - torch.roll(planar(x), k, dims=-1)
    print("same for nn.Conv2d with zero padding (the seam shows):", float(plain.abs().max()))

    # 3. Convert a whole model, keeping its weights.
    model = tiny_encoder_decoder()
    converted = convert_to_spherical(tiny_encoder_decoder())
    converted.load_state_dict(model.state_dict())
    kinds = sorted({type(m).__name__ for m in converted.modules() if "Spherical" in type(m).__name__})
    print("converted layers:", kinds, "output:", tuple(converted(x).shape))


if __name__ == "__main__":
    with torch.no_grad():
        main()
