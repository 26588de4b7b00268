"""Dataset adapters: importing this package registers every adapter with :mod:`sphsal.data.registry`.

Each module reads one published on-disk format as it is and converts its conventions at load time.
"""

from sphsal.data.adapters import (  # noqa: F401  (each import registers its dataset)
    av360hm,
    eccv18,
    folder,
    pvs_hm,
    salient360,
    stavis,
    vr_eyetracking,
)
