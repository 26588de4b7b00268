"""Saliency models by name: ``create_model("avs360")``, ``list_models()``.

Registered: ``avs360`` (and its ablations ``avs360_visual``, ``avs360_no_aem``), ``spherical_unet``
(and ``planar_unet``), ``aem_ecb``, and the baselines ``vinet``, ``avinet``, ``stavis`` (and
``stavis_visual``) and the visual-audio-face model ``mvva``, each with a spherical variant ``<name>_sph``
(:mod:`sphsal.models.spherical`). See :mod:`sphsal.models.registry` for the interface every model
follows, :mod:`sphsal.models.losses` for the training losses and :mod:`sphsal.models.checkpoints`
for saving and loading weights.
"""

from sphsal.models import aem_ecb, avinet, avs360, mvva, spherical_unet, stavis, vinet  # noqa: F401
from sphsal.models.checkpoints import load_checkpoint, load_original_checkpoint, save_checkpoint
from sphsal.models.losses import build_loss
from sphsal.models.registry import (
    InputSpec,
    create_model,
    list_models,
    model_family,
    model_options,
    register_model,
)

__all__ = [
    "InputSpec", "register_model", "create_model", "list_models", "model_family", "model_options",
    "build_loss", "save_checkpoint", "load_checkpoint", "load_original_checkpoint",
]
