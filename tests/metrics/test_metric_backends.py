"""The numba fast path of the metrics against the plain-torch reference, and autograd on the reference."""

import pytest
import torch

from sphsal.metrics import auc_borji, auc_judd, auc_shuffled, cc, info_gain, kld, nss, sim
from sphsal.metrics._inputs import _cpu_lists, _pad_lists

H, W = 10, 20


def _data(dtype):
    gen = torch.Generator().manual_seed(7)
    pred = torch.rand(4, H, W, generator=gen, dtype=torch.float64).to(dtype)
    target = (torch.rand(4, H, W, generator=gen, dtype=torch.float64) ** 2).to(dtype)
    fix = torch.rand(4, H, W, generator=gen) > 0.9
    fix[:, 0, 0] = True
    return pred, target, fix


CALLS = {
    "cc": lambda p, t, f, **k: cc(p, t, **k),
    "kld": lambda p, t, f, **k: kld(p, t, **k),
    "sim": lambda p, t, f, **k: sim(p, t, **k),
    "nss": lambda p, t, f, **k: nss(p, f, **k),
    "auc_judd": lambda p, t, f, **k: auc_judd(p, f, **k),
    "auc_borji": lambda p, t, f, **k: auc_borji(p, f, splits=10, **k),
    "auc_shuffled": lambda p, t, f, **k: auc_shuffled(p, f, f.roll(1, 0), splits=10, **k),
    "info_gain": lambda p, t, f, **k: info_gain(p, f, baseline=t[0], **k),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weights", [None, "sphere"])
def test_numba_matches_torch_reference(name, dtype, weights):
    pred, target, fix = _data(dtype)
    fast = CALLS[name](pred, target, fix, weights=weights, backend="numba")
    slow = CALLS[name](pred, target, fix, weights=weights, backend="torch")
    assert fast.dtype == slow.dtype == torch.float64
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-12)


def test_non_contiguous_and_constant_maps():
    pred, target, fix = _data(torch.float64)
    strided = torch.rand(4, W, H, dtype=torch.float64).transpose(1, 2)
    for backend in ("numba", "torch"):
        torch.testing.assert_close(cc(strided, target, backend=backend), cc(strided.contiguous(), target))
        flat = torch.ones(4, H, W)
        torch.testing.assert_close(auc_judd(flat, fix, jitter=0, backend=backend),
                                   torch.full((4,), 0.5, dtype=torch.float64))
        bad = pred.clone()
        bad[2, 1, 1] = float("inf")
        with pytest.raises(ValueError, match="pred contains infinite values"):
            nss(bad, fix, backend=backend)


def test_auto_uses_the_differentiable_reference_for_gradients():
    pred, target, fix = _data(torch.float64)
    pred = pred[:2].clone().requires_grad_(True)
    for fn in (lambda p: cc(p, target[:2]), lambda p: kld(p, target[:2]), lambda p: sim(p, target[:2]),
               lambda p: nss(p, fix[:2])):
        assert torch.autograd.gradcheck(lambda p, f=fn: f(p).sum(), (pred,))
    with pytest.raises(ValueError, match="backend must be one of"):
        cc(pred, target[:2], backend="cuda")


def test_cpu_fixation_lists_match_torch_nonzero():
    mask = torch.rand(5, 300) > 0.9
    mask[3] = False
    b_idx, flat = torch.nonzero(mask, as_tuple=True)
    expected = _pad_lists(b_idx, flat, None, 5)
    for got, want in zip(_cpu_lists(mask, "cpu"), expected):
        torch.testing.assert_close(got, want)


def test_kernel_log_is_within_two_ulp_of_numpy():
    import numba
    import numpy as np

    from sphsal.metrics._kernels import _log

    @numba.njit(error_model="numpy", fastmath={"reassoc", "contract"})
    def logs(y, out):
        for j in range(y.shape[0]):
            out[j] = _log(y[j])

    rng = np.random.default_rng(0)
    y = np.concatenate([np.exp(rng.uniform(-708, 709, 200_000)), 1 + rng.uniform(-1e-3, 1e-3, 20_000),
                        [2.2204e-16, 0.5, 1.0, 2.0, np.sqrt(0.5), np.sqrt(2), np.nextafter(np.sqrt(2), 0)]])
    out = np.empty_like(y)
    logs(y, out)
    expected = np.log(y)
    ulp = np.spacing(np.maximum(np.abs(expected), np.finfo(float).tiny))
    assert (np.abs(out - expected) <= 2 * ulp).all()


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("jitter", [float("nan"), float("inf"), -1.0, "1e-7"])
def test_auc_judd_rejects_jitter_the_kernel_cannot_bin(backend, jitter):
    # nan / inf crashed the numba kernel (bucket index out of range), -1 silently differed from torch
    pred, _, fix = _data(torch.float64)
    with pytest.raises(ValueError, match="jitter must be a finite number >= 0"):
        auc_judd(pred, fix, jitter=jitter, backend=backend)


def test_auc_judd_large_jitter_agrees_between_backends():
    pred, _, fix = _data(torch.float64)
    for jitter in (0.0, 10.0, 1e300):  # scores beyond 1 all fall into the last bucket
        torch.testing.assert_close(auc_judd(pred, fix, jitter=jitter, backend="numba"),
                                   auc_judd(pred, fix, jitter=jitter, backend="torch"),
                                   rtol=1e-12, atol=1e-12)


def test_bucket_index_stays_in_range_for_any_score():
    from sphsal.metrics._kernels import _BUCKETS, _bucket

    for s in (float("nan"), float("-inf"), -1.0, -1e-300, 0.0, 0.5, 1.0, 3.0, float("inf")):
        assert 0 <= _bucket(s) < _BUCKETS, s
    assert _bucket(0.5) == _BUCKETS // 2 and _bucket(2.0) == _BUCKETS - 1


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("name", sorted(CALLS))
def test_value_range_beyond_float64_is_rejected(backend, name):
    # +-1.7e308: max - min overflows (NaN scores, a crash in the AUC-Judd kernel); a subnormal range
    # has no finite reciprocal for the min-max normalisation
    pred, target, fix = _data(torch.float64)
    huge = pred.clone()
    huge[:, 0, 1], huge[:, 0, 2] = -1.7e308, 1.7e308
    tiny = torch.zeros_like(pred)
    tiny[:, 0, 2] = 5e-324
    for bad in ((tiny,) if name == "kld" else (huge, tiny)):  # kld rejects negative values anyway
        with pytest.raises(ValueError, match="pred's value range is out of float64's reach"):
            CALLS[name](bad, target, fix, backend=backend)
