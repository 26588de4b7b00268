import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The audio tests run many tiny tensor ops; on a loaded shared machine a multi-threaded pool
    spends more time waking threads than computing, so run them on one thread (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
