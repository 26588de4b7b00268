"""sphsal: saliency prediction on 360-degree video with spatial (ambisonic) audio.

Subpackages load on first use, so ``import sphsal`` stays light and never fails because an optional
dependency (CuPy, a GPU, TensorBoard) is missing::

    import sphsal
    conv = sphsal.nn.SphericalConv2d(3, 16)
"""

import importlib

from sphsal._version import __version__

_SUBMODULES = (
    "sphere", "projections", "ops", "nn", "audio", "priors", "metrics", "data", "models", "engine",
    "viz", "cli",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name):
    if name in _SUBMODULES:
        module = importlib.import_module(f"sphsal.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'sphsal' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
