"""Dataset adapters: importing this package registers every adapter with :mod:`sphsal.data.registry`.

Each module reads one published on-disk format as it is and converts its conventions at load time.
"""

from sphsal.data.adapters import av360hm  # noqa: F401  (registers "360av-hm")
