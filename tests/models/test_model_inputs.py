"""Every model family's forward checks that its inputs agree with each other and with the sizes the model
was built for (a clear ValueError naming the input instead of a broadcast or a raw torch error)."""

import pytest
import torch
from tiny_models import TINY_KWARGS

from sphsal.models import create_model

# One planar model per family (the checks run before any layer, so the spherical variants share them).
FAMILIES = ("avs360", "avs360_no_aem", "spherical_unet", "aem_ecb", "vinet", "avinet", "stavis",
            "stavis_visual", "mvva")


def models_and_inputs(min_inputs: int = 1):
    """``(name, input)`` for every input of the example inputs of every family that reads at least
    ``min_inputs`` inputs."""
    for name in FAMILIES:
        keys = create_model(name, **TINY_KWARGS[name]).example_inputs()
        if len(keys) >= min_inputs:
            yield from ((name, key) for key in keys)


@pytest.fixture(scope="module")
def built():
    """The tiny models of :data:`FAMILIES`, built once."""
    return {name: create_model(name, **TINY_KWARGS[name]) for name in FAMILIES}


@pytest.mark.parametrize(("name", "key"), list(models_and_inputs(min_inputs=2)))
def test_an_input_with_another_batch_size_is_refused(built, name, key):
    model = built[name]
    inputs = model.example_inputs(batch_size=2)
    inputs[key] = inputs[key][:1].expand(3, *inputs[key].shape[1:])
    with pytest.raises(ValueError, match=rf"{name}: \w+ has batch size [23] but \w+ has [23]") as err:
        model(**inputs)
    assert key in str(err.value)


@pytest.mark.parametrize(("name", "key"), list(models_and_inputs()))
def test_an_input_of_another_size_is_refused(built, name, key):
    model = built[name]
    inputs = model.example_inputs(batch_size=1)
    x = inputs[key]
    if name == "spherical_unet":  # any multiple of 8, but the same for both inputs
        inputs[key] = torch.nn.functional.interpolate(x, size=(24, 48))
        match = r"spherical_unet: prev_saliency must have the image's size"
    else:
        inputs[key] = torch.cat((x, x), dim=-1)  # twice as wide
        match = rf"{name}: {key} must be \(B, .*\), got \({', '.join(map(str, inputs[key].shape))}\)"
    with pytest.raises(ValueError, match=match):
        model(**inputs)


def test_avs360_inputs_must_agree_with_each_other_and_the_built_sizes():
    model = create_model("avs360", **TINY_KWARGS["avs360"])  # face_size 32, clip_len 2, frame_size 32 x 64
    inputs = model.example_inputs(batch_size=1)
    with pytest.raises(ValueError, match=r"avs360: aem has batch size 3 but frames has 1"):
        model(**{**inputs, "aem": torch.rand(3, 1, 1, 2)})
    with pytest.raises(ValueError, match=r"avs360: faces must be \(B, 6, 3, 2, 32, 32\).*face_size=32"):
        model(**{**inputs, "faces": torch.randn(1, 6, 3, 2, 64, 64)})
    with pytest.raises(ValueError, match=r"avs360: audio_mel has batch size 2 but frames has 1"):
        model(**{**inputs, "audio_mel": torch.randn(2, 3, 2, 64, 64)})
    with pytest.raises(ValueError, match=r"avs360: frames must be \(B, 3, 2, 32, 64\).*clip_len=2"):
        model(**{**inputs, "frames": torch.randn(1, 3, 3, 32, 64)})
    visual = create_model("avs360_visual", **TINY_KWARGS["avs360_visual"])
    with pytest.raises(ValueError, match=r"got input 'aem', which this model \(as built\) does not read"):
        visual(**visual.example_inputs(), aem=torch.rand(1, 1, 1, 2))


def test_unet_needs_multiples_of_eight():
    model = create_model("planar_unet", **TINY_KWARGS["planar_unet"])
    with pytest.raises(ValueError, match=r"planar_unet: image H and W must be multiples of 8"):
        model(image=torch.rand(1, 3, 12, 24), prev_saliency=torch.rand(1, 1, 12, 24))
    with pytest.raises(ValueError, match=r"planar_unet: prev_saliency must be \(B, 1, \*, \*\)"):
        model(image=torch.rand(1, 3, 16, 32), prev_saliency=torch.rand(1, 16, 32))
    out = model(image=torch.rand(1, 3, 24, 48), prev_saliency=torch.rand(1, 1, 24, 48))
    assert out.shape == (1, 1, 24, 48)


def test_audio_models_refuse_a_waveform_of_another_batch():
    for name in ("avinet", "stavis"):
        model = create_model(name, **TINY_KWARGS[name])
        inputs = model.example_inputs(batch_size=1)
        with pytest.raises(ValueError, match=rf"{name}: audio has batch size 2 but frames has 1"):
            model(frames=inputs["frames"], audio=torch.randn(2, inputs["audio"].shape[1]))
    visual = create_model("stavis_visual", **TINY_KWARGS["stavis_visual"])
    with pytest.raises(ValueError, match="got input 'audio'"):
        visual(**visual.example_inputs(), audio=torch.randn(1, 4574))


def test_mvva_refuses_a_face_map_of_another_batch():
    model = create_model("mvva", **TINY_KWARGS["mvva"])
    inputs = model.example_inputs(batch_size=1)
    with pytest.raises(ValueError, match=r"mvva: face has batch size 3 but frames has 1"):
        model(**{**inputs, "face": inputs["face"].expand(3, -1, -1, -1)})
