"""Model registry (as timm does it): factories register by name, users build models by name.

Every registered model is an ``nn.Module`` with

* ``forward(**inputs) -> (B, 1, H, W)`` non-negative saliency,
* ``example_inputs(batch_size=1) -> dict`` of the forward's keyword tensors at the default size,
* ``prepare_inputs(batch) -> dict`` turning a collated batch of dataset items into those tensors,
* ``input_spec`` (:class:`InputSpec`), ``default_loss`` (a spec for
  :func:`sphsal.models.losses.build_loss`) and ``default_optimizer`` (a dict: ``name``, ``lr``, ...).

:func:`create_model` also records ``model.model_name`` and ``model.model_kwargs`` so a checkpoint can
say how to rebuild its model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = ["InputSpec", "register_model", "create_model", "list_models", "model_family"]

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


@dataclass(frozen=True)
class InputSpec:
    """What a model reads from a dataset item and what it returns.

    Attributes:
        clip_len: frames per input clip (1 for single-frame models).
        clip_mode: where the target frame sits in the clip: ``"end"`` (the last frame, causal) or
            ``"center"`` (frame ``clip_len // 2``, as STAViS); the dataset's ``clip_mode``.
        frame_size: ``(H, W)`` ERP size the frames are resized to.
        output_size: ``(H, W)`` of the predicted map.
        needs_audio_mel: the model reads log-mel features of the clip's audio.
        needs_aem: the model reads the clip's audio energy map (first-order ambisonics needed).
        needs_prev_saliency: the model reads the saliency map of the previous frame.
        audio_channels: the fewest audio channels the model accepts (0: no audio, 1: any audio,
            4: first-order ambiX for the AEM).
    """

    clip_len: int
    frame_size: tuple[int, int]
    output_size: tuple[int, int]
    clip_mode: str = "end"
    needs_audio_mel: bool = False
    needs_aem: bool = False
    needs_prev_saliency: bool = False
    audio_channels: int = 0


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``fn(**kwargs) -> nn.Module`` under ``name``; a duplicate name is an error."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _FACTORIES and _FACTORIES[name] is not fn:
            raise ValueError(f"a model named {name!r} is already registered")
        _FACTORIES[name] = fn
        return fn

    return decorator


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the model registered as ``name`` with the factory's keyword arguments."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    model = _FACTORIES[name](**kwargs)
    model.model_name = name
    model.model_kwargs = dict(kwargs)
    return model


def list_models() -> list[str]:
    """Names of the registered models, sorted."""
    return sorted(_FACTORIES)


def model_family(name: str) -> str:
    """The model a registered name is a variant of, whose size options it shares: the spherical
    ``<name>_sph`` -> ``<name>``, the AVS360 ablations -> ``avs360``, ``planar_unet`` -> ``spherical_unet``
    (other names are their own family)."""
    name = name.removesuffix("_sph")
    if name.startswith("avs360"):
        return "avs360"
    return "spherical_unet" if name == "planar_unet" else name
