"""Input checks shared by the audio modules: arrays or tensors in, the same kind out."""

from __future__ import annotations

import numpy as np
import torch


def as_signal(x, name: str, ndim: int | tuple[int, ...] = 2) -> torch.Tensor:
    """``x`` (numpy array, tensor or nested list) as a floating tensor, checked.

    Float64 and float32 inputs keep their dtype; anything else becomes float32. Raises ``ValueError``
    naming ``name`` when the number of dimensions is not ``ndim`` or a value is NaN or infinite.
    """
    t = torch.as_tensor(x) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if t.dim() not in allowed:
        shapes = " or ".join({1: "(samples,)", 2: "(channels, samples)"}.get(n, f"{n}-D") for n in allowed)
        raise ValueError(f"{name} must have shape {shapes}, got shape {tuple(t.shape)}")
    # A sum is NaN or infinite whenever an element is (the exact test runs only to confirm).
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def like_input(out: torch.Tensor, ref):
    """Return ``out`` as a numpy array when ``ref`` was not a tensor, else as a tensor."""
    return out if isinstance(ref, torch.Tensor) else out.detach().cpu().numpy()
