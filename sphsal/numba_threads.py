"""One numba threading policy for the whole package.

Measured on 2 cores: once numba's OpenMP layer has run a parallel region in a process, its idle threads
keep spinning, and every later video frame decoded in that process (FFmpeg's own threads) costs about
2.5x the CPU time. sphsal runs numba-parallel kernels (metrics, density maps) next to video decoding
(evaluation, prediction, data loading), so before its first parallel kernel it points numba at the
``workqueue`` layer, whose threads sleep when idle. A layer chosen explicitly by the user (the
``NUMBA_THREADING_LAYER`` environment variable) or already started is left alone.
"""

from __future__ import annotations

import os


def prefer_sleeping_threads() -> None:
    """Select numba's ``workqueue`` threading layer unless one was chosen or has already run."""
    import numba

    if os.environ.get("NUMBA_THREADING_LAYER"):
        return
    try:
        numba.threading_layer()
    except ValueError:  # no parallel region has run yet: the layer can still be chosen
        numba.config.THREADING_LAYER = "workqueue"
