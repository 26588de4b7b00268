"""Training losses for saliency models, combinable by a spec string.

Every loss is ``loss(pred, target, fixations=None) -> 0-d tensor`` to MINIMISE, averaged over the batch:

* ``kld``: KL divergence of the prediction from the ground truth (:func:`sphsal.metrics.kld`);
* ``cc``: minus the correlation coefficient (:func:`sphsal.metrics.cc`);
* ``nss``: minus the normalised scanpath saliency at the fixations (:func:`sphsal.metrics.nss`; needs
  ``fixations``);
* ``bce``: binary cross-entropy between the max-normalised maps (each map divided by its maximum, so
  a sum-normalised prediction and a ground truth of any scale compare as ``[0, 1]`` maps);
* ``bce_raw``: binary cross-entropy of the prediction as it is, a map of probabilities in ``[0, 1]``
  (a sigmoid output), against the max-normalised ground truth: unlike ``bce`` it constrains the
  prediction's level, not only its shape;
* ``sphere_mse``: mean squared error weighted by each ERP pixel's solid angle, against 10 x the
  max-normalised ground truth (the GTSD spherical U-Net's target scale);
* ``sphere_sse``: the same squared errors summed with the solid angles as weights, not divided by their
  total ``4 pi``: the GTSD code's ``SphereMSE``, whose scale its SGD learning rate was chosen for.

``pred`` is ``(B, 1, H, W)`` or ``(B, H, W)``, ``target`` and ``fixations`` the same size; nothing is
resized. ``fixations`` is read as a binary map: every non-zero pixel is one fixation, whatever its value
(a count map scores as its support). An empty map, or one holding NaN or infinite values, raises
``ValueError`` naming it (``pred``, ``target``, or ``fixations`` for ``nss``, which reads them instead of
``target``). The metrics compute in float64; the loss is returned in ``pred``'s dtype.
Specs: ``"kld"``, ``"kld+cc"``, ``"kld+0.5*cc"``, ``"0.1*bce+2*cc+nss"`` (a weight times a name, joined
by ``+``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
import torch.nn.functional as F

from sphsal.sphere import solid_angle_weights

__all__ = ["LOSSES", "SPHERE_MSE_TARGET_SCALE", "kld_loss", "cc_loss", "nss_loss", "bce_loss",
           "bce_raw_loss", "sphere_mse_loss", "CombinedLoss", "build_loss"]

#: ``sphere_mse`` compares the prediction with this multiple of the max-normalised ground truth.
SPHERE_MSE_TARGET_SCALE = 10.0


def _maps(x: torch.Tensor, name: str) -> torch.Tensor:
    """``(B, H, W)`` view of ``(B, 1, H, W)`` or ``(B, H, W)`` maps; ``ValueError`` naming ``name`` for
    another layout, an empty map and NaN or infinite values (as the metrics check)."""
    from sphsal.metrics._inputs import check_finite

    if x.dim() == 4 and x.shape[1] == 1:
        maps = x[:, 0]
    elif x.dim() == 3:
        maps = x
    else:
        raise ValueError(f"{name} must be (B, 1, H, W) or (B, H, W), got shape {tuple(x.shape)}")
    if maps.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    check_finite(maps, name)
    return maps


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, H, W)`` views of ``pred`` and ``target`` (in ``pred``'s dtype), checked by :func:`_maps`;
    ``ValueError`` unless their sizes match."""
    p, t = _maps(pred, "pred"), _maps(target, "target").to(pred.dtype)
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same (B, H, W) size, got {tuple(p.shape)} and "
                         f"{tuple(t.shape)} (resize the target to the model's output size)")
    return p, t


def _max_normalise(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return x / x.flatten(1).amax(dim=1).clamp_min(eps)[:, None, None]


def kld_loss(pred, target, fixations=None) -> torch.Tensor:
    """Batch mean of :func:`sphsal.metrics.kld` (ground truth first, MIT definition)."""
    from sphsal.metrics import kld

    p, t = _pair(pred, target)
    return kld(p, t, reduction="mean").to(pred.dtype)


def cc_loss(pred, target, fixations=None) -> torch.Tensor:
    """``-mean(cc)`` with :func:`sphsal.metrics.cc`."""
    from sphsal.metrics import cc

    p, t = _pair(pred, target)
    return -cc(p, t, reduction="mean").to(pred.dtype)


def nss_loss(pred, target, fixations=None) -> torch.Tensor:
    """``-mean(nss)`` with :func:`sphsal.metrics.nss` at ``fixations`` (required)."""
    from sphsal.metrics import nss

    if fixations is None:
        raise ValueError("the nss loss needs fixation maps: the dataset gives none; use kld, cc or bce")
    p = _maps(pred, "pred")
    return -nss(p, _maps(fixations, "fixations"), reduction="mean").to(pred.dtype)


def bce_loss(pred, target, fixations=None) -> torch.Tensor:
    """Binary cross-entropy of the max-normalised prediction against the max-normalised ground truth
    (per-pixel mean, then batch mean); the prediction is clamped to ``[1e-7, 1 - 1e-7]``."""
    p, t = _pair(pred, target)
    p = _max_normalise(p).clamp(1e-7, 1 - 1e-7)
    return F.binary_cross_entropy(p, _max_normalise(t).clamp(0, 1))


def bce_raw_loss(pred, target, fixations=None) -> torch.Tensor:
    """Binary cross-entropy of ``pred`` (probabilities in ``[0, 1]``, clamped to ``[1e-7, 1 - 1e-7]``
    for the logarithms; ``ValueError`` outside ``[0, 1]``) against the max-normalised ground truth
    (per-pixel mean, then batch mean)."""
    p, t = _pair(pred, target)
    if bool(((p < 0) | (p > 1)).any()):
        raise ValueError(f"the bce_raw loss needs a prediction in [0, 1] (e.g. a sigmoid output), got "
                         f"values in [{float(p.min()):.4g}, {float(p.max()):.4g}]; use bce for other maps")
    return F.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), _max_normalise(t).clamp(0, 1))


def sphere_sse_loss(pred, target, fixations=None) -> torch.Tensor:
    """Solid-angle weighted sum of squared errors: ``sum(w (p - 10 t')^2)`` with ``t'`` the
    max-normalised ground truth and ``w`` from :func:`sphsal.sphere.solid_angle_weights` (summing to
    ``4 pi``); batch mean. The GTSD spherical U-Net's ``SphereMSE`` (``smse.py``)."""
    p, t = _pair(pred, target)
    w = solid_angle_weights(*p.shape[-2:], dtype=p.dtype, device=p.device)
    err = (p - SPHERE_MSE_TARGET_SCALE * _max_normalise(t)) ** 2
    return (err * w).sum(dim=(-2, -1)).mean()


def sphere_mse_loss(pred, target, fixations=None) -> torch.Tensor:
    """Solid-angle weighted MSE: :func:`sphere_sse_loss` divided by the total solid angle ``4 pi``
    (``sum(w (p - 10 t')^2) / sum(w)``); batch mean."""
    return sphere_sse_loss(pred, target) / (4 * math.pi)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "kld": kld_loss,
    "cc": cc_loss,
    "nss": nss_loss,
    "bce": bce_loss,
    "bce_raw": bce_raw_loss,
    "sphere_mse": sphere_mse_loss,
    "sphere_sse": sphere_sse_loss,
}

_TERM = re.compile(r"^\s*(?:(?P<weight>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?(?P<name>[a-z_]+)\s*$")


class CombinedLoss:
    """A weighted sum of named losses; ``terms`` is a list of ``(weight, name)``."""

    def __init__(self, terms: list[tuple[float, str]]):
        self.terms = terms

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, fixations=None) -> torch.Tensor:
        total = None
        for weight, name in self.terms:
            value = weight * LOSSES[name](pred, target, fixations)
            total = value if total is None else total + value
        return total

    def __repr__(self) -> str:
        return "CombinedLoss(" + " + ".join(f"{w:g}*{n}" for w, n in self.terms) + ")"


def build_loss(spec: str) -> CombinedLoss:
    """Parse a spec such as ``"kld+0.5*cc"`` into a :class:`CombinedLoss`."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"loss spec must be a non-empty string such as 'kld+0.5*cc', got {spec!r}")
    terms = []
    for part in spec.split("+"):
        match = _TERM.match(part)
        if match is None:
            raise ValueError(f"cannot parse loss term {part!r} in {spec!r}; expected [weight*]name, "
                             f"e.g. 'kld+0.5*cc'")
        name = match["name"]
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r} in {spec!r}; known losses: {', '.join(LOSSES)}")
        terms.append((float(match["weight"]) if match["weight"] else 1.0, name))
    return CombinedLoss(terms)
