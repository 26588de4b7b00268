import math

import pytest
import torch

from sphsal.metrics import cc, kld, nss
from sphsal.models.losses import LOSSES, build_loss
from sphsal.sphere import solid_angle_weights


def _maps(b=2, h=8, w=16):
    return torch.rand(b, 1, h, w), torch.rand(b, h, w)


def test_single_losses_match_the_metrics_and_are_minimised():
    pred, target = _maps()
    assert torch.allclose(build_loss("kld")(pred, target), kld(pred, target).mean().float())
    assert torch.allclose(build_loss("cc")(pred, target), -cc(pred, target).mean().float())
    fix = (torch.rand(2, 8, 16) > 0.8).float()
    assert torch.allclose(build_loss("nss")(pred, target, fix), -nss(pred, fix).mean().float())
    # A perfect prediction scores better than a random one under every continuous loss.
    for name in ("kld", "cc", "bce"):
        loss = build_loss(name)
        assert loss(target[:, None], target) < loss(pred, target), name


def test_combined_spec_is_the_weighted_sum():
    pred, target = _maps()
    combo = build_loss("kld+0.5*cc + 2e-1*bce")
    assert combo.terms == [(1.0, "kld"), (0.5, "cc"), (0.2, "bce")]
    expected = (LOSSES["kld"](pred, target) + 0.5 * LOSSES["cc"](pred, target)
                + 0.2 * LOSSES["bce"](pred, target))
    assert torch.allclose(combo(pred, target), expected)


def test_losses_are_differentiable():
    pred, target = _maps()
    pred.requires_grad_(True)
    fix = (torch.rand(2, 8, 16) > 0.8).float()
    build_loss("kld+cc+nss+bce+bce_raw+sphere_mse+sphere_sse")(pred, target, fix).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_bce_raw_scores_the_probabilities_as_they_are():
    pred, target = _maps()
    peak = target / target.flatten(1).amax(dim=1)[:, None, None]
    expected = torch.nn.functional.binary_cross_entropy(pred[:, 0], peak)
    assert torch.allclose(build_loss("bce_raw")(pred, target), expected)
    # unlike bce (max-normalised), the level counts: a dimmer copy of the same map costs more
    assert torch.allclose(build_loss("bce")(0.05 * pred, target), build_loss("bce")(pred, target))
    assert build_loss("bce_raw")(0.05 * pred, target) > build_loss("bce_raw")(pred, target) + 0.5
    with pytest.raises(ValueError, match=r"bce_raw loss needs a prediction in \[0, 1\]"):
        build_loss("bce_raw")(pred + 1.0, target)


def test_sphere_mse_weights_pixels_by_solid_angle_against_ten_times_the_target():
    target = torch.zeros(1, 8, 16)
    target[0, 4, 3] = 2.0                       # peak 2 -> max-normalised 1 -> the loss target is 10
    pred = torch.zeros(1, 1, 8, 16)
    w = solid_angle_weights(8, 16)
    assert build_loss("sphere_mse")(pred, target).item() == pytest.approx((100 * w[4, 3] / w.sum()).item())
    assert build_loss("sphere_sse")(pred, target).item() == pytest.approx((100 * w[4, 3]).item())
    # The same error costs less near a pole than at the equator.
    polar = torch.zeros(1, 1, 8, 16)
    polar[0, 0, 0, 3] = 1.0
    equator = torch.zeros(1, 1, 8, 16)
    equator[0, 0, 4, 3] = 1.0
    zero_target = torch.zeros(1, 8, 16)
    assert build_loss("sphere_mse")(polar, zero_target) < build_loss("sphere_mse")(equator, zero_target)
    assert math.isclose(w.sum().item(), 4 * math.pi, rel_tol=1e-6)


@pytest.mark.parametrize(("spec", "message"), [
    ("", "non-empty"), ("kld+", "cannot parse"), ("0.5**cc", "cannot parse"), ("mse", "unknown loss 'mse'"),
])
def test_bad_specs_are_explained(spec, message):
    with pytest.raises(ValueError, match=message):
        build_loss(spec)


def test_nss_without_fixations_and_size_mismatch_are_errors():
    pred, target = _maps()
    with pytest.raises(ValueError, match="fixation"):
        build_loss("nss")(pred, target)
    with pytest.raises(ValueError, match="same"):
        build_loss("bce")(pred, torch.rand(2, 4, 8))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_refuses_nan_infinite_and_empty_maps(name):
    pred, target = _maps()
    fix = (torch.rand(2, 8, 16) > 0.8).float()
    loss = LOSSES[name]
    for bad, what in ((float("nan"), "NaN"), (float("inf"), "infinite")):
        broken = pred.clone()
        broken[0, 0, 2, 3] = bad
        with pytest.raises(ValueError, match=f"pred contains {what} values"):
            loss(broken, target, fix)
        if name != "nss":  # nss reads the fixations, not the target
            broken = target.clone()
            broken[1, 4, 5] = bad
            with pytest.raises(ValueError, match=f"target contains {what} values"):
                loss(pred, broken, fix)
    with pytest.raises(ValueError, match=r"pred is empty: shape \(0, 1, 8, 16\)"):
        loss(torch.zeros(0, 1, 8, 16), torch.zeros(0, 8, 16), torch.zeros(0, 8, 16))
    if name != "nss":
        with pytest.raises(ValueError, match=r"target is empty: shape \(2, 8, 0\)"):
            loss(pred, torch.zeros(2, 8, 0), fix)


def test_nss_loss_reads_fixation_maps_as_binary():
    # The module docstring: every non-zero pixel is one fixation, whatever its count.
    pred, target = _maps()
    fix = (torch.rand(2, 8, 16) > 0.8).float()
    counts = fix * torch.randint(1, 5, fix.shape)
    assert torch.equal(LOSSES["nss"](pred, target, counts), LOSSES["nss"](pred, target, fix))
