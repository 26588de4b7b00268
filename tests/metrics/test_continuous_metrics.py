"""Tests of sphsal.metrics.continuous (cc, kld, sim) and the shared input handling."""

import math

import metrics_numpy_reference as ref
import numpy as np
import pytest
import torch

from sphsal.metrics import cc, kld, match_size, sim
from sphsal.sphere import solid_angle_weights

H, W = 12, 24


@pytest.fixture
def maps():
    gen = torch.Generator().manual_seed(1)
    pred = torch.rand(3, H, W, generator=gen, dtype=torch.float64)
    target = torch.rand(3, H, W, generator=gen, dtype=torch.float64) ** 3
    return pred, target


def test_hand_computed_values():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    # deviations (-1.5, -.5, .5, 1.5) and (-1.75, -.75, .25, 2.25): 6.5 / sqrt(5 * 8.75)
    assert cc(pred, target).item() == pytest.approx(6.5 / math.sqrt(5 * 8.75), rel=1e-12)
    # uniform prediction (1/4 each) against (1/2, 0, 0, 1/2): 2 * 1/2 * log(2)
    uniform = torch.ones(2, 2)
    half = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert kld(uniform, half).item() == pytest.approx(math.log(2), rel=1e-12)
    # min-max then sum: (0, 1/6, 1/3, 1/2) against (1/2, 1/3, 1/6, 0): minima sum to 1/3
    ramp = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert sim(ramp, ramp.flip(-1).flip(-2)).item() == pytest.approx(1 / 3, rel=1e-12)


@pytest.mark.parametrize("metric", [cc, kld, sim])
def test_matches_numpy_reference(maps, metric):
    pred, target = maps
    ours = metric(pred, target)
    numpy_fn = getattr(ref, metric.__name__)
    expected = [numpy_fn(p.numpy(), t.numpy()) for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)
    w = solid_angle_weights(H, W, dtype=torch.float64)
    ours_w = metric(pred, target, weights="sphere")
    expected_w = [numpy_fn(p.numpy(), t.numpy(), w.numpy()) for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours_w.numpy(), expected_w, rtol=1e-10)
    assert not torch.allclose(ours, ours_w)


def test_cc_affine_invariant(maps):
    pred, target = maps
    for weights in (None, "sphere"):
        base = cc(pred, target, weights=weights)
        scaled = cc(3.5 * pred - 7.0, target, weights=weights)
        torch.testing.assert_close(scaled, base, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(cc(-pred, target, weights=weights), -base, rtol=1e-10, atol=1e-12)


def test_identical_maps(maps):
    _, target = maps
    for weights in (None, "sphere"):
        torch.testing.assert_close(kld(target, target, weights=weights), torch.zeros(3, dtype=torch.float64),
                                   atol=1e-12, rtol=0)
        torch.testing.assert_close(sim(target, target, weights=weights), torch.ones(3, dtype=torch.float64))
        torch.testing.assert_close(cc(target, target, weights=weights), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("metric", [cc, kld, sim])
def test_equal_weights_equal_unweighted(maps, metric):
    pred, target = maps
    torch.testing.assert_close(metric(pred, target, weights=torch.full((H, W), 2.5)), metric(pred, target),
                               rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(metric(pred, target, weights=torch.tensor(0.3)), metric(pred, target),
                               rtol=1e-12, atol=1e-14)


def test_layouts_and_reduction(maps):
    pred, target = maps
    batch = cc(pred, target)
    assert batch.shape == (3,)
    torch.testing.assert_close(cc(pred[:, None], target[:, None]), batch)
    torch.testing.assert_close(cc(pred[:, None], target), batch)
    single = cc(pred[1], target[1])
    assert single.dim() == 0
    torch.testing.assert_close(single, batch[1])
    torch.testing.assert_close(cc(pred, target, reduction="mean"), batch.mean())
    with pytest.raises(ValueError, match="reduction"):
        cc(pred, target, reduction="sum")


def test_constant_prediction_gives_nan_with_warning(maps):
    pred, target = maps
    pred = pred.clone()
    pred[1] = 0.25
    with pytest.warns(RuntimeWarning, match=r"cc: constant pred or target in map\(s\) \[1\]"):
        out = cc(pred, target)
    assert torch.isnan(out[1]) and not torch.isnan(out[[0, 2]]).any()
    # SIM takes a constant map as the uniform distribution; KLD needs no min-max.
    uniform_sim = sim(pred[1], target[1])
    expected = torch.minimum(torch.full((H, W), 1 / (H * W), dtype=torch.float64),
                             (target[1] - target[1].min()) / (target[1] - target[1].min()).sum()).sum()
    torch.testing.assert_close(uniform_sim, expected)
    assert torch.isfinite(kld(pred[1], target[1]))


def test_zero_map_kld_nan_with_warning(maps):
    pred, target = maps
    with pytest.warns(RuntimeWarning, match="kld: pred or target sums to zero"):
        assert torch.isnan(kld(torch.zeros(H, W), target[0]))
    with pytest.raises(ValueError, match="pred has negative values"):
        kld(pred - 0.5, target)


def test_bad_inputs_raise_clear_errors(maps):
    pred, target = maps
    bad = pred.clone()
    bad[0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="pred contains NaN"):
        cc(bad, target)
    with pytest.raises(ValueError, match="target contains NaN"):
        sim(pred, bad)
    with pytest.raises(ValueError, match=r"\(3, 12, 24\) and \(3, 6, 12\)"):
        cc(pred, target[:, ::2, ::2])
    with pytest.raises(ValueError, match="must be shaped"):
        cc(pred[:, None, None], target)
    with pytest.raises(ValueError, match="weights must be None, 'sphere' or a tensor"):
        cc(pred, target, weights="cosine")
    with pytest.raises(ValueError, match="do not broadcast"):
        cc(pred, target, weights=torch.ones(5))
    with pytest.raises(ValueError, match="non-negative"):
        cc(pred, target, weights=-torch.ones(H, W))


def test_match_size_is_explicit(maps):
    pred, target = maps
    small = target[:, None, ::2, ::2]
    resized = match_size(small, pred)
    assert resized.shape == (3, 1, H, W)
    assert match_size(pred[0], small).shape == (H // 2, W // 2)
    assert match_size(pred, pred) is pred
    assert torch.isfinite(cc(resized, pred)).all()


def test_match_size_erp_interpolates_across_the_seam(maps):
    pred, _ = maps
    small = pred[:, ::4, ::4]
    planar, erp = match_size(small, pred), match_size(small, pred, erp=True)
    assert erp.shape == planar.shape == pred.shape
    torch.testing.assert_close(erp[..., 2:-2, 2:-2], planar[..., 2:-2, 2:-2])
    # column 0's left neighbour is column W - 1: rolling the source rolls the result
    torch.testing.assert_close(match_size(small.roll(1, -1), pred, erp=True), erp.roll(4, -1))
    with pytest.raises(ValueError, match="bilinear' or 'nearest'"):
        match_size(small, pred, mode="bicubic", erp=True)


def test_match_size_bicubic_clamps_to_the_source_range(maps):
    pred, _ = maps
    small = pred[:, : H // 2, : W // 2]
    negative = -1.0 - small  # all negative: clamping at zero made it all zeros
    up = match_size(negative, pred, mode="bicubic")
    assert (up < 0).all() and not torch.equal(up, torch.zeros_like(up))
    for src, out in ((negative, up), (small, match_size(small, pred, mode="bicubic"))):
        lo = src.amin(dim=(-2, -1), keepdim=True)
        hi = src.amax(dim=(-2, -1), keepdim=True)
        assert ((out >= lo) & (out <= hi)).all()  # no overshoot beyond each source map's own range
    # a sharp step overshoots under bicubic: clamped to the step's own values
    step = torch.zeros(4, 8, dtype=torch.float64)
    step[:, 4:] = 1.0
    out = match_size(step, torch.zeros(16, 32), mode="bicubic")
    assert out.min() == 0.0 and out.max() == 1.0
    raw = torch.nn.functional.interpolate(step[None, None], size=(16, 32), mode="bicubic",
                                          align_corners=False)
    assert raw.min() < 0 and raw.max() > 1  # there was overshoot to clamp


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_weighted_constant_maps(maps, backend):
    pred, target = maps
    single = torch.zeros(H, W)
    single[2, 5] = 1.0  # weights non-zero at one pixel: every map is constant where it is weighted
    with pytest.warns(RuntimeWarning, match="cc: constant pred or target"):
        assert torch.isnan(cc(pred, target, weights=single, backend=backend)).all()
    # sim takes a map constant where weighted as uniform (no NaN), as it does a constant map
    left = torch.zeros(H, W)
    left[:, : W // 2] = 1.0
    flat_left = torch.where(left > 0, 0.0, pred)
    torch.testing.assert_close(sim(flat_left, target, weights=left, backend=backend),
                               sim(torch.ones_like(pred), target, weights=left, backend=backend))
