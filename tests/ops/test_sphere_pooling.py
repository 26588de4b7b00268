import pytest
import torch
import torch.nn.functional as F

from sphsal.ops import sphere_avg_pool2d, sphere_max_pool2d


def test_two_by_two_pool_is_the_erp_cell_pool():
    x = torch.randn(2, 3, 8, 16)
    assert torch.equal(sphere_max_pool2d(x, 2), F.max_pool2d(x, 2))
    assert torch.equal(sphere_avg_pool2d(x, 2), F.avg_pool2d(x, 2))


@pytest.mark.parametrize("pool", [sphere_max_pool2d, sphere_avg_pool2d])
def test_cap_pool_shape_constant_and_roll_equivariance(pool):
    x = torch.randn(2, 3, 8, 16, dtype=torch.float64)
    out = pool(x, 3, 2)
    assert out.shape == (2, 3, 4, 8)
    torch.testing.assert_close(pool(torch.full_like(x, 2.5), 3, 2), torch.full_like(out, 2.5))
    assert torch.equal(pool(torch.roll(x, 4, -1), 3, 2), torch.roll(out, 2, -1))


def test_cap_max_pool_reaches_over_the_pole():
    x = torch.zeros(1, 1, 8, 16)
    x[0, 0, 0, 8] = 1.0  # top row, opposite meridian of column 0
    assert sphere_max_pool2d(x, 3, 1)[0, 0, 0, 0] == 1.0
    assert F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 1)[0, 0, 0, 0] == 0.0


@pytest.mark.parametrize("kwargs,match", [(dict(kernel_size=4), "kernel_size"),
                                          (dict(kernel_size=2, stride=1), "stride=2")])
def test_bad_pool_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sphere_max_pool2d(torch.zeros(1, 1, 8, 16), **kwargs)


@pytest.mark.parametrize("pool", [sphere_max_pool2d, sphere_avg_pool2d])
@pytest.mark.parametrize("stride", [1, 2])
def test_cap_pool_gradcheck(pool, stride):
    x = torch.randn(2, 2, 8, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: pool(v, 3, stride), (x,))


def test_cap_pool_gradient_reaches_over_the_pole():
    x = torch.zeros(1, 1, 8, 16, requires_grad=True)
    with torch.no_grad():
        x[0, 0, 0, 8] = 1.0
    sphere_max_pool2d(x, 3, 1)[0, 0, 0, 0].backward()
    assert x.grad[0, 0, 0, 8] == 1.0 and x.grad.sum() == 1.0
