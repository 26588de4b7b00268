"""Numba CPU kernel of :func:`sphsal.audio.energy_map`'s map pass (kept apart so that importing
:mod:`sphsal.audio` does not import numba).

The tests check energy_map against per-sample beamforming in plain torch, the reference.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def beam_rows(coef, basis_t, rms, out):
    """``out[r] = f(max(coef[r] @ basis_t, 0))`` for every map row ``r``, ``f`` the square root when
    ``rms`` else the identity.

    ``coef`` ``(R, M)``, ``basis_t`` ``(M, W)`` and ``out`` ``(R, W)``, all float32 (the quadratic forms
    are evaluated in float32, as a float32 matmul would). Each row is summed in a scratch row that stays
    in L1 cache, four or five basis functions per sweep, and written to ``out`` once, finished. The
    clamp removes the rounding-level negatives that the exact, non-negative beam energies can take
    near a null.
    """
    zero = np.float32(0.0)
    n_m = coef.shape[1]
    acc = np.empty(out.shape[1], dtype=np.float32)
    for r in range(out.shape[0]):
        c0, b0 = coef[r, 0], basis_t[0]
        m = 1
        if n_m >= 5:
            c1, c2, c3, c4 = coef[r, 1], coef[r, 2], coef[r, 3], coef[r, 4]
            b1, b2, b3, b4 = basis_t[1], basis_t[2], basis_t[3], basis_t[4]
            for j in range(acc.shape[0]):
                acc[j] = c0 * b0[j] + ((c1 * b1[j] + c2 * b2[j]) + (c3 * b3[j] + c4 * b4[j]))
            m = 5
        else:
            for j in range(acc.shape[0]):
                acc[j] = c0 * b0[j]
        while m + 4 <= n_m:
            c1, c2, c3, c4 = coef[r, m], coef[r, m + 1], coef[r, m + 2], coef[r, m + 3]
            b1, b2, b3, b4 = basis_t[m], basis_t[m + 1], basis_t[m + 2], basis_t[m + 3]
            for j in range(acc.shape[0]):
                acc[j] += (c1 * b1[j] + c2 * b2[j]) + (c3 * b3[j] + c4 * b4[j])
            m += 4
        for k in range(m, n_m):
            c1, b1 = coef[r, k], basis_t[k]
            for j in range(acc.shape[0]):
                acc[j] += c1 * b1[j]
        row = out[r]
        if rms:
            for j in range(acc.shape[0]):
                row[j] = np.sqrt(max(acc[j], zero))
        else:
            for j in range(acc.shape[0]):
                row[j] = max(acc[j], zero)
