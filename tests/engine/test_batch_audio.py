"""Audio in batches: ``collate_items`` crops only rounding differences (never another clip's audio) and a
clip without audio is named when a model reads audio features."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from sphsal.data.clips import audio_window, clip_span
from sphsal.engine.evaluate import evaluate_model
from sphsal.engine.runtime import collate_items
from sphsal.models import create_model
from sphsal.models.inputs import clip_energy_map, clip_log_mel


def _item(video, rate, fps, channels=4, clip_len=4, seed=0):
    """A dataset item of target frame ``clip_len - 1`` whose audio window is cut as the dataset cuts it."""
    s0, s1 = audio_window(*clip_span(clip_len - 1, clip_len, fps), rate)
    audio = np.random.default_rng(seed).standard_normal((channels, s1 - s0)).astype(np.float32)
    return {"frames": torch.rand(3, clip_len, 16, 32), "audio": 0.1 * torch.from_numpy(audio),
            "sample_rate": rate, "saliency": torch.rand(16, 32),
            "fixations": (torch.rand(16, 32) > 0.9).float(), "video": video, "frame_index": clip_len - 1}


def test_clips_of_other_sample_rates_are_refused_not_cropped():
    high, low = _item("hi.mp4", 48000, 16), _item("lo.mp4", 16000, 16)
    assert high["audio"].shape[-1] == 12000 and low["audio"].shape[-1] == 4000
    with pytest.raises(ValueError, match="cannot batch the audio of these clips") as err:
        collate_items([high, low])
    message = str(err.value)
    for part in ("video 'hi.mp4': 48000 Hz, 4 channel(s), 12000 samples",
                 "video 'lo.mp4': 16000 Hz, 4 channel(s), 4000 samples", "use batch size 1"):
        assert part in message
    # A clip's audio features are the same alone and beside a clip of its own rate.
    alone = clip_log_mel(collate_items([high]), 4)
    paired = clip_log_mel(collate_items([high, _item("hi2.mp4", 48000, 16, seed=1)]), 4)
    torch.testing.assert_close(paired[:1], alone)


def test_clips_of_other_frame_rates_are_refused():
    with pytest.raises(ValueError, match=r"'a': 16000 Hz, 4 channel\(s\), 4000 samples; video 'b': 16000 Hz"):
        collate_items([_item("a", 16000, 16), _item("b", 16000, 15)])


def test_mixed_channel_counts_and_missing_audio_are_named():
    with pytest.raises(ValueError, match=r"'foa': 16000 Hz, 4 channel\(s\).*'mono': 16000 Hz, 1 channel\(s\)"
                                         ".*batch size 1"):
        collate_items([_item("foa", 16000, 16), _item("mono", 16000, 16, channels=1)])
    silent = {**_item("silent", 16000, 16), "audio": torch.zeros(0, 0), "sample_rate": 0}
    with pytest.raises(ValueError, match="video 'silent': no audio"):
        collate_items([_item("foa", 16000, 16), silent])
    with pytest.raises(ValueError, match=r"item 1: 16000 Hz, 1 channel\(s\)"):  # items without a video key
        collate_items([{"audio": torch.zeros(4, 10), "sample_rate": 16000},
                       {"audio": torch.zeros(1, 10), "sample_rate": 16000}])


def test_windows_one_sample_apart_are_cropped_to_the_shortest():
    # NTSC's 30000/1001 fps, exact and as 29.97: clips of 17 frames at 22,050 Hz round one sample apart
    exact = _item("a", 22050, Fraction(30000, 1001), clip_len=17)
    rounded = _item("b", 22050, 29.97, clip_len=17)
    n_exact, n_rounded = exact["audio"].shape[-1], rounded["audio"].shape[-1]
    assert abs(n_exact - n_rounded) == 1
    batch = collate_items([exact, rounded])
    n = min(n_exact, n_rounded)
    assert batch["audio"].shape == (2, 4, n) and n == 12507
    torch.testing.assert_close(batch["audio"][0], exact["audio"][:, :n])
    torch.testing.assert_close(batch["audio"][1], rounded["audio"][:, :n])


class _Silent(torch.utils.data.Dataset):
    """Clips of ``clip_len`` frames from videos without audio, as ClipDataset makes them: ``(0, 0)``
    audio at rate 0."""

    def __init__(self, clip_len):
        self.clip_len = clip_len

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return {**_item(f"quiet{i}", 16000, 8, clip_len=self.clip_len), "audio": torch.zeros(0, 0),
                "sample_rate": 0}


@pytest.mark.parametrize(("name", "kwargs"), [
    ("avs360_no_aem", dict(view="erp_planar", width_mult=0.0625, clip_len=4, frame_size=(32, 64))),
    ("aem_ecb", dict(output_size=(16, 32))),
    ("mvva", dict(width_mult=0.0625, frame_size=(32, 64))),
    ("stavis", dict(width_mult=0.0625, clip_len=4, frame_size=(32, 64))),  # the SoundNet waveform
])
def test_a_video_without_audio_is_named_for_models_that_read_audio(name, kwargs):
    model = create_model(name, **kwargs)
    with pytest.raises(ValueError, match="video 'quiet0' has no audio, but the model reads .*; choose a "
                                         r"visual-only model \(e.g. avs360_visual"):
        evaluate_model(model, _Silent(model.input_spec.clip_len), metrics=("cc",), progress=False,
                       device="cpu")


def test_the_energy_map_advice_names_what_aem_ecb_cannot_do():
    stereo = collate_items([_item("stereo.mp4", 16000, 16, channels=2)])
    with pytest.raises(ValueError, match="video 'stereo.mp4': the audio is stereo") as err:
        clip_energy_map(stereo, 4, (8, 16))
    message = str(err.value)
    assert "build a model that has a use_aem option with use_aem=False" in message
    assert "aem_ecb, the AEM prior itself, has no such option and cannot run without ambisonic" in message
