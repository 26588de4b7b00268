import math

import numpy as np
import pytest
import torch

from sphsal.audio.ambisonics import convert_normalization, encode, rotate
from sphsal.audio.energy_map import (
    DECODERS,
    beam_weights,
    doa_intensity,
    energy_map,
    temporal_smooth,
    window_covariance,
)
from sphsal.audio.harmonics import sh_matrix
from sphsal.sphere import equirect_directions, great_circle_distance, rotate_equirect

SR, FPS = 8000, 10
PITCH = math.pi / 32  # one pixel pitch at 32 x 64


def _noise(n=SR // 5, seed=0):
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def _peak_direction(m):
    h, w = m.shape[-2:]
    az, el = equirect_directions(h, w, dtype=torch.float64)
    k = int(m.reshape(-1).argmax())
    return az.reshape(-1)[k], el.reshape(-1)[k]


def _directions():
    rng = np.random.default_rng(5)
    random = [(rng.uniform(-math.pi, math.pi), math.asin(rng.uniform(-1, 1))) for _ in range(12)]
    seam = [(math.pi - 0.01, 0.2), (-math.pi + 0.02, -0.3), (math.pi, 0.0), (-math.pi + 1e-4, 0.7)]
    poles = [(rng.uniform(-math.pi, math.pi), s * math.radians(rng.uniform(84, 90))) for s in (1, -1, 1, -1)]
    return random + seam + poles


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("order", [1, 3])
def test_peak_within_one_pixel_pitch(decoder, order):
    s = _noise()
    for az, el in _directions():
        m = energy_map(encode(s, az, el, order), SR, FPS, 32, 64, decoder)
        assert m.shape == (2, 32, 64) and m.dtype == torch.float32
        peak_az, peak_el = _peak_direction(m[0])
        assert float(great_circle_distance(peak_az, peak_el, az, el)) <= PITCH, (az, el)


def _two_largest_peaks(m, exclusion=math.radians(40)):
    az, el = equirect_directions(*m.shape, dtype=torch.float64)
    first = _peak_direction(m)
    masked = torch.where(great_circle_distance(az, el, *first) < exclusion, torch.tensor(-1.0), m.double())
    return first, _peak_direction(masked), masked.max()


@pytest.mark.parametrize(("order", "decoder", "sources"), [
    (1, "cardioid", [(0.5, 0.2), (0.5 - math.pi, -0.2)]),
    (3, "max_re", [(0.3, 0.1), (0.3 + math.pi / 2, -0.4)]),
])
def test_two_sources_give_two_peaks(order, decoder, sources):
    b = sum(encode(_noise(seed=i + 1), az, el, order) for i, (az, el) in enumerate(sources))
    m = energy_map(b, SR, FPS, 32, 64, decoder)[0]
    first, second, second_value = _two_largest_peaks(m)
    found = sorted((first, second), key=lambda d: float(great_circle_distance(*d, *sources[0])))
    for (az, el), (peak_az, peak_el) in zip(sources, found):
        assert float(great_circle_distance(peak_az, peak_el, az, el)) <= 2 * PITCH
    # A genuine second peak: comparable height, and a dip between the two sources.
    assert second_value > 0.6 * float(m.max())
    mid = torch.tensor(sources[0][0] + sources[1][0]) / 2, torch.tensor(0.0)
    az, el = equirect_directions(32, 64, dtype=torch.float64)
    dip = m.reshape(-1)[int(great_circle_distance(az, el, *mid).reshape(-1).argmin())]
    assert float(dip) < 0.9 * float(second_value)


def test_rotating_audio_and_video_together_keeps_alignment():
    h, w = 32, 64
    az0, el0 = 0.9, 0.35
    b = encode(_noise(), az0, el0, order=2)
    az, el = equirect_directions(h, w, dtype=torch.float64)
    video = torch.exp(-great_circle_distance(az, el, az0, el0) ** 2 / 0.02).float()  # the object
    for yaw, pitch, roll in [(5 * 2 * math.pi / w, 0.0, 0.0), (-2.0, 0.0, 0.0), (0.7, 0.4, -0.3)]:
        rotated_map = energy_map(rotate(b, yaw, pitch, roll), SR, FPS, h, w)[0]
        rotated_video = rotate_equirect(video, yaw, pitch, roll)
        audio_peak, video_peak = _peak_direction(rotated_map), _peak_direction(rotated_video)
        assert float(great_circle_distance(*audio_peak, *video_peak)) <= PITCH
        shift = yaw * w / (2 * math.pi)
        if pitch == 0.0 and roll == 0.0 and abs(shift - round(shift)) < 1e-9:
            # A whole-pixel yaw rolls the map exactly like the video (compared as energies: the
            # square root of float32 rounding near the beam's nulls would dominate an RMS comparison).
            rolled = rotate_equirect(energy_map(b, SR, FPS, h, w, quantity="energy")[0], yaw)
            torch.testing.assert_close(rotated_map ** 2, rolled, rtol=1e-4, atol=1e-5)


def _per_sample_baseline(b, sample_rate, fps, h, w, decoder, window=None):
    """Decode every sample to every pixel, square, average over each window: the straightforward way
    (mean power; float64)."""
    order = int(math.isqrt(b.shape[0])) - 1
    az, el = equirect_directions(h, w, dtype=torch.float64)
    y = beam_weights(order, az, el, decoder).reshape(h * w, -1)
    t_frames = int(b.shape[1] * fps // sample_rate)
    length = round((window or 1 / fps) * sample_rate)
    x = torch.as_tensor(b, dtype=torch.float64)
    maps = []
    for k in range(t_frames):
        start = int(math.floor((k + 0.5) * sample_rate / fps + 0.5)) - length // 2
        seg = torch.zeros(x.shape[0], length, dtype=torch.float64)
        lo, hi = max(start, 0), min(start + length, x.shape[1])
        seg[:, lo - start:hi - start] = x[:, lo:hi]
        maps.append(((y @ seg) ** 2).mean(dim=1).reshape(h, w))
    return torch.stack(maps).float()


@pytest.mark.parametrize(("order", "decoder", "window", "sample_rate", "fps", "size"), [
    (1, "cardioid", None, 8000, 10, (8, 16)),
    (2, "pwd", 0.1, 8000, 12, (8, 16)),  # 666.67 samples per frame: irregular window starts
    (3, "max_re", 0.05, 4410, 7.5, (8, 16)),
    (3, "pwd", None, 8000, 10, (5, 8)),  # narrower than 4N + 1 columns: identity azimuth basis
])
def test_matches_per_sample_beamforming(order, decoder, window, sample_rate, fps, size):
    rng = np.random.default_rng(order)
    b = rng.standard_normal(((order + 1) ** 2, int(0.5 * sample_rate))).astype(np.float32)
    m = energy_map(b, sample_rate, fps, *size, decoder, window, quantity="energy")
    torch.testing.assert_close(m, _per_sample_baseline(b, sample_rate, fps, *size, decoder, window),
                               rtol=1e-4, atol=1e-5)


def test_window_covariance_layout_and_padding():
    b = np.ones((4, 1000))
    cov = window_covariance(b, 1000, 10)  # 10 frames of 100 samples, windows inside the signal
    assert cov.shape == (10, 4, 4) and cov.dtype == torch.float64
    torch.testing.assert_close(cov, torch.ones(10, 4, 4, dtype=torch.float64))
    # A 0.3 s window around frame 0 (centre 50) covers [-100, 200): one third is zero padding.
    cov = window_covariance(b, 1000, 10, window=0.3)
    assert float(cov[0, 0, 0]) == pytest.approx(2 / 3) and float(cov[5, 0, 0]) == pytest.approx(1.0)
    # Frames past the end of the signal see zeros.
    cov = window_covariance(b, 1000, 10, num_frames=12)
    assert cov.shape == (12, 4, 4) and float(cov[11].abs().max()) == 0.0


@pytest.mark.parametrize(("seconds", "sample_rate", "fps", "expected"), [
    (1.0, 48000, 30, 30), (1.01, 48000, 30, 30), (2.0, 44100, 29.97, 59), (1.0, 44100, 24, 24),
])
def test_number_of_maps(seconds, sample_rate, fps, expected):
    b = np.zeros((4, round(seconds * sample_rate)), dtype=np.float32)
    assert energy_map(b, sample_rate, fps, 4, 8).shape == (expected, 4, 8)
    assert energy_map(b, sample_rate, fps, 4, 8, num_frames=3).shape == (3, 4, 8)


def test_rms_level_energy_and_normalisations():
    s = _noise(SR)
    b = encode(s, 0.0, 0.0, order=2)
    az, el = equirect_directions(16, 32, dtype=torch.float64)
    rms = energy_map(b, SR, FPS, 16, 32, "pwd")
    energy = energy_map(b, SR, FPS, 16, 32, "pwd", quantity="energy")
    torch.testing.assert_close(energy, rms ** 2, rtol=1e-5, atol=1e-6)
    # The beam gain on its own axis is exactly 1, so the peak RMS is close to the signal's RMS.
    for decoder in DECODERS:
        weights = beam_weights(2, az, el, decoder)
        on_axis = (weights * sh_matrix(2, az, el)).sum(-1)
        torch.testing.assert_close(on_axis, torch.ones(16, 32, dtype=torch.float64))
    frame_rms = np.sqrt((s[:SR // FPS].astype(np.float64) ** 2).mean())
    assert float(rms[0].max()) == pytest.approx(frame_rms, rel=0.02)
    n3d = convert_normalization(b, "sn3d", "n3d")
    from_n3d = energy_map(n3d, SR, FPS, 16, 32, "pwd", normalization="n3d", quantity="energy")
    torch.testing.assert_close(from_n3d, energy, rtol=1e-4, atol=1e-5)


def test_out_buffer_is_filled_and_returned():
    b = encode(_noise(), 0.2, 0.1)
    expected = energy_map(b, SR, FPS, 8, 16)
    buffer = torch.full((2, 8, 16), -1.0)
    result = energy_map(b, SR, FPS, 8, 16, out=buffer)
    assert result is buffer
    torch.testing.assert_close(buffer, expected)
    with pytest.raises(ValueError, match="out"):
        energy_map(b, SR, FPS, 8, 16, out=torch.zeros(3, 8, 16))


def test_temporal_smoothing():
    rng = np.random.default_rng(3)
    b = encode(rng.standard_normal(SR * 2).astype(np.float32) * np.repeat(rng.uniform(0.1, 2, 20), SR // 10),
               0.3, 0.1)
    raw = energy_map(b, SR, FPS, 8, 16, quantity="energy")
    smoothed = energy_map(b, SR, FPS, 8, 16, quantity="energy", smoothing=0.2)
    torch.testing.assert_close(smoothed, temporal_smooth(raw, 0.2 * FPS), rtol=1e-4, atol=1e-5)
    assert float(smoothed[:, 4, 8].std()) < float(raw[:, 4, 8].std())
    constant = torch.full((7, 3), 2.5)
    torch.testing.assert_close(temporal_smooth(constant, 1.5), constant)
    assert temporal_smooth(constant, 0) is constant


def test_non_ambisonic_input():
    stereo = np.zeros((2, SR), dtype=np.float32)
    with pytest.raises(ValueError, match="stereo") as err:
        energy_map(stereo, SR, FPS, 8, 16)
    assert "'b'" in str(err.value) and "not ambisonic" in str(err.value)
    with pytest.raises(ValueError, match="mono"):
        energy_map(np.zeros((1, SR)), SR, FPS, 8, 16)
    with pytest.warns(UserWarning, match="stereo"):
        m = energy_map(stereo, SR, FPS, 8, 16, on_non_ambisonic="uniform")
    assert m.shape == (FPS, 8, 16) and bool((m == 1).all())


def test_bad_values():
    b = np.zeros((4, SR), dtype=np.float32)
    b[2, 100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        energy_map(b, SR, FPS, 8, 16)
    with pytest.raises(ValueError, match="decoder"):
        energy_map(np.zeros((4, SR)), SR, FPS, 8, 16, decoder="hrtf")
    with pytest.raises(ValueError, match="fps"):
        energy_map(np.zeros((4, SR)), SR, 0, 8, 16)
    with pytest.raises(ValueError, match="window"):
        energy_map(np.zeros((4, SR)), SR, FPS, 8, 16, window=-1.0)
    with pytest.raises(ValueError, match="smoothing"):
        energy_map(np.zeros((4, SR)), SR, FPS, 8, 16, smoothing=-0.5)
    with pytest.raises(ValueError, match="normalization"):
        energy_map(np.zeros((4, SR)), SR, FPS, 8, 16, normalization="fuma")


@pytest.mark.parametrize("order", [1, 3])
def test_doa_intensity(order):
    rng = np.random.default_rng(order)
    for az, el in [(0.4, 0.2), (-2.5, -0.9), (math.pi - 0.05, 1.2)]:
        doa = doa_intensity(encode(_noise(seed=2), az, el, order), SR, FPS)
        assert doa.shape == (2, 2) and doa.dtype == torch.float32
        assert float(great_circle_distance(doa[:, 0].double(), doa[:, 1].double(), az, el).max()) < 1e-4
    silent = doa_intensity(np.zeros((4, SR)), SR, FPS)
    assert bool((silent == 0).all())
    del rng


@pytest.mark.parametrize("quantity", ["rms", "energy"])
def test_beam_rows_kernel_matches_torch(quantity):
    from sphsal.audio._kernels import beam_rows

    rng = np.random.default_rng(11)
    for terms in range(1, 15):  # every split into the kernel's sweeps of five, four and one terms
        coef = torch.from_numpy(rng.standard_normal((7, terms)).astype(np.float32))
        basis_t = torch.from_numpy(rng.standard_normal((terms, 24)).astype(np.float32))
        out = torch.full((7, 24), float("nan"))
        beam_rows(coef.numpy(), basis_t.numpy(), quantity == "rms", out.numpy())
        expected = (coef.double() @ basis_t.double()).clamp_min(0.0)
        if quantity == "rms":
            expected = expected.sqrt()
        torch.testing.assert_close(out, expected.float(), rtol=1e-5, atol=1e-5)


def test_map_size_durations_and_frame_counts_are_checked():
    b = np.zeros((4, SR), dtype=np.float32)
    with pytest.raises(ValueError, match="height.*16.0"):
        energy_map(b, SR, FPS, 16.0, 32)
    for name, bound in (("window", ">"), ("smoothing", ">=")):
        message = rf"{name} must be None or a finite number {bound} 0 \(seconds\), got inf"
        with pytest.raises(ValueError, match=message):
            energy_map(b, SR, FPS, 8, 16, **{name: float("inf")})
    for frames in (2.5, -1, True):
        with pytest.raises(ValueError, match="num_frames"):
            energy_map(b, SR, FPS, 8, 16, num_frames=frames)
    with pytest.raises(ValueError, match="sigma"):
        temporal_smooth(torch.zeros(3, 2), float("inf"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_very_loud_and_very_quiet_signals_give_finite_scaled_maps(dtype):
    b = encode(_noise(seed=4), 0.7, -0.2, order=1).astype(dtype)
    reference = energy_map(b, SR, FPS, 8, 16)
    for scale in (1e30, 1e-30):
        maps = energy_map(b * dtype(scale), SR, FPS, 8, 16)
        assert bool(torch.isfinite(maps).all()) and bool((maps >= 0).all())
        # (near the beam nulls float32 cancellation leaves absolute errors of ~1e-4 of the peak)
        torch.testing.assert_close(maps / scale, reference, rtol=1e-4, atol=2e-4 * float(reference.max()))
    with pytest.raises(ValueError, match="too large for float32"):
        energy_map(b * dtype(1e30), SR, FPS, 8, 16, quantity="energy")


def test_temporal_smoothing_wider_than_the_sequence_is_its_mean():
    """A sigma of many times the sequence's length (sphsal aem --smoothing 1e9 tried to allocate a
    190 GB kernel) averages every frame into every frame."""
    x = torch.rand(6, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(temporal_smooth(x, 1e12), x.mean(dim=0, keepdim=True).expand_as(x))
