"""The shared argument checks of :mod:`sphsal._checks`."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from sphsal._checks import check_integer, check_number


def test_check_number_returns_a_float():
    for value in (2, 2.5, np.float32(2.0), np.int64(3), Fraction(30000, 1001)):
        number = check_number(value, "x")
        assert type(number) is float and number == float(value)
    assert check_number(None, "x", optional=True) is None


@pytest.mark.parametrize("value", [True, False, np.True_, "1", b"1", None, [1.0], object(), math.nan,
                                   math.inf, -math.inf, 0, -1.0, torch.tensor(1.5), np.array(1.5)])
def test_check_number_rejects_and_names_the_argument(value):
    with pytest.raises(ValueError, match=r"^sigma must be a finite number > 0, got ") as err:
        check_number(value, "sigma")
    assert str(err.value).endswith(repr(value))


def test_check_number_bound_is_exclusive_unless_inclusive():
    with pytest.raises(ValueError, match=r"^x must be a finite number > 0, got 0\.0$"):
        check_number(0.0, "x")
    assert check_number(0.0, "x", inclusive=True) == 0.0
    with pytest.raises(ValueError, match=r"^x must be a finite number >= 0, got -1e-09$"):
        check_number(-1e-9, "x", inclusive=True)
    assert check_number(1.5, "x", minimum=1) == 1.5
    with pytest.raises(ValueError, match=r"^x must be a finite number > 1.5, got 1.5$"):
        check_number(1.5, "x", minimum=1.5)
    assert check_number(1.5, "x", minimum=1.5, inclusive=True) == 1.5


def test_check_number_infinity_nan_unit_and_optional():
    assert check_number(math.inf, "t", finite=False) == math.inf
    with pytest.raises(ValueError, match=r"^t must be a number > 0, got nan$"):
        check_number(math.nan, "t", finite=False)
    with pytest.raises(ValueError, match=r"^t must be a number > 0, got -inf$"):
        check_number(-math.inf, "t", finite=False)
    with pytest.raises(ValueError, match=r"^window must be None or a finite number > 0 \(seconds\), got inf"):
        check_number(math.inf, "window", unit="seconds", optional=True)
    with pytest.raises(ValueError, match=r"^window must be a finite number > 0, got None$"):
        check_number(None, "window")


def test_check_integer_returns_an_int():
    for value in (3, np.int64(3), np.uint8(3)):
        number = check_integer(value, "n")
        assert type(number) is int and number == 3
    assert check_integer(0, "n", minimum=0) == 0
    assert check_integer(None, "n", optional=True) is None
    for value in (3.0, np.float32(3.0), np.float64(3.0)):
        number = check_integer(value, "n", whole_floats=True)
        assert type(number) is int and number == 3


@pytest.mark.parametrize("value", [True, False, np.True_, "3", b"3", None, 3.0, np.float32(3.0), 2.5,
                                   math.nan, math.inf, torch.tensor(3), 0, -1, np.int64(0)])
def test_check_integer_rejects_and_names_the_argument(value):
    with pytest.raises(ValueError, match=r"^splits must be an integer >= 1, got ") as err:
        check_integer(value, "splits")
    assert str(err.value).endswith(repr(value))


@pytest.mark.parametrize("value", [True, "3", 2.5, math.nan, math.inf, -1.0, -1, None])
def test_check_integer_whole_floats_still_rejects_what_is_not_a_whole_number(value):
    with pytest.raises(ValueError, match=r"^num_frames must be an integer >= 0, got "):
        check_integer(value, "num_frames", minimum=0, whole_floats=True)


def test_check_integer_bound_unit_and_optional():
    assert check_integer(5, "n", minimum=5) == 5
    with pytest.raises(ValueError, match=r"^n must be an integer >= 5, got 4$"):
        check_integer(4, "n", minimum=5)
    with pytest.raises(ValueError, match=r"^sample_rate must be None or an integer >= 1 \(Hz\), got 0$"):
        check_integer(0, "sample_rate", optional=True, unit="Hz")
    with pytest.raises(ValueError, match=r"^pad must be an integer >= 0 \(pixels\), got -1$"):
        check_integer(-1, "pad", minimum=0, unit="pixels")


def test_check_input_file_names_a_missing_file_or_a_folder(tmp_path):
    from sphsal._checks import check_input_file

    (tmp_path / "a.mp4").write_bytes(b"x")
    assert check_input_file(tmp_path / "a.mp4", "video file") == str(tmp_path / "a.mp4")
    with pytest.raises(FileNotFoundError, match=r"^video file not found: .*b\.mp4$"):
        check_input_file(tmp_path / "b.mp4", "video file")
    with pytest.raises(IsADirectoryError, match=r"^audio file .* is a folder, not a file$"):
        check_input_file(tmp_path, "audio file")
