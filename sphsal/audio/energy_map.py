"""Audio energy maps (AEM): the loudness of beams steered at every ERP pixel, one map per video frame.

For video frame ``k`` (interval ``[k/fps, (k+1)/fps)``) the analysis window is centred on the
interval's centre, sample ``c_k = round((k + 0.5) * sample_rate / fps)``, and spans ``L`` samples
``[c_k - L // 2, c_k - L // 2 + L)``; ``L`` is one frame (``round(sample_rate / fps)``) by default or
``round(window * sample_rate)`` (AVS360 used 0.1 s). Samples outside the signal count as zeros (the
window is zero-padded and still divided by ``L``), so the first and last maps of a signal are quieter,
never shifted.

Each window's channel covariance ``C_k = X_k X_k^T / L`` ``(channels x channels)`` is computed with
batched matmuls, and the beam energy at a pixel with decoder vector ``y`` is ``y^T C_k y``: the mean
power of the beam signal ``y . b(t)`` over the window. The quadratic forms are evaluated row by row of
the ERP grid as trigonometric polynomials in azimuth (see ``_beam_plan``) by a numba kernel that finishes
each map row (clamp, square root) in cache and writes it once (``_kernels.beam_rows``). The cost is
``samples x channels^2`` plus about ``frames x pixels x 4N``, never ``samples x pixels``.

Decoders (beam pattern ``sum_l c_l P_l(cos gamma)`` around the steering direction, ``c_l`` normalised
so that a unit plane wave from the steering direction gives exactly 1):

* ``"cardioid"`` (default): in-phase weights ``g_l = N! (N+1)! / ((N+l+1)! (N-l)!)``, the pattern
  ``((1 + cos gamma) / 2)^N``. At first order this is the virtual cardioid ``(W + d . (X, Y, Z)) / 2``
  that AVS360's "SN3D projection" decoding gives; at higher orders a higher-order cardioid with no
  side lobes.
* ``"max_re"``: max-rE weights ``g_l = P_l(cos(137.9 deg / (N + 1.51)))`` (Zotter and Frank's
  approximation): narrower main lobe, small side lobes.
* ``"pwd"``: plane-wave decomposition (basic decoding, ``g_l = 1``): the narrowest main lobe, largest
  side lobes.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from sphsal._checks import check_integer, check_number
from sphsal.audio._signal import as_signal
from sphsal.audio.ambisonics import require_ambisonic
from sphsal.audio.harmonics import acn_degrees, normalization_gains, sh_matrix
from sphsal.audio.timing import check_num_frames, check_rates, frame_sample_positions, num_video_frames
from sphsal.sphere import equirect_directions, vectors_to_directions

__all__ = [
    "DECODERS",
    "decoder_degree_weights",
    "beam_weights",
    "window_covariance",
    "temporal_smooth",
    "energy_map",
    "doa_intensity",
]

DECODERS = ("cardioid", "max_re", "pwd")

# Elements gathered per chunk of windows (bounds memory on long signals).
_CHUNK_ELEMENTS = 1 << 20


def decoder_degree_weights(order: int, decoder: str = "cardioid") -> torch.Tensor:
    """Per-degree beam weights ``c_l = g_l (2l + 1) / sum_l' g_l' (2l' + 1)``, float64 ``(order + 1,)``.

    ``g_l`` are the decoder's modal weights (see the module docstring); the normalisation makes the
    on-axis gain of the beam exactly 1.
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    n = order
    degrees = np.arange(n + 1)
    if decoder == "pwd":
        g = np.ones(n + 1)
    elif decoder == "cardioid":
        g = np.array([math.factorial(n) * math.factorial(n + 1)
                      / (math.factorial(n + deg + 1) * math.factorial(n - deg)) for deg in degrees])
    else:
        x = math.cos(math.radians(137.9) / (n + 1.51))
        g = np.array([np.polynomial.legendre.Legendre.basis(int(deg))(x) for deg in degrees])
    c = g * (2 * degrees + 1)
    return torch.as_tensor(c / c.sum(), dtype=torch.float64)


def beam_weights(order: int, az, el, decoder: str = "cardioid", normalization: str = "sn3d") -> torch.Tensor:
    """Decoder vectors ``y`` ``(..., (order + 1)^2)`` float64 of beams steered at ``(az, el)`` (radians).

    The beam signal is ``y . b(t)`` for a field ``b`` in ACN order with the given ``normalization``.
    """
    c = decoder_degree_weights(order, decoder)[acn_degrees(order)]
    to_sn3d = normalization_gains(order, normalization, "sn3d")
    return sh_matrix(order, az, el, "sn3d").to(torch.float64) * (c * to_sn3d)


@functools.lru_cache(maxsize=8)
def _beam_plan(order: int, height: int, width: int, decoder: str, normalization: str,
               dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(A, B^T, rows, cols)`` such that ``y^T C y`` at pixel ``(i, j)`` is
    ``sum_m (C[rows, cols] @ A)[i * M + m] * B^T[m, j]``.

    ``C[rows, cols]`` lists the ``K = C (C + 1) / 2`` upper-triangle covariance entries (the quadratic
    form weights off-diagonal ones twice). Along an ERP row the decoder weights are trigonometric
    polynomials of degree ``N`` in azimuth, so each product ``y_p y_q`` is one of degree ``2N``: ``B``
    ``(W, M)`` holds the ``M = 4N + 1`` functions ``1, cos az, sin az, ..., cos 2N az, sin 2N az`` at
    the row's columns and ``A`` ``(K, H * M)`` the exact per-row coefficients (least squares in
    float64, exact while ``W >= M``; narrower maps use the identity basis, ``M = W``). The cost per
    frame is ``K H M + H M W`` instead of ``K H W``.
    """
    az, el = equirect_directions(height, width, dtype=torch.float64)
    y = beam_weights(order, az, el, decoder, normalization)  # (H, W, C)
    rows, cols = torch.triu_indices(y.shape[-1], y.shape[-1])
    q = y[..., rows] * y[..., cols] * torch.where(rows == cols, 1.0, 2.0).to(torch.float64)  # (H, W, K)
    if width >= 4 * order + 1:
        k = torch.arange(1, 2 * order + 1, dtype=torch.float64)
        phase = az[0, :, None] * k
        basis = torch.cat((torch.ones(width, 1, dtype=torch.float64), torch.cos(phase), torch.sin(phase)), 1)
    else:
        basis = torch.eye(width, dtype=torch.float64)
    coef = torch.linalg.pinv(basis) @ q  # (H, M, K)
    a = coef.permute(2, 0, 1).reshape(q.shape[-1], -1)
    return a.to(dtype).contiguous(), basis.T.to(dtype).contiguous(), rows, cols


def window_covariance(b, sample_rate, fps, num_frames: int | None = None,
                      window: float | None = None) -> torch.Tensor:
    """Channel covariance of each video frame's analysis window (see the module docstring).

    Args:
        b: ``(channels, samples)`` signal (any channel count).
        sample_rate: Hz. fps: video frames per second.
        num_frames: number of windows ``T``; default ``floor(duration * fps)``.
        window: window length in seconds; default one video frame.

    Returns:
        ``(T, channels, channels)`` in the dtype of ``b`` (float32 or float64): ``X_k X_k^T / L``.
    """
    x = as_signal(b, "b")
    window = _check_framing(sample_rate, fps, num_frames, window)
    return _covariance(x, sample_rate, fps, num_frames, window)


def _check_framing(sample_rate, fps, num_frames, window) -> float | None:
    """``window`` as a float (or None); ``ValueError`` naming the argument for bad rates, ``num_frames``
    or ``window``."""
    check_rates(sample_rate, fps)
    check_num_frames(num_frames)
    return check_number(window, "window", unit="seconds", optional=True)


def _covariance(x: torch.Tensor, sample_rate, fps, num_frames: int | None,
                window: float | None) -> torch.Tensor:
    """:func:`window_covariance` on a checked ``(channels, samples)`` tensor."""
    n = x.shape[1]
    t_frames = num_video_frames(n, sample_rate, fps) if num_frames is None else int(num_frames)
    length = max(1, round((window if window is not None else 1.0 / fps) * sample_rate))
    starts = frame_sample_positions(t_frames, sample_rate, fps, 0.5) - length // 2
    channels = x.shape[0]
    out = torch.zeros(t_frames, channels, channels, dtype=x.dtype)
    chunk = max(1, _CHUNK_ELEMENTS // (channels * length))
    for first in range(0, t_frames, chunk):
        chunk_starts = starts[first:first + chunk]
        lo = int(chunk_starts[0])
        segment = _excerpt(x, lo, int(chunk_starts[-1]) + length)
        rel = chunk_starts - lo
        steps = np.diff(rel)
        step = int(steps[0]) if len(rel) > 1 else 1
        if step > 0 and (steps == step).all():
            # Evenly spaced windows (integer samples per frame): a strided view, no gather.
            frames = segment.unfold(1, length, step)[:, :len(rel)].permute(1, 0, 2)  # (t, C, L)
            out[first:first + len(rel)] = frames @ frames.transpose(1, 2)
        else:
            # Every window start as a strided view, then pick the wanted starts (copies L-long rows).
            frames = segment.unfold(1, length, 1)[:, torch.from_numpy(rel)].permute(1, 0, 2)  # (t, C, L)
            out[first:first + len(rel)] = frames @ frames.transpose(1, 2)
    return out / length


def _excerpt(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """``x[:, lo:hi]`` with zeros where the range leaves the signal; a view when it stays inside."""
    n = x.shape[1]
    if lo >= 0 and hi <= n:
        return x[:, lo:hi]
    out = x.new_zeros(x.shape[0], hi - lo)
    a, b = max(lo, 0), min(hi, n)
    if b > a:
        out[:, a - lo:b - lo] = x[:, a:b]
    return out


def temporal_smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of ``x`` ``(T, ...)`` along its first (time) dimension.

    ``sigma`` is in frames (truncated at 3 sigma). Near the ends the kernel is cut off and renormalised,
    so a constant sequence stays constant. ``sigma = 0`` returns ``x`` unchanged.
    """
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a non-negative finite number of frames, got {sigma!r}")
    # Taps beyond the sequence's length never meet a sample (the cut-off kernel is renormalised), so a
    # radius over T - 1 changes nothing; capped, a huge sigma does not allocate a huge kernel.
    radius = min(int(math.ceil(3 * sigma)), max(x.shape[0] - 1, 0))
    if radius == 0 or x.shape[0] == 0:
        return x
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2).to(x.dtype)
    flat = x.reshape(x.shape[0], -1).T.unsqueeze(1)  # (features, 1, T)
    smoothed = F.conv1d(flat, kernel.view(1, 1, -1), padding=radius)
    norm = F.conv1d(torch.ones_like(flat[:1]), kernel.view(1, 1, -1), padding=radius)
    return (smoothed / norm).squeeze(1).T.reshape(x.shape)


def energy_map(b, sample_rate, fps, height: int, width: int, decoder: str = "cardioid",
               window: float | None = None, *, num_frames: int | None = None,
               smoothing: float | None = None, quantity: str = "rms", normalization: str = "sn3d",
               on_non_ambisonic: str = "error", out: torch.Tensor | None = None) -> torch.Tensor:
    """Audio energy map of an ambisonic signal: one ERP map per video frame.

    Args:
        b: ``(channels, samples)`` ambisonic field, ACN order, ``(N+1)^2`` channels (``N >= 1``).
        sample_rate: Hz. fps: video frames per second.
        height, width: ERP map size, positive integers (pixel centres from
            :func:`sphsal.sphere.equirect_directions`).
        decoder: ``"cardioid"`` (default), ``"max_re"`` or ``"pwd"`` (module docstring).
        window: analysis window in seconds (positive, finite), centred on each frame's interval;
            default one frame.
        num_frames: number of maps ``T`` (a non-negative integer); default ``floor(duration * fps)``.
            Frames past the end of the signal see zeros.
        smoothing: optional Gaussian smoothing over frames, sigma in seconds (non-negative, finite;
            applied to the window covariances, which is the same as smoothing the energy maps).
        quantity: ``"rms"`` (default; the beam's root-mean-square amplitude, as AVS360) or
            ``"energy"`` (mean power, the square of the RMS).
        normalization: normalisation of ``b``: ``"sn3d"`` (ambiX), ``"n3d"`` or ``"orthonormal"``.
        on_non_ambisonic: ``"error"`` (default) raises ``ValueError`` for mono, stereo or other
            non-ambisonic channel counts; ``"uniform"`` warns and returns maps of ones (uniform, so
            after max-normalisation they carry no spatial information).
        out: optional contiguous float32 ``(T, H, W)`` tensor to write the maps into and return, so
            that processing a long video chunk by chunk reuses one buffer (the first touch of fresh
            memory is a large part of the cost at first order).

    Returns:
        ``(T, H, W)`` float32 tensor, non-negative and finite. A single source of RMS ``s`` gives RMS
        ``s`` in the beam steered at it (the on-axis gain is 1 for every decoder), up to zero padding at
        the signal ends. Signals with a peak outside ``[1e-12, 1e12]`` are analysed at unit peak and the
        maps rescaled, so float32 neither overflows nor underflows; maps too large for float32 (the
        energy of a signal near float32's limits) raise ``ValueError``.
    """
    if quantity not in ("rms", "energy"):
        raise ValueError(f"quantity must be 'rms' or 'energy', got {quantity!r}")
    if on_non_ambisonic not in ("error", "uniform"):
        raise ValueError(f"on_non_ambisonic must be 'error' or 'uniform', got {on_non_ambisonic!r}")
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    smoothing = check_number(smoothing, "smoothing", inclusive=True, unit="seconds", optional=True)
    x = as_signal(b, "b")
    window = _check_framing(sample_rate, fps, num_frames, window)
    height, width = check_integer(height, "height"), check_integer(width, "width")
    try:
        order = require_ambisonic(x, "b")
    except ValueError as err:
        if on_non_ambisonic == "error":
            raise
        warnings.warn(f"{err}; returning a uniform energy map", stacklevel=2)
        t_frames = num_video_frames(x.shape[1], sample_rate, fps) if num_frames is None else num_frames
        return _output(out, int(t_frames), height, width).fill_(1.0)
    scale = _amplitude_scale(x)
    cov = _covariance((x / scale if scale != 1.0 else x).to("cpu", torch.float32), sample_rate, fps,
                      num_frames, window)
    if smoothing:
        cov = temporal_smooth(cov, smoothing * fps)
    a, basis_t, rows, cols = _beam_plan(order, int(height), int(width), decoder, normalization, torch.float32)
    coef = (cov[:, rows, cols] @ a).view(-1, basis_t.shape[0])  # (T * H, M) per-row coefficients
    out = _output(out, cov.shape[0], height, width)
    from sphsal.audio._kernels import beam_rows  # numba: imported on first use, not with sphsal.audio

    beam_rows(coef.numpy(), basis_t.numpy(), quantity == "rms", out.view(-1, width).numpy())
    if scale != 1.0:
        _rescale_maps(out, scale if quantity == "rms" else scale * scale, scale)
    return out


#: Signals whose peak amplitude lies in this range give float32 covariances that neither overflow nor
#: underflow; others are computed at unit peak and the maps rescaled (:func:`_amplitude_scale`).
_SAFE_PEAK = (1e-12, 1e12)


def _amplitude_scale(x: torch.Tensor) -> float:
    """1 for a signal ``(channels, samples)`` whose peak is in :data:`_SAFE_PEAK` (or silent), else its
    peak: dividing by it keeps the float32 covariance of very loud (or very quiet) signals finite."""
    peak = float(x.abs().max()) if x.numel() else 0.0
    return 1.0 if peak == 0.0 or _SAFE_PEAK[0] <= peak <= _SAFE_PEAK[1] else peak


def _rescale_maps(out: torch.Tensor, factor: float, peak: float) -> None:
    """Multiply the maps computed at unit peak by ``factor`` in place; ``ValueError`` when the result
    does not fit in float32 (the energy of a signal near float32's largest values)."""
    out.mul_(factor)
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"b's peak amplitude {peak:.3g} is too large for float32 energy maps; scale the "
                         "signal down (or use quantity='rms')")


def _output(out: torch.Tensor | None, frames: int, height: int, width: int) -> torch.Tensor:
    """``out`` checked as a contiguous float32 CPU ``(frames, height, width)`` tensor, or a new one.

    A new one is allocated by numpy, which asks Linux for transparent huge pages on large arrays: the
    first touch of the maps then faults one 2 MB page instead of 512 small ones, and that first touch
    was most of energy_map's time at first order.
    """
    if out is None:
        return torch.from_numpy(np.empty((frames, height, width), dtype=np.float32))
    if out.shape != (frames, height, width) or out.dtype != torch.float32 or not out.is_contiguous() \
            or out.device.type != "cpu":
        raise ValueError(f"out must be a contiguous float32 CPU tensor of shape {(frames, height, width)}, "
                         f"got {out.dtype} {tuple(out.shape)} on {out.device}")
    return out


def doa_intensity(b, sample_rate, fps, window: float | None = None, *,
                  num_frames: int | None = None) -> torch.Tensor:
    """Direction of arrival per video frame from the pseudo-intensity vector.

    The pseudo-intensity of frame ``k``'s window (same windows as :func:`energy_map`) is the mean of
    ``W(t) * (X(t), Y(t), Z(t))`` over the window, using the first-order channels of any order field
    (ACN 0..3 = W, Y, Z, X; valid for SN3D, N3D and orthonormal, which scale X, Y, Z alike). For a
    single plane wave it points at the source.

    Returns:
        ``(T, 2)`` float32: azimuth and elevation in radians (:mod:`sphsal.sphere` conventions). A
        silent window gives ``(0, 0)``.
    """
    x = as_signal(b, "b")
    require_ambisonic(x, "b")
    window = _check_framing(sample_rate, fps, num_frames, window)
    cov = _covariance(x[:4].to(torch.float64), sample_rate, fps, num_frames, window)
    intensity = torch.stack((cov[:, 0, 3], cov[:, 0, 1], cov[:, 0, 2]), dim=-1)
    az, el = vectors_to_directions(intensity)
    return torch.stack((az, el), dim=-1).to(torch.float32)
