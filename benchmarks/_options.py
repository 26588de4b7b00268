"""``argparse`` types shared by the benchmark scripts, next to :mod:`sphsal.cli.options`' (``positive_int``,
``positive_float``, ``device``, ``output_file`` for ``--json``): a bad value stops a script while its
command line is parsed (``bench_x.py: error: argument --flag: ...``, exit code 2), not after minutes of
benchmarking.
"""

from __future__ import annotations

import argparse


def positive_ints(text: str, names: str, sep: str = ",") -> tuple[int, ...]:
    """``text`` as one integer >= 1 for each of ``names`` (e.g. ``"B,C,CO,H,W"``), separated by ``sep``;
    otherwise an ``ArgumentTypeError`` that shows the expected form."""
    count = len(names.split(sep))
    try:
        values = tuple(int(v) for v in text.split(sep))
    except ValueError:
        values = ()
    if len(values) != count or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected {names}: {count} integers >= 1 separated by {sep!r}, "
                                         f"got {text!r}")
    return values
