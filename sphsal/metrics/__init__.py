"""Saliency metrics (planar and sphere-weighted) and ground-truth maps from fixations on the sphere.

Metrics are pure batched torch functions, prediction first, ``metric(pred, target, *, weights=None,
reduction="none")``, with the MIT saliency benchmark's definitions; ``weights="sphere"`` weights every ERP
pixel of the maps by its solid angle (fixations are samples and count once each: see
:mod:`sphsal.metrics.fixations`). Nothing is resized implicitly: use :func:`match_size`.
``backend="auto"`` runs the full-map passes with numba kernels on CPU tensors that need no gradient and
with the plain-torch reference otherwise (GPU tensors, autograd); ``"torch"`` / ``"numba"`` force one.

* Against a continuous map: :func:`cc`, :func:`kld`, :func:`sim`.
* Against fixations (binary map or ``(az, el)`` directions): :func:`nss`, :func:`auc_judd`,
  :func:`auc_borji`, :func:`auc_shuffled`, :func:`info_gain`.
* Ground truth: :func:`fixation_map`, :func:`density_from_fixations`, :data:`SIGMA`.
* Datasets: :class:`Evaluator` (streaming) and :func:`evaluate`.
"""

from sphsal.metrics._inputs import match_size
from sphsal.metrics.continuous import cc, kld, sim
from sphsal.metrics.density import SIGMA, density_from_fixations, fixation_map
from sphsal.metrics.evaluate import (
    DEFAULT_METRICS,
    METRICS,
    PRIOR_BASELINES,
    Evaluator,
    evaluate,
    read_categories,
)
from sphsal.metrics.fixations import auc_borji, auc_judd, auc_shuffled, info_gain, nss

__all__ = [
    "cc", "kld", "sim", "nss", "auc_judd", "auc_borji", "auc_shuffled", "info_gain",
    "match_size", "fixation_map", "density_from_fixations", "SIGMA",
    "Evaluator", "evaluate", "read_categories", "METRICS", "DEFAULT_METRICS", "PRIOR_BASELINES",
]
