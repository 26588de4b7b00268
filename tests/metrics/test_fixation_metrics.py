"""Tests of sphsal.metrics.fixations (nss, auc_judd, auc_borji, auc_shuffled, info_gain)."""

import math

import metrics_numpy_reference as ref
import numpy as np
import pytest
import torch

from sphsal.metrics import auc_borji, auc_judd, auc_shuffled, info_gain, nss
from sphsal.sphere import pixels_to_directions, solid_angle_weights

H, W = 16, 32
B = 3


@pytest.fixture
def data():
    gen = torch.Generator().manual_seed(2)
    pred = torch.rand(B, H, W, generator=gen, dtype=torch.float64) ** 2
    fix = torch.rand(B, H, W, generator=gen) > 0.97
    other = torch.rand(B, H, W, generator=gen) > 0.9
    return pred, fix, other


def _directions_of(mask):
    """(az, el) directions of the pixel centres set in a (H, W) mask."""
    rows, cols = torch.nonzero(mask, as_tuple=True)
    az, el = pixels_to_directions(rows.double(), cols.double(), H, W)
    return torch.stack((az, el), dim=1)


def test_hand_computed_values():
    ramp = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    at_3 = torch.tensor([[0, 0], [0, 1]])
    at_2 = torch.tensor([[0, 0], [1, 0]])
    # mean 1.5, sample std sqrt(5/3): (3 - 1.5) / sqrt(5/3)
    assert nss(ramp, at_3).item() == pytest.approx(1.5 / math.sqrt(5 / 3), rel=1e-12)
    # threshold 2/3: tp 1, fp 1/3 -> points (0,0), (1/3,1), (1,1): area 1/6 + 2/3
    assert auc_judd(ramp, at_2, jitter=0).item() == pytest.approx(5 / 6, rel=1e-12)
    # distributions (0, 1/6, 1/3, 1/2) against uniform 1/4 at the fixation: log2(2) bits
    assert info_gain(ramp, at_3, baseline=torch.ones(2, 2)).item() == pytest.approx(1.0, rel=1e-12)


def test_matches_numpy_reference(data):
    pred, fix, _ = data
    noise = 1e-7 * torch.from_numpy(np.random.default_rng(0).random(H * W)).view(H, W)
    baseline = torch.linspace(0, 1, H)[:, None].expand(H, W).double()
    p, f = pred.numpy(), fix.numpy()
    np.testing.assert_allclose(nss(pred, fix).numpy(), [ref.nss(a, b) for a, b in zip(p, f)], rtol=1e-10)
    np.testing.assert_allclose(auc_judd(pred, fix).numpy(),
                               [ref.auc_judd(a, b, noise.numpy()) for a, b in zip(p, f)], rtol=1e-10)
    np.testing.assert_allclose(info_gain(pred, fix, baseline=baseline).numpy(),
                               [ref.info_gain(a, b, baseline.numpy()) for a, b in zip(p, f)], rtol=1e-10)
    w = solid_angle_weights(H, W, dtype=torch.float64).numpy()
    np.testing.assert_allclose(nss(pred, fix, weights="sphere").numpy(),
                               [ref.nss(a, b, w) for a, b in zip(p, f)], rtol=1e-10)
    np.testing.assert_allclose(auc_judd(pred, fix, weights="sphere").numpy(),
                               [ref.auc_judd(a, b, noise.numpy(), w) for a, b in zip(p, f)], rtol=1e-10)


def test_sphere_weights_count_every_fixation_once():
    """Solid-angle weights measure the map, not the fixations: at two fixated pixels NSS is the plain mean
    of their (sphere-weighted) z-scores, whatever their latitudes."""
    h, w = 90, 180
    rows = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    _, el = pixels_to_directions(rows, torch.zeros_like(rows), h, w)
    pred = torch.sin(el)
    fix = torch.zeros(h, w, dtype=torch.bool)
    fix[0, 0] = fix[h // 2, 0] = True  # next to the north pole, next to the equator
    weights = solid_angle_weights(h, w, dtype=torch.float64)
    mean = (weights * pred).sum() / weights.sum()
    v1, v2 = weights.sum(), (weights**2).sum()
    z = (pred - mean) / torch.sqrt((weights * (pred - mean) ** 2).sum() / (v1 - v2 / v1))
    assert nss(pred, fix, weights="sphere").item() == pytest.approx(z[fix].mean().item(), rel=1e-12)


def test_sphere_weights_chance_viewers_score_chance():
    """Fixations drawn uniformly over the sphere on a map that favours the poles: chance level (NSS 0,
    AUC 0.5) with sphere weights, as their expectations are exactly that; unweighted, the map's many
    polar pixels make the same viewers look worse than chance."""
    h, w = 128, 256
    rows = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    _, el = pixels_to_directions(rows, torch.zeros_like(rows), h, w)
    pred = el**2
    gen = torch.Generator().manual_seed(0)
    n = 2000  # few enough that most pixels stay non-fixated (AUC-Judd's negatives)
    fix = torch.stack([(torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi,
                       torch.asin(torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1)], dim=1)
    # seeds 0-5 gave NSS -0.034 .. 0.003, AUC-Judd 0.479 .. 0.497, AUC-Borji 0.489 .. 0.502
    assert abs(nss(pred, fix, weights="sphere").item()) < 0.06
    assert abs(auc_judd(pred, fix, weights="sphere").item() - 0.5) < 0.03
    assert abs(auc_borji(pred, fix, weights="sphere", splits=20).item() - 0.5) < 0.02
    assert nss(pred, fix).item() < -0.4 and auc_judd(pred, fix).item() < 0.4  # -0.48, 0.36 unweighted


def test_auc_borji_matches_reference_with_the_same_draws(data):
    pred, fix, _ = data
    ours = auc_borji(pred, fix, splits=7, seed=5)
    expected = []
    for p, f in zip(pred, fix):
        rng = np.random.default_rng(5)  # documented: a generator created anew for every map
        neg = np.floor(rng.random((7, int(f.sum()))) * (H * W)).astype(np.int64)
        expected.append(ref.auc_borji(p.numpy(), f.numpy(), neg))
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


def test_auc_shuffled_matches_reference_with_the_same_draws(data):
    pred, fix, other = data
    ours = auc_shuffled(pred, fix, other, splits=5, seed=3)
    expected = []
    for p, f, o in zip(pred, fix, other):
        pool = np.flatnonzero(o.numpy())
        take = min(int(f.sum()), pool.size)
        order = np.random.default_rng(3).random((5, pool.size)).argsort(axis=1)
        expected.append(ref.auc_shuffled(p.numpy(), f.numpy(), pool[order[:, :take]]))
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("metric", [nss, auc_judd])
def test_affine_and_rank_invariance(data, metric):
    pred, fix, _ = data
    for weights in (None, "sphere"):
        base = metric(pred, fix, weights=weights)
        torch.testing.assert_close(metric(4.0 * pred + 2.0, fix, weights=weights), base, rtol=1e-9, atol=1e-9)


def test_auc_judd_is_one_at_the_fixations(data):
    _, fix, _ = data
    peaks = fix.double()
    for weights in (None, "sphere"):
        torch.testing.assert_close(auc_judd(peaks, fix, weights=weights), torch.ones(B, dtype=torch.float64))
    # Borji's random negatives may hit a fixated pixel, so it stays just below one.
    assert (auc_borji(peaks, fix) > 0.9).all()
    assert (auc_shuffled(peaks, fix, fix.roll(1, 0)) > 0.9).all()


def test_auc_judd_constant_prediction_is_chance(data):
    _, fix, _ = data
    torch.testing.assert_close(auc_judd(torch.ones(B, H, W), fix, jitter=0),
                               torch.full((B,), 0.5, dtype=torch.float64))


@pytest.mark.parametrize("metric", ["nss", "auc_judd", "auc_borji", "auc_shuffled", "info_gain"])
def test_equal_weights_equal_unweighted(data, metric):
    pred, fix, other = data
    fn = {"nss": nss, "auc_judd": auc_judd, "auc_borji": auc_borji,
          "auc_shuffled": lambda p, f, **k: auc_shuffled(p, f, other, **k),
          "info_gain": lambda p, f, **k: info_gain(p, f, baseline=pred[0] + 1, **k)}[metric]
    torch.testing.assert_close(fn(pred, fix, weights=torch.full((H, W), 0.7)), fn(pred, fix),
                               rtol=1e-12, atol=1e-12)


def test_sphere_weights_change_the_scores(data):
    pred, fix, _ = data
    for fn in (nss, auc_judd, auc_borji):
        assert not torch.allclose(fn(pred, fix, weights="sphere"), fn(pred, fix))


def test_directions_equal_binary_maps(data):
    pred, fix, other = data
    dirs = [_directions_of(m) for m in fix]
    other_dirs = [_directions_of(m) for m in other]
    torch.testing.assert_close(nss(pred, dirs), nss(pred, fix))
    torch.testing.assert_close(auc_judd(pred, dirs), auc_judd(pred, fix))
    torch.testing.assert_close(auc_borji(pred, dirs), auc_borji(pred, fix))
    torch.testing.assert_close(auc_shuffled(pred, dirs, other_dirs), auc_shuffled(pred, fix, other))
    torch.testing.assert_close(nss(pred[0], dirs[0].numpy()), nss(pred[0], fix[0]))
    # Single map given as a plain list of (az, el) pairs; duplicates count twice.
    pairs = dirs[0].tolist()
    assert nss(pred[0], pairs).item() == pytest.approx(nss(pred[0], fix[0]).item(), rel=1e-12)
    doubled = nss(pred[0], pairs + pairs[:1])
    z = (pred[0] - pred[0].mean()) / pred[0].std()
    rows, cols = torch.nonzero(fix[0], as_tuple=True)
    expected = (z[rows, cols].sum() + z[rows[0], cols[0]]) / (len(rows) + 1)
    torch.testing.assert_close(doubled, expected)


def test_scores_do_not_depend_on_the_batch(data):
    pred, fix, other = data
    batch = auc_borji(pred, fix)
    torch.testing.assert_close(auc_borji(pred[2], fix[2]), batch[2])
    torch.testing.assert_close(auc_shuffled(pred[1], fix[1], other[1]), auc_shuffled(pred, fix, other)[1])
    torch.testing.assert_close(auc_judd(pred[1:], fix[1:]), auc_judd(pred, fix)[1:])


def test_seed_changes_draws_reproducibly(data):
    pred, fix, _ = data
    torch.testing.assert_close(auc_borji(pred, fix, seed=4), auc_borji(pred, fix, seed=4))
    assert not torch.equal(auc_borji(pred, fix, seed=4), auc_borji(pred, fix, seed=5))


def test_empty_fixations_nan_with_warning(data):
    pred, fix, other = data
    fix = fix.clone()
    fix[1] = False
    for name, call in [("nss", lambda: nss(pred, fix)), ("auc_judd", lambda: auc_judd(pred, fix)),
                       ("auc_borji", lambda: auc_borji(pred, fix)),
                       ("auc_shuffled", lambda: auc_shuffled(pred, fix, other)),
                       ("info_gain", lambda: info_gain(pred, fix, baseline=torch.ones(H, W)))]:
        with pytest.warns(RuntimeWarning, match=rf"{name}: no fixations in map\(s\) \[1\]"):
            out = call()
        assert torch.isnan(out[1]) and torch.isfinite(out[[0, 2]]).all(), name
    with pytest.warns(RuntimeWarning, match="no fixations"):
        assert torch.isnan(nss(pred[0], torch.zeros(0, 2)))
    with pytest.warns(RuntimeWarning, match="auc_shuffled: empty other_fixations"):
        assert torch.isnan(auc_shuffled(pred[0], fix[0], torch.zeros(H, W)))


def test_constant_prediction_nss_nan_with_warning(data):
    _, fix, _ = data
    with pytest.warns(RuntimeWarning, match="nss: constant pred"):
        assert torch.isnan(nss(torch.full((H, W), 3.0), fix[0]))


def test_bad_inputs_raise_clear_errors(data):
    pred, fix, other = data
    with pytest.raises(ValueError, match=r"fixations must be a fixation map shaped like pred"):
        nss(pred, fix[:, :8])
    with pytest.raises(ValueError, match=r"fixations\[0\] must be \(N, 2\)"):
        nss(pred, [torch.zeros(4, 3)] * B)
    bad = fix.double()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="fixations contains NaN"):
        auc_judd(pred, bad)
    with pytest.raises(ValueError, match=r"other_fixations"):
        auc_shuffled(pred, fix, other[:2])
    with pytest.raises(ValueError, match=r"pred and baseline"):
        info_gain(pred, fix, baseline=torch.ones(H, W + 1))
    with pytest.raises(ValueError, match="splits"):
        auc_borji(pred, fix, splits=0)


def test_fixations_on_zero_weight_pixels_nan_with_warning(data):
    pred, fix, other = data
    weights = torch.where(fix[0], 0.0, 1.0)  # zero exactly at the fixated pixels of map 0
    for name, call in [("nss", nss), ("auc_judd", auc_judd), ("auc_borji", auc_borji),
                       ("auc_shuffled", lambda p, f, **k: auc_shuffled(p, f, other[0], **k)),
                       ("info_gain", lambda p, f, **k: info_gain(p, f, baseline=pred[1], **k))]:
        for backend in ("numba", "torch"):
            with pytest.warns(RuntimeWarning, match=rf"{name}: fixations only on pixels of zero weight"):
                assert torch.isnan(call(pred[0], fix[0], weights=weights, backend=backend)), name


def test_shuffled_negatives_of_zero_weight_nan_with_warning(data):
    pred, fix, other = data
    weights = torch.where(other[0], 0.0, 1.0)
    for backend in ("numba", "torch"):
        with pytest.warns(RuntimeWarning, match="auc_shuffled: a split's negatives .* zero weight"):
            assert torch.isnan(auc_shuffled(pred[0], fix[0] & ~other[0], other[0], weights=weights,
                                            backend=backend))


def test_prediction_constant_where_weighted_is_constant(data):
    pred, fix, _ = data
    single = torch.zeros(H, W)
    single[3, 4] = 1.0  # one pixel of positive weight: a weighted map is constant there
    for backend in ("numba", "torch"):
        with pytest.warns(RuntimeWarning, match="nss: constant pred"):
            assert torch.isnan(nss(pred[0], fix[0] | (single > 0), weights=single, backend=backend))
    # info_gain takes a map constant on the weighted pixels as uniform (no NaN), like a constant map
    left = torch.zeros(H, W)
    left[:, : W // 2] = 1.0
    flat_left = torch.where(left > 0, 0.0, pred[0])  # constant (its minimum) where weighted, varies elsewhere
    fix_left = fix[0] & (left > 0)
    for backend in ("numba", "torch"):
        kwargs = {"baseline": pred[1], "weights": left, "backend": backend}
        torch.testing.assert_close(info_gain(flat_left, fix_left, **kwargs),
                                   info_gain(torch.ones(H, W), fix_left, **kwargs))


def test_directions_must_be_radians(data):
    pred, _, _ = data
    with pytest.raises(ValueError, match=r"fixations\[0\] has elevations outside \[-pi/2, pi/2\] radians"):
        nss(pred[0], torch.tensor([[0.0, 45.0]]))  # degrees by mistake: used to land on the pole
    with pytest.raises(ValueError, match=r"other_fixations\[1\] has elevations outside"):
        auc_shuffled(pred[:2], [torch.zeros(1, 2)] * 2, [torch.zeros(1, 2), torch.tensor([[0.0, -2.0]])])
    # a float32 rounding of the pole is the pole; azimuths wrap
    pole32 = torch.tensor([[0.3, math.pi / 2]], dtype=torch.float32)
    assert pole32[0, 1].item() > math.pi / 2
    torch.testing.assert_close(nss(pred[0], pole32), nss(pred[0], torch.tensor([[0.3, math.pi / 2]],
                                                                                dtype=torch.float64)))
    torch.testing.assert_close(nss(pred[0], torch.tensor([[0.3 + 4 * math.pi, 0.2]])),
                               nss(pred[0], torch.tensor([[0.3, 0.2]])))


def test_argument_types_are_checked(data):
    pred, fix, _ = data
    with pytest.raises(ValueError, match=r"fixations is a list of 2 per-map arrays, but pred has 3 map"):
        nss(pred, [np.zeros((2, 2)), np.zeros((3, 2))])
    with pytest.raises(ValueError, match="splits must be an integer >= 1, got 10.0"):
        auc_borji(pred, fix, splits=10.0)
    assert torch.isfinite(auc_borji(pred, fix, splits=np.int64(3))).all()
    for fn in (auc_judd, auc_borji):
        for seed in (-1, 1.5, True):
            with pytest.raises(ValueError, match="seed must be an integer >= 0"):
                fn(pred, fix, seed=seed)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        auc_shuffled(pred, fix, fix, seed=-2)
