import numpy as np
import pytest
import torch
from tiny_models import TINY_MVVA, ambisonic_batch

from sphsal.models import create_model, load_original_checkpoint
from sphsal.models.face_map import detect_faces, face_detector, face_maps, gaussian_mixture_map
from sphsal.models.mvva import MVVA


def test_released_sizes_and_recipe():
    model = MVVA()  # no forward at full size
    assert model.input_spec.clip_len == 17 and model.input_spec.output_size == (32, 32)
    assert model.input_spec.needs_audio_mel and model.default_loss == "kld+cc"
    assert model.cell0.hidden == 128 and model.cell1.hidden == 64
    assert model.conv_normal_audio1.in_channels == 128  # 64 channels x 2 frames left of 16 mel windows


def test_tiny_forward_and_spherical_variant():
    from sphsal.nn import SphericalConv2d

    sph = create_model("mvva_sph", **TINY_MVVA)
    out = sph(**sph.example_inputs(2))
    assert out.shape == (2, 1, 4, 8) and (out >= 0).all()
    assert isinstance(sph.cell1.Whi, SphericalConv2d) and isinstance(sph.conv_normal_face1, SphericalConv2d)
    assert type(sph.conv1_3d) is torch.nn.Conv3d  # the spectrogram CNN stays planar
    assert type(sph.flow_deconv5[0]) is torch.nn.ConvTranspose2d  # the seam-breaking layer (docstring)


def test_prepare_inputs_from_a_batch_and_bad_inputs():
    model = create_model("mvva", **TINY_MVVA)
    batch = ambisonic_batch(0.0, batch_size=2, frames=8, channels=2, size=(48, 96))
    face = torch.zeros(2, 48, 96)
    face[0, 12:24, 24:36] = 2.0  # a face map given with the batch (e.g. from annotations)
    inputs = model.prepare_inputs({**batch, "face_map": face})
    assert inputs["frames"].shape == (2, 3, 8, 32, 64)
    assert inputs["mel"].shape == (2, 1, 8, 8, 16) and 0 <= inputs["mel"].min() < inputs["mel"].max() <= 255
    assert inputs["face"][0, 0, 1, 2] == 255 - 14.9 and torch.equal(inputs["face"][1], torch.zeros(1, 4, 8))
    assert model(**inputs).shape == (2, 1, 4, 8)
    with pytest.raises(ValueError, match="the audio needs the 8 frames ending at the target"):
        model.prepare_inputs({**batch, "frames": batch["frames"][:, :, :5], "face_map": face})
    with pytest.raises(ValueError, match=r"mvva: mel must be \(B, 1, 8, 8, 16\)"):
        model(**{**inputs, "mel": inputs["mel"][:, :, :4]})


def test_load_original_checkpoint_uses_the_released_names():
    torch.manual_seed(4)
    source, target = MVVA(**TINY_MVVA), MVVA(**TINY_MVVA)
    published = {f"module.{k}": v for k, v in source.state_dict().items()}
    assert "module.flow_conv1.0.weight" in published and "module.cell0.Wxi.bias" in published
    assert load_original_checkpoint(target, published) == []
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_face_gaussian_mixture_and_detector():
    # one 16 x 16 face centred at (x, y) = (60, 20) in a 40 x 64 image, and one across the ERP seam
    m = gaussian_mixture_map(np.array([[52.0, 12.0, 16.0, 16.0]]), (40, 64), (40, 64))
    peak = tuple(np.unravel_index(int(m.argmax()), m.shape))
    assert m.max() == 1.0 and peak in {(19, 59), (19, 60), (20, 59), (20, 60)}
    assert m[20, 2] > 0.1 > gaussian_mixture_map(np.array([[52.0, 12.0, 16.0, 16.0]]), (40, 64), (40, 64),
                                                 wrap=False)[20, 2]
    assert torch.equal(gaussian_mixture_map(np.zeros((0, 4)), (40, 64), (4, 8)), torch.zeros(4, 8))


def test_face_detector_finds_no_face_in_a_blank_frame():
    assert face_detector() is face_detector()  # loaded once (setup.py pins an OpenCV with the cascades)
    assert detect_faces(np.zeros((64, 64, 3), np.uint8)).shape == (0, 4)
    assert face_maps(torch.zeros(2, 3, 64, 64), (4, 4)).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match="uint8"):
        detect_faces(np.zeros((8, 8, 3)))


@pytest.mark.parametrize("name", ["mvva", "mvva_sph"])
def test_frame_size_must_be_multiples_of_sixteen(name):
    # The motion stream pools to (H/16, W/16) and its transposed conv doubles that back to the object
    # stream's (H/8, W/8): 40 x 80 frames would meet a 4 x 10 motion grid with a 5 x 10 object grid.
    for size in [(40, 80), (32, 72)]:
        with pytest.raises(ValueError, match=rf"{name}: frame_size must be \(H, W\) with multiples of 16"):
            create_model(name, **{**TINY_MVVA, "frame_size": size})
    model = create_model(name, **{**TINY_MVVA, "frame_size": (48, 48)}).eval()  # an odd 3 x 3 motion grid
    with torch.no_grad():
        assert model(**model.example_inputs(1)).shape == (1, 1, 6, 6)


def test_float64_face_map_gives_the_float32_output():
    torch.manual_seed(0)
    model = create_model("mvva", **TINY_MVVA).eval()
    inputs = model.example_inputs(1)
    face64 = 255.0 * torch.rand(1, 1, 4, 8, dtype=torch.float64) - 14.9
    with torch.no_grad():
        out64 = model(**{**inputs, "face": face64})
        out32 = model(**{**inputs, "face": face64.float()})
    assert out64.dtype == torch.float32
    torch.testing.assert_close(out64, out32)
