"""Shared checks of arguments: a real number above (or at least) a bound, an integer at least a bound
(both raise ``ValueError`` naming the argument and showing the value, in one message format), and an
input file that exists::

    window must be a finite number > 0 (seconds), got inf
    max_steps must be None or an integer >= 1, got 0
    video file not found: clips/a.mp4
"""

from __future__ import annotations

import math
import numbers
import os

__all__ = ["check_number", "check_integer", "check_input_file"]


def check_input_file(path, what: str) -> str:
    """``path`` as a string when it is an existing file; else ``FileNotFoundError`` (``"{what} not found:
    {path}"``) or, for a folder, ``IsADirectoryError`` saying so (it was reported as not found)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a folder, not a file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def check_number(value, name: str, *, minimum: float = 0.0, inclusive: bool = False, finite: bool = True,
                 unit: str = "", optional: bool = False) -> float | None:
    """``value`` as a ``float``: a real number (Python, NumPy, ``Fraction``; not a bool, a string or a
    tensor, which callers would pass on), not NaN, not infinite when ``finite``, and ``> minimum``
    (``>= minimum`` when ``inclusive``). ``None`` stays ``None`` when ``optional``. Otherwise
    ``ValueError`` naming ``name``; ``unit`` (e.g. ``"seconds"``) is shown in brackets after the bound."""
    if value is None and optional:
        return None
    number = math.nan
    if isinstance(value, numbers.Real) and not isinstance(value, bool):  # NumPy's bool is not Real
        try:
            number = float(value)
        except OverflowError:  # a Fraction or int beyond float's range
            number = math.inf if value > 0 else -math.inf
    below = number < minimum if inclusive else number <= minimum
    if math.isnan(number) or below or (finite and math.isinf(number)):
        what = f"a {'finite ' if finite else ''}number {'>=' if inclusive else '>'} {minimum:g}"
        raise ValueError(_message(name, what, unit, optional, value))
    return number


def check_integer(value, name: str, *, minimum: int = 1, optional: bool = False, whole_floats: bool = False,
                  unit: str = "") -> int | None:
    """``value`` as an ``int``: a Python or NumPy integer (not bool) ``>= minimum``; with ``whole_floats``
    also a finite real number of whole value (``3.0``, ``np.float32(3)``; not ``3.5``). ``None`` stays
    ``None`` when ``optional``. Otherwise ``ValueError`` naming ``name``; ``unit`` (e.g. ``"Hz"``) is
    shown in brackets after the bound."""
    if value is None and optional:
        return None
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if isinstance(value, numbers.Integral):
        whole = real
    else:
        whole = whole_floats and real and math.isfinite(value) and int(value) == value
    if not whole or value < minimum:
        raise ValueError(_message(name, f"an integer >= {minimum}", unit, optional, value))
    return int(value)


def _message(name: str, what: str, unit: str, optional: bool, value) -> str:
    """``"{name} must be [None or ]{what}[ ({unit})], got {value!r}"``."""
    unit = f" ({unit})" if unit else ""
    return f"{name} must be {'None or ' if optional else ''}{what}{unit}, got {value!r}"


def check_sample_rate(value, name: str = "sample_rate") -> int:
    """``value`` as an int, or ``ValueError`` naming ``name`` unless it is a positive integer (Hz)."""
    return check_integer(value, name, whole_floats=True, unit="Hz")
