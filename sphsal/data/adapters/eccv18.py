"""``eccv18``: the 360° video saliency set of Zhang et al., ECCV 2018 (104 videos).

On-disk layout (the ``frames`` level is optional: the published archive unpacks the video folders
directly next to ``vinfo.pkl``)::

    <root>/vinfo.pkl                      {video: {'NNNN': [(x_norm, y_norm), ...]}}
    <root>/[frames/]<video>/NNNN.jpg      ERP frames

``x_norm``/``y_norm`` are ERP coordinates normalised to ``[0, 1]`` from the top-left (x right, y down);
they are converted to (azimuth, elevation) here. Frames are indexed in the order of their numbers; the
ground truth of a frame is the spherical Gaussian (sigma 9°, the paper's value) of its gaze points.

``vinfo.pkl`` is a pickle: it is read with a restricted unpickler that only builds plain containers,
numbers, strings and numpy arrays and scalars (the points may have been stored as arrays) and refuses
anything else (no code from the file ever runs).
"""

from __future__ import annotations

import io
import os
import pickle
from fractions import Fraction

from sphsal.data.adapters._common import make_dataset, numbered_files, resolve_cache_dir, uv_to_directions
from sphsal.data.dataset import VideoEntry, check_root, split_videos
from sphsal.data.groundtruth import GazeGroundTruth, GazeSamples
from sphsal.data.registry import register_dataset
from sphsal.data.sources import ImageFrames

#: Ground-truth sigma (degrees) used by Zhang et al.
DEFAULT_SIGMA_DEG = 9.0
_SAFE_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes",
                  "bool", "bytearray"}
# numpy arrays and scalars: the helpers numpy's pickles name (numpy.core in numpy 1, numpy._core in
# numpy 2; _frombuffer in protocol 5), and _codecs.encode, with which protocol-2 pickles store raw
# bytes. They build data only; the elements of an object array are other pickled objects, restricted
# like the rest.
_SAFE_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                 *((module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
                   for name in ("_reconstruct", "scalar")),
                 *((module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric"))}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that builds only builtin containers/numbers/strings and numpy arrays/scalars; every
    other global is refused."""

    def find_class(self, module, name):
        if (module == "builtins" and name in _SAFE_BUILTINS) or (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data is allowed")


def load_vinfo(path: str) -> dict:
    """Read ``vinfo.pkl`` safely (see module doc); errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"annotation file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        info = _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(f"cannot read {path}: not a plain-data pickle ({err})") from err
    if not isinstance(info, dict) or not all(isinstance(v, dict) for v in info.values()):
        raise ValueError(f"{path} must hold {{video: {{frame id: [(x, y), ...]}}}}, "
                         f"got {type(info).__name__}")
    return info


def frame_gaze(points_per_frame: list, source: str) -> GazeSamples:
    """Gaze points per frame (list over frames of ``[(x_norm, y_norm), ...]``) -> samples with frame ``k``
    at time ``k + 0.5`` (the adapter indexes frames at 1 frame per second)."""
    times, us, vs = [], [], []
    for k, points in enumerate(points_per_frame):
        for point in points:
            if len(point) != 2:
                raise ValueError(f"{source}: gaze points must be (x_norm, y_norm) pairs, got {point!r}")
            times.append(k + 0.5)
            us.append(float(point[0]))
            vs.append(float(point[1]))
    az, el = uv_to_directions(us, vs, source, ("x_norm", "y_norm"))
    return GazeSamples(times, az, el, [0] * len(times), source=source)


@register_dataset("eccv18")
def eccv18(root, *, size=None, split: str = "all", sigma_deg: float = DEFAULT_SIGMA_DEG, cache_dir=None,
           **options):
    """The ECCV 2018 set under ``root``; frames must have gaze points in ``vinfo.pkl``.

    Args:
        size: frame and map size ``(H, W)`` (``None``: the images').
        split: ``"train"``, ``"test"`` or ``"all"`` (sorted names, every fifth to test).
        sigma_deg, cache_dir: as for ``360av-hm``.
        **options: the ClipDataset options (``clip_len``, ``frame_step``, ``clip_mode``, ...).
    The dataset has no audio (items carry an empty ``(0, 0)`` audio tensor).
    """
    root = check_root(root, "vinfo.pkl")
    vinfo_path = os.path.join(root, "vinfo.pkl")
    vinfo = load_vinfo(vinfo_path)
    frames_root = os.path.join(root, "frames") if os.path.isdir(os.path.join(root, "frames")) else root
    cache = resolve_cache_dir(cache_dir)
    entries = []
    for name in split_videos(vinfo, split):
        paths = numbered_files(os.path.join(frames_root, name), (".jpg", ".jpeg", ".png"))
        ids = [os.path.splitext(os.path.basename(p))[0] for p in paths]
        missing = [i for i in ids if i not in vinfo[name]]
        if missing:
            raise ValueError(f"{vinfo_path} has no gaze for frame(s) {missing[:5]} of video {name!r}")
        frames = ImageFrames(paths, size)
        samples = frame_gaze([vinfo[name][i] for i in ids], f"{vinfo_path} [{name}]")
        truth = GazeGroundTruth(samples, 1, frames.frame_size, sigma_deg, cache,
                                key=f"eccv18|{os.path.abspath(root)}|{name}", fill_gaps=False)
        entries.append(VideoEntry(name, frames.num_frames, Fraction(1), frames, truth))
    return make_dataset(entries, options, "eccv18")
