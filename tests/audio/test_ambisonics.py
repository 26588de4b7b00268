import math

import numpy as np
import pytest
import torch

from sphsal.audio.ambisonics import (
    ambix_to_fuma,
    convert_normalization,
    encode,
    fuma_to_ambix,
    require_ambisonic,
    rotate,
    sh_rotation_matrix,
)
from sphsal.audio.harmonics import sh_matrix
from sphsal.sphere import rotate_directions


def test_encode_first_order_gains_fixed_source():
    rng = np.random.default_rng(0)
    s = rng.standard_normal(100).astype(np.float32)
    for az, el in [(0.0, 0.0), (1.2, 0.3), (-2.9, -1.1), (math.pi, 0.5)]:
        b = encode(s, az, el)
        assert isinstance(b, np.ndarray) and b.dtype == np.float32 and b.shape == (4, 100)
        gains = np.array([1, math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
        np.testing.assert_allclose(b, gains[:, None] * s[None, :], rtol=1e-6, atol=1e-7)


def test_encode_moving_source_and_tensor_input():
    s = torch.ones(50, dtype=torch.float64)
    az = torch.linspace(-3, 3, 50, dtype=torch.float64)
    el = torch.linspace(-1, 1, 50, dtype=torch.float64)
    b = encode(s, az, el, order=3)
    assert isinstance(b, torch.Tensor) and b.shape == (16, 50) and b.dtype == torch.float64
    torch.testing.assert_close(b, sh_matrix(3, az, el).T)
    with pytest.raises(ValueError, match="az"):
        encode(s, torch.zeros(7), 0.0)


def test_fuma_round_trip_exact():
    rng = np.random.default_rng(1)
    ambix = rng.standard_normal((4, 64))
    fuma = ambix_to_fuma(ambix)
    np.testing.assert_array_equal(fuma[1], ambix[3])  # X
    np.testing.assert_array_equal(fuma[2], ambix[1])  # Y
    np.testing.assert_array_equal(fuma[3], ambix[2])  # Z
    np.testing.assert_allclose(fuma[0], ambix[0] / math.sqrt(2), rtol=1e-15)
    np.testing.assert_allclose(fuma_to_ambix(fuma), ambix, rtol=1e-15, atol=0)
    # A FuMa-encoded plane wave converts to the ambiX encoding of the same direction.
    s = rng.standard_normal(32)
    az, el = 0.7, -0.2
    fuma_wave = np.stack([s / math.sqrt(2), math.cos(az) * math.cos(el) * s,
                          math.sin(az) * math.cos(el) * s, math.sin(el) * s])
    np.testing.assert_allclose(fuma_to_ambix(fuma_wave), encode(s, az, el), atol=1e-12)
    with pytest.raises(ValueError, match="4 channels"):
        fuma_to_ambix(np.zeros((9, 4)))


@pytest.mark.parametrize("order", [1, 2, 3])
def test_rotation_matches_reencoding(order):
    rng = np.random.default_rng(order)
    s = rng.standard_normal(16)
    for yaw, pitch, roll in [(0.4, 0.0, 0.0), (0.0, 0.9, 0.0), (0.0, 0.0, -1.3), (2.1, -0.6, 0.8)]:
        az, el = rng.uniform(-math.pi, math.pi), rng.uniform(-1.4, 1.4)
        new_az, new_el = rotate_directions(torch.tensor(az, dtype=torch.float64),
                                           torch.tensor(el, dtype=torch.float64), yaw, pitch, roll)
        rotated = rotate(encode(s, az, el, order), yaw, pitch, roll)
        np.testing.assert_allclose(rotated, encode(s, float(new_az), float(new_el), order), atol=1e-12)


def test_rotation_matrix_properties():
    m = sh_rotation_matrix(3, 0.3, 1.1, -0.4)
    inverse = sh_rotation_matrix(3, 0.0, 0.0, 0.4) @ sh_rotation_matrix(3, 0.0, -1.1, 0.0) \
        @ sh_rotation_matrix(3, -0.3, 0.0, 0.0)
    torch.testing.assert_close(inverse @ m, torch.eye(16, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(sh_rotation_matrix(2), torch.eye(9, dtype=torch.float64), rtol=0, atol=1e-13)
    # Degrees do not mix, W is untouched.
    assert m[0, 0] == pytest.approx(1.0) and float(m[0, 1:].abs().max()) < 1e-14
    assert float(m[1:4, 4:].abs().max()) == 0.0


@pytest.mark.parametrize("order", [-1, 1.5, "2", None])
def test_rotation_matrix_names_a_bad_order(order):
    # numpy's leggauss raised "deg must be a positive integer" (or a TypeError) without naming order
    with pytest.raises(ValueError, match="order must be an integer >= 0"):
        sh_rotation_matrix(order)


def test_rotation_keeps_float32_tensors():
    b = torch.randn(9, 10)
    out = rotate(b, yaw=0.5)
    assert out.dtype == torch.float32 and out.shape == (9, 10)
    # Yaw leaves W and Z (ACN 2) unchanged.
    torch.testing.assert_close(out[[0, 2]], b[[0, 2]])


def test_convert_normalization_round_trip():
    b = np.random.default_rng(2).standard_normal((16, 8))
    n3d = convert_normalization(b, "sn3d", "n3d")
    np.testing.assert_allclose(n3d[4:9], b[4:9] * math.sqrt(5))
    np.testing.assert_allclose(convert_normalization(n3d, "n3d", "sn3d"), b)


@pytest.mark.parametrize(("channels", "word"), [(1, "mono"), (2, "stereo"), (6, "6-channel")])
def test_require_ambisonic_errors(channels, word):
    with pytest.raises(ValueError, match=word) as err:
        require_ambisonic(np.zeros((channels, 10)), "audio")
    assert "'audio'" in str(err.value) and "not ambisonic" in str(err.value)
    with pytest.raises(ValueError, match="clip.wav"):
        require_ambisonic(np.zeros((channels, 10)), path="/data/clip.wav")


def test_require_ambisonic_orders_and_shape():
    assert require_ambisonic(np.zeros((4, 3))) == 1
    assert require_ambisonic(torch.zeros(16, 3)) == 3
    with pytest.raises(ValueError, match="shape"):
        require_ambisonic(np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        rotate(np.full((4, 3), np.nan), 0.1)
