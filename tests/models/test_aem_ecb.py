import pytest
import torch
from tiny_models import TINY_KWARGS, TINY_PRIOR, ambisonic_batch

from sphsal.models import create_model
from sphsal.priors import equator_bias


def test_prior_is_the_normalised_product_of_ecb_and_aem():
    model = create_model("aem_ecb", **TINY_PRIOR)
    aem = torch.rand(2, 1, 8, 16)
    out = model(aem=aem)
    expected = equator_bias(8, 16) * (aem / aem.amax(dim=(2, 3), keepdim=True) + model.floor)
    expected = expected / expected.sum(dim=(2, 3), keepdim=True)
    assert torch.allclose(out, expected, atol=1e-6)


def test_silence_gives_the_centre_bias():
    model = create_model("aem_ecb", **TINY_PRIOR)
    out = model(aem=torch.zeros(1, 1, 8, 16))
    ecb = equator_bias(8, 16)
    assert torch.allclose(out[0, 0], ecb / ecb.sum(), atol=1e-6)


# Columns of a 16-wide ERP map: 7 and 8 straddle the front; the left (+az) is columns 0-7. The broad
# cardioid beam times the centre bias puts the peak of a source at +-90 deg between it and the front.
@pytest.mark.parametrize(("az_deg", "columns"),
                         [(0.0, (7, 8)), (90.0, (3, 4, 5, 6)), (-90.0, (9, 10, 11, 12))])
def test_sound_source_direction_drives_the_prior(az_deg, columns):
    model = create_model("aem_ecb", output_size=(8, 16))
    batch = ambisonic_batch(az_deg, frames=1, size=(8, 16))
    out = model(**model.prepare_inputs(batch))
    assert int(out[0, 0].sum(dim=0).argmax()) in columns


def test_stereo_audio_is_refused():
    model = create_model("aem_ecb", **TINY_PRIOR)
    with pytest.raises(ValueError, match="not ambisonic"):
        model.prepare_inputs(ambisonic_batch(0.0, frames=1, channels=2, size=(8, 16)))
    batch = {**ambisonic_batch(0.0, frames=1, channels=2, size=(8, 16)), "video": ["street_042"]}
    with pytest.raises(ValueError, match=r"^video 'street_042': the audio is stereo \(2 channels\)"):
        model.prepare_inputs(batch)  # the dataset item's video is named (it was "argument 'b'")
    with pytest.raises(ValueError, match="aem must be"):
        model(aem=torch.rand(1, 1, 4, 4))


def test_silence_without_floor_gives_the_centre_bias_not_nan():
    model = create_model("aem_ecb", floor=0.0, **TINY_PRIOR)
    aem = torch.zeros(2, 1, 8, 16)
    aem[1, 0, 4, 3] = 1.0  # the second clip is not silent: its map is the product alone
    out = model(aem=aem)
    ecb = equator_bias(8, 16)
    assert torch.isfinite(out).all() and torch.allclose(out.sum(dim=(2, 3)), torch.ones(2, 1))
    assert torch.allclose(out[0, 0], ecb / ecb.sum(), atol=1e-6)
    assert out[1, 0, 4, 3] == 1.0


@pytest.mark.parametrize(("option", "value"), [("clip_len", -3), ("clip_len", 0), ("clip_len", 1.5),
                                               ("floor", -0.1), ("floor", float("nan")), ("floor", True)])
def test_bad_arguments_are_named(option, value):
    # wrong kinds (1.5, NaN, True) are refused by the registry before the model's own range checks
    with pytest.raises(ValueError, match=rf"^({option} must be|aem_ecb: option {option} expects)"):
        create_model("aem_ecb", **{option: value})


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_energy_map_is_refused(bad):
    """It made the whole normalised map NaN, which the silence fallback then replaced by the ECB alone."""
    aem = torch.rand(1, 1, 8, 16)
    aem[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match="aem contains NaN or infinite values"):
        create_model("aem_ecb", **TINY_PRIOR)(aem=aem)


@pytest.mark.parametrize(("name", "kwargs", "key"), [("aem_ecb", dict(TINY_PRIOR, clip_len=1), "aem"),
                                                     ("avs360", TINY_KWARGS["avs360"], "aem")])
def test_the_energy_map_covers_the_frames_the_model_sees(name, kwargs, key):
    """A batch longer than the model's clip: the sound comes from the right (azimuth -90) during the last
    ``clip_len`` frames, from the left before; the AEM is the last frames' (it averaged all of them)."""
    model = create_model(name, **kwargs)
    t = model.input_spec.clip_len
    left, right = ambisonic_batch(90.0, frames=12), ambisonic_batch(-90.0, frames=t)
    batch = {**right, "frames": torch.rand(1, 3, 12 + t, 8, 16),
             "audio": torch.cat((left["audio"], right["audio"]), dim=-1)}
    aem = model.prepare_inputs(batch)[key]
    torch.testing.assert_close(aem, model.prepare_inputs(right)[key])
    assert aem[..., aem.shape[-1] // 2:].sum() > 2 * aem[..., :aem.shape[-1] // 2].sum()
