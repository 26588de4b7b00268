import math

import pytest
import torch

from sphsal.audio.ambisonics import encode
from sphsal.audio.energy_map import energy_map
from sphsal.data.augment import augment_batch, mirror, rotate_yaw

H, W, RATE = 8, 16, 8000


def _batch(channels: int = 4, order: int = 1, az: float = 0.7, el: float = 0.3, items: int = 2) -> dict:
    torch.manual_seed(0)
    tone = torch.sin(torch.arange(RATE // 2, dtype=torch.float32) * 0.3)
    if channels == (order + 1) ** 2 and channels > 2:
        audio = encode(tone, az, el, order=order)
    else:
        audio = torch.randn(channels, RATE // 2)
    return {"frames": torch.rand(items, 3, 2, H, W), "saliency": torch.rand(items, H, W),
            "fixations": (torch.rand(items, H, W) > 0.9).float(), "prev_saliency": torch.rand(items, H, W),
            "face_map": torch.rand(items, H, W),
            "audio": audio.expand(items, -1, -1).clone(), "sample_rate": torch.full((items,), RATE),
            "video": ["a"] * items, "frame_index": torch.arange(items)}


def _aem(audio: torch.Tensor) -> torch.Tensor:
    return energy_map(audio, RATE, 2, H, W)


@pytest.mark.parametrize("order", [1, 2])
def test_mirror_reflects_pictures_maps_and_ambisonics_together(order):
    """Column j <-> W-1-j is azimuth az -> -az: a source encoded at az sounds at -az, and the audio energy
    map of the mirrored audio is the mirrored energy map, so the sound stays on its object."""
    batch = _batch(channels=(order + 1) ** 2, order=order)
    original = {k: v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)}
    out = mirror(batch, [1])
    for key in ("frames", "saliency", "fixations", "prev_saliency", "face_map"):
        torch.testing.assert_close(out[key][1], original[key][1].flip(-1))
        torch.testing.assert_close(out[key][0], original[key][0])
    tone = torch.sin(torch.arange(RATE // 2, dtype=torch.float32) * 0.3)
    torch.testing.assert_close(out["audio"][1], encode(tone, -0.7, 0.3, order=order))
    torch.testing.assert_close(_aem(out["audio"][1]), _aem(original["audio"][1]).flip(-1))
    assert all(torch.equal(batch[k], original[k]) for k in original)  # the given batch is unchanged
    assert out["video"] == batch["video"] and torch.equal(out["frame_index"], batch["frame_index"])


def test_mirror_swaps_stereo_keeps_mono_and_refuses_unknown_layouts():
    stereo = _batch(channels=2)
    torch.testing.assert_close(mirror(stereo, [0])["audio"][0], stereo["audio"][0].flip(0))
    mono = _batch(channels=1)
    torch.testing.assert_close(mirror(mono, [0, 1])["audio"], mono["audio"])
    silent = {**_batch(), "audio": torch.zeros(2, 0, 0)}  # a dataset without audio
    assert mirror(silent, [0])["audio"].shape == (2, 0, 0)
    with pytest.raises(ValueError, match="cannot mirror 6-channel audio"):
        mirror(_batch(channels=6), [0])


@pytest.mark.parametrize(("order", "shift"), [(1, 3), (2, 5), (1, -4)])
def test_yaw_rotation_turns_pictures_maps_and_ambisonics_by_the_same_angle(order, shift):
    """A roll of the pictures by whole columns and the ambisonics rotated by that angle: the energy map
    of the turned audio is the turned energy map, and a source at az is heard at az + yaw."""
    batch = _batch(channels=(order + 1) ** 2, order=order)
    out = rotate_yaw(batch, [0, shift])
    yaw = 2 * math.pi * shift / W
    for key in ("frames", "saliency", "fixations", "prev_saliency", "face_map"):
        torch.testing.assert_close(out[key][1], torch.roll(batch[key][1], -shift, dims=-1))
        torch.testing.assert_close(out[key][0], batch[key][0])
    tone = torch.sin(torch.arange(RATE // 2, dtype=torch.float32) * 0.3)
    torch.testing.assert_close(out["audio"][1], encode(tone, 0.7 + yaw, 0.3, order=order), atol=1e-5,
                               rtol=1e-5)
    turned = _aem(batch["audio"][1])  # RMS maps: float rounding grows near their zeros (sqrt)
    torch.testing.assert_close(_aem(out["audio"][1]), torch.roll(turned, -shift, dims=-1),
                               atol=1e-4 * float(turned.max()), rtol=1e-4)
    with pytest.raises(ValueError, match="cannot rotate 2-channel audio"):
        rotate_yaw(_batch(channels=2), [1, 0])
    mono = _batch(channels=1)
    torch.testing.assert_close(rotate_yaw(mono, [2, 3])["audio"], mono["audio"])


def test_maps_of_another_width_turn_by_the_nearest_whole_number_of_their_columns():
    batch = _batch()
    batch["saliency"] = torch.rand(2, 2 * H, 2 * W)
    batch["fixations"] = (torch.rand(2, 2 * H, 2 * W) > 0.9).float()
    out = rotate_yaw(batch, [3, 0])
    torch.testing.assert_close(out["saliency"][0], torch.roll(batch["saliency"][0], -6, dims=-1))
    torch.testing.assert_close(out["fixations"][0], torch.roll(batch["fixations"][0], -6, dims=-1))
    batch["fixations"] = (torch.rand(2, H, 24) > 0.8).float()  # 1.5 of its columns per frame column
    out = rotate_yaw(batch, [1, 0])
    torch.testing.assert_close(out["fixations"][0], torch.roll(batch["fixations"][0], -2, dims=-1))
    assert out["fixations"][0].sum() == batch["fixations"][0].sum()  # no fixation made or lost


def test_augment_batch_draws_reproducibly_from_the_generator():
    batch = _batch(items=6)
    assert augment_batch(batch) is batch or torch.equal(augment_batch(batch)["frames"], batch["frames"])
    flipped = augment_batch(batch, hflip=1.0)
    torch.testing.assert_close(flipped["frames"], batch["frames"].flip(-1))
    first = augment_batch(batch, hflip=0.5, random_yaw=True, generator=torch.Generator().manual_seed(4))
    again = augment_batch(batch, hflip=0.5, random_yaw=True, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(first[k], again[k]) for k in ("frames", "saliency", "audio"))
    assert not torch.equal(first["frames"], batch["frames"])
    for bad in (1.5, -0.1, math.nan, True):
        with pytest.raises(ValueError, match="hflip"):
            augment_batch(batch, hflip=bad)
    with pytest.raises(ValueError, match="cannot mirror 6-channel audio"):  # whatever is drawn
        augment_batch(_batch(channels=6), hflip=1e-9)
    with pytest.raises(ValueError, match="cannot rotate 2-channel audio"):
        augment_batch(_batch(channels=2), random_yaw=True)
