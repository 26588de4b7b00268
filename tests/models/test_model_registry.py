import math

import pytest
from tiny_models import TINY_KWARGS
from torch import nn

from sphsal.models import InputSpec, create_model, list_models, model_options, register_model


def test_every_published_model_is_registered():
    assert set(TINY_KWARGS) <= set(list_models())
    assert list_models() == sorted(list_models())


def test_unknown_name_lists_the_registered_models():
    with pytest.raises(ValueError, match="unknown model 'nope'.*avs360"):
        create_model("nope")


def test_create_model_records_name_and_kwargs():
    model = create_model("planar_unet", **TINY_KWARGS["planar_unet"])
    assert model.model_name == "planar_unet"
    # the defaults of prev_interval (1 -> 5) and prev_start changed: recorded even when not given
    assert model.model_kwargs == {**TINY_KWARGS["planar_unet"], "prev_interval": 5, "prev_start": "centre"}
    assert create_model("vinet", **TINY_KWARGS["vinet"]).model_kwargs == TINY_KWARGS["vinet"]
    assert isinstance(model.input_spec, InputSpec)
    assert isinstance(model.default_loss, str) and model.default_optimizer["name"] in ("adam", "sgd")


def test_register_model_refuses_a_second_factory_under_the_same_name():
    @register_model("test_registry_dummy")
    def dummy(**kwargs):
        return nn.Identity()

    assert "test_registry_dummy" in list_models()
    with pytest.raises(ValueError, match="already registered"):
        register_model("test_registry_dummy")(lambda **kw: nn.Identity())


def test_unknown_option_names_it_and_lists_the_accepted_ones():
    with pytest.raises(ValueError, match=r"vinet: unknown option use_aem; it takes clip_len, frame_size, "
                                         r"spherical, width_mult"):
        create_model("vinet", use_aem=False)
    with pytest.raises(ValueError, match=r"aem_ecb: unknown option bogus; it takes aem_decoder"):
        create_model("aem_ecb", bogus=1)
    assert model_options("planar_unet") == {"spherical", "frame_size", "width_mult", "prev_interval",
                                            "prev_start"}
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        model_options("nope")


@pytest.mark.parametrize(("option", "value", "kind"), [("width_mult", "1/16", "a finite number"),
                                                         ("frame_size", "16x32", "a list of 2 integers"),
                                                         ("spherical", "yes", "True or False")])
def test_text_for_a_number_bool_or_size_option_is_refused(option, value, kind):
    with pytest.raises(ValueError, match=rf"spherical_unet: option {option} expects {kind}.*got text"):
        create_model("spherical_unet", **{option: value})


@pytest.mark.parametrize(("option", "value", "kind"), [
    ("frame_size", 64, "a list of 2 integers"), ("frame_size", [32, 64, 3], "a list of 2 integers"),
    ("frame_size", [32.5, 64], "a list of 2 integers"), ("width_mult", math.inf, "a finite number"),
    ("width_mult", math.nan, "a finite number"), ("width_mult", True, "a finite number"),
    ("spherical", 1, "True or False")])
def test_values_of_the_wrong_kind_are_refused(option, value, kind):
    """They raised TypeError / OverflowError from inside the model, or built a wrong one silently."""
    with pytest.raises(ValueError, match=rf"spherical_unet: option {option} expects {kind} like its default"):
        create_model("spherical_unet", **{option: value})


def test_values_of_the_right_kind_pass():
    assert create_model("avs360", clip_len=2, width_mult=1 / 16, frame_size=[32, 64]).input_spec.clip_len == 2


def test_a_factory_without_a_known_class_gets_its_options_unchecked():
    @register_model("test_registry_unchecked")
    def unchecked(**kwargs):
        return nn.Linear(**kwargs)

    assert model_options("test_registry_unchecked") is None
    assert create_model("test_registry_unchecked", in_features=2, out_features=3).out_features == 3


@pytest.mark.parametrize(("name", "option", "value"), [
    ("vinet", "spherical", True), ("vinet_sph", "spherical", False), ("avinet_sph", "spherical", False),
    ("mvva", "spherical", True), ("mvva_sph", "spherical", False), ("stavis", "use_audio", False),
    ("stavis_visual", "use_audio", True), ("stavis_sph", "spherical", False),
    ("stavis_visual_sph", "use_audio", True), ("spherical_unet", "spherical", False),
    ("planar_unet", "spherical", True), ("avs360_visual", "use_audio", True),
    ("avs360_no_aem", "use_aem", True),
])
def test_a_variant_refuses_a_conflicting_value_of_the_option_it_fixes(name, option, value):
    with pytest.raises(ValueError, match=rf"{name} fixes {option}={not value!r}; got {option}={value!r}"):
        create_model(name, **{option: value})


def test_a_variant_accepts_the_value_it_fixes():
    model = create_model("vinet_sph", spherical=True, **TINY_KWARGS["vinet"])
    assert model.spherical and model.model_kwargs["spherical"] is True
    stavis = create_model("stavis", use_audio=True, **TINY_KWARGS["stavis"])
    assert stavis.use_audio and stavis.model_kwargs["use_audio"] is True


def test_stored_kwargs_without_an_option_whose_default_changed_take_its_earlier_default():
    from sphsal.models.registry import recorded_model_kwargs, stored_model_kwargs

    old = {"prev_interval": 1, "prev_start": "zeros"}  # written before the changes
    assert stored_model_kwargs("spherical_unet", {}) == old
    assert stored_model_kwargs("spherical_unet", {"prev_interval": 5}) == {**old, "prev_interval": 5}
    assert recorded_model_kwargs("spherical_unet", {}) == {"prev_interval": 5, "prev_start": "centre"}
    assert stored_model_kwargs("vinet", {"clip_len": 8}) == {"clip_len": 8}
    assert stored_model_kwargs(None, {"a": 1}) == {"a": 1}
