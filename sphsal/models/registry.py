"""Model registry (as timm does it): factories register by name, users build models by name.

Every registered model is an ``nn.Module`` with

* ``forward(**inputs) -> (B, 1, H, W)`` non-negative saliency,
* ``example_inputs(batch_size=1) -> dict`` of the forward's keyword tensors at the default size,
* ``prepare_inputs(batch) -> dict`` turning a collated batch of dataset items into those tensors,
* ``input_spec`` (:class:`InputSpec`), ``default_loss`` (a spec for
  :func:`sphsal.models.losses.build_loss`) and ``default_optimizer`` (a dict: ``name``, ``lr``, ...,
  optionally ``lr_scales`` for parts trained at other rates; see
  :func:`sphsal.engine.train.build_optimizer`).

:func:`create_model` also records ``model.model_name`` and ``model.model_kwargs`` so a checkpoint can
say how to rebuild its model. It refuses (``ValueError``) an option the model does not take, and a text
value for an option whose default is a number, a bool or a tuple (``width_mult="1/16"``). A registered
variant that fixes an option of its class (``vinet_sph``: ``spherical=True``) builds it with
:func:`build_variant`, which refuses a conflicting value.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real

from torch import nn

__all__ = ["InputSpec", "register_model", "create_model", "list_models", "model_family", "model_options",
           "build_variant", "keyword_options", "recorded_model_kwargs", "stored_model_kwargs"]

_FACTORIES: dict[str, Callable[..., nn.Module]] = {}
#: Per model name, the options whose default changed and their default before (see register_model).
_EARLIER_DEFAULTS: dict[str, dict] = {}


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
        needs_prev_saliency: the model reads the saliency map of an earlier frame, ...
        prev_saliency_interval: ... this many frames back (the dataset's ``prev_saliency``), ...
        prev_saliency_start: ... and, for a video's first frames, this map (``"zeros"`` or
            ``"centre"``, see :func:`sphsal.data.dataset.prev_saliency_start`).
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
    prev_saliency_interval: int = 1
    prev_saliency_start: str = "zeros"
    audio_channels: int = 0


def register_model(name: str, earlier_defaults: dict | None = None
                   ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``fn(**kwargs) -> nn.Module`` under ``name``; a duplicate name is an error.

    A factory that passes ``**kwargs`` on to a class should name it as its return annotation
    (``def vinet(**kwargs) -> ViNet``): :func:`create_model` checks the options against its signature.

    ``earlier_defaults``: options whose default changed, with their default before the change.
    :func:`create_model` records them in ``model_kwargs`` whether given or not, so keyword arguments
    stored without one (a checkpoint, a training config or a prediction record of an older sphsal) built
    the model with the earlier default, which :func:`stored_model_kwargs` fills in."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _FACTORIES and _FACTORIES[name] is not fn:
            raise ValueError(f"a model named {name!r} is already registered")
        _FACTORIES[name] = fn
        _EARLIER_DEFAULTS[name] = dict(earlier_defaults or {})
        return fn

    return decorator


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the model registered as ``name`` with the factory's keyword arguments (``ValueError`` for an
    unknown name, an option the model does not take or a text value for an option whose default is a
    number, a bool or a tuple)."""
    factory = _factory(name)
    _check_options(name, kwargs)
    model = factory(**kwargs)
    model.model_name = name
    model.model_kwargs = recorded_model_kwargs(name, kwargs)
    return model


def recorded_model_kwargs(name: str, kwargs: dict) -> dict:
    """``kwargs`` as :func:`create_model` records them: with the current default of each option of the
    model ``name`` whose default changed (see :func:`register_model`) that they do not give."""
    changed = _EARLIER_DEFAULTS.get(name, {})
    params = _builder_parameters(name) if changed else None
    current = {key: params[key].default for key in changed if key not in kwargs} if params else {}
    return {**current, **kwargs}


def stored_model_kwargs(name: str | None, kwargs: dict) -> dict:
    """Keyword arguments stored with a model ``name`` (a checkpoint's, a training config's) as they built
    it: an option whose default changed since (see :func:`register_model`) and that they lack takes its
    earlier default."""
    return {**_EARLIER_DEFAULTS.get(name, {}), **kwargs}


def build_variant(cls: Callable[..., nn.Module], name: str, kwargs: dict, **fixed) -> nn.Module:
    """``cls(**kwargs, **fixed)`` for the registered variant ``name``, which fixes the options ``fixed``:
    a value in ``kwargs`` that differs from a fixed one is a ``ValueError`` naming both."""
    for key, value in fixed.items():
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"{name} fixes {key}={value!r}; got {key}={kwargs[key]!r} (see `sphsal models` "
                             "for the registered variants)")
    return cls(**{**kwargs, **fixed})


def keyword_options(fn: Callable, skip: int = 0) -> tuple[set[str], bool]:
    """The names ``fn`` (a function or a class) takes by keyword, after its first ``skip`` positional
    parameters, and whether it also takes ``**kwargs``."""
    params, more = _parameters(fn, skip)
    return set(params), more


def model_options(name: str) -> set[str] | None:
    """The keyword options of the model registered as ``name``: its factory's named parameters or, for a
    factory that passes ``**kwargs`` on, those of the class its return annotation names (``None`` when
    they cannot be told). ``ValueError`` for an unknown name."""
    params = _builder_parameters(name)
    return None if params is None else set(params)


def _factory(name: str) -> Callable[..., nn.Module]:
    """The factory registered as ``name``; ``ValueError`` listing the registered names otherwise."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _FACTORIES[name]


def _parameters(fn: Callable, skip: int = 0) -> tuple[dict[str, inspect.Parameter], bool]:
    """``{name: parameter}`` that ``fn`` takes by keyword after ``skip`` positional ones, and whether it
    takes ``**kwargs``."""
    params = list(inspect.signature(fn).parameters.values())
    skipped = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD][:skip]
    named = {p.name: p for p in params
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skipped}
    return named, any(p.kind == p.VAR_KEYWORD for p in params)


def _builder_parameters(name: str) -> dict[str, inspect.Parameter] | None:
    """The parameters that build the model registered as ``name`` (see :func:`model_options`)."""
    factory = _factory(name)
    params, more = _parameters(factory)
    if not more:
        return params
    try:
        built = inspect.signature(factory, eval_str=True).return_annotation
    except NameError:
        return None
    if built is inspect.Signature.empty or not inspect.isclass(built):
        return None
    built_params, built_more = _parameters(built)
    return None if built_more else {**built_params, **params}


def _check_options(name: str, kwargs: dict) -> None:
    """``ValueError`` naming ``name`` and the option when ``kwargs`` holds an option the model does not
    take or a text value for an option whose default is neither text nor ``None`` (a number, a bool, a
    size tuple)."""
    params = _builder_parameters(name)
    if params is None:
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(f"{name}: unknown option {', '.join(unknown)}; it takes "
                         f"{', '.join(sorted(params)) or 'no options'}")
    for key, value in kwargs.items():
        default = params[key].default
        if default in (None, inspect.Parameter.empty) or isinstance(default, str):
            continue
        if not _matches_default(value, default):
            got = f"text {value!r}" if isinstance(value, str) else repr(value)
            raise ValueError(f"{name}: option {key} expects {_expected_kind(default)} like its default "
                             f"{default!r}, got {got}")


def _expected_kind(default) -> str:
    """What a value must be to replace ``default`` (see :func:`_matches_default`), in words."""
    if isinstance(default, bool):
        return "True or False"
    if isinstance(default, Integral):
        return "an integer"
    if isinstance(default, Real):
        return "a finite number"
    if isinstance(default, (tuple, list)):
        items = ("integers" if all(isinstance(d, Integral) and not isinstance(d, bool) for d in default)
                 else "values")
        return f"a list of {len(default)} {items}"
    return f"a {type(default).__name__}"


def _matches_default(value, default) -> bool:
    """Whether ``value`` has the kind of a number, bool or tuple ``default``: a bool for a bool, an
    integer for an integer, a finite number for a float (bools are no numbers), and a list or tuple of
    as many such items for a tuple; other defaults take anything."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, Real):
        kind = Integral if isinstance(default, Integral) else Real
        return isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list)) and len(value) == len(default) \
            and all(_matches_default(v, d) for v, d in zip(value, default))
    return True


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
