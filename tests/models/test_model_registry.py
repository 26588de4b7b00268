import pytest
from tiny_models import TINY_KWARGS
from torch import nn

from sphsal.models import InputSpec, create_model, list_models, register_model


def test_every_published_model_is_registered():
    assert set(TINY_KWARGS) <= set(list_models())
    assert list_models() == sorted(list_models())


def test_unknown_name_lists_the_registered_models():
    with pytest.raises(ValueError, match="unknown model 'nope'.*avs360"):
        create_model("nope")


def test_create_model_records_name_and_kwargs():
    model = create_model("planar_unet", **TINY_KWARGS["planar_unet"])
    assert model.model_name == "planar_unet"
    assert model.model_kwargs == TINY_KWARGS["planar_unet"]
    assert isinstance(model.input_spec, InputSpec)
    assert isinstance(model.default_loss, str) and model.default_optimizer["name"] in ("adam", "sgd")


def test_register_model_refuses_a_second_factory_under_the_same_name():
    @register_model("test_registry_dummy")
    def dummy(**kwargs):
        return nn.Identity()

    assert "test_registry_dummy" in list_models()
    with pytest.raises(ValueError, match="already registered"):
        register_model("test_registry_dummy")(lambda **kw: nn.Identity())
