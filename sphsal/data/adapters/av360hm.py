"""``360av-hm``: the 360AV-HM head-movement dataset (Chao et al., ICMEW 2020).

On-disk layout::

    <root>/videos/<video>.mp4                             ERP video with first-order ambiX audio
                                                          (or ``videos/ambix/<video>.mp4``, as some
                                                          download scripts store the ambiX version)
    <root>/dataset_public/<condition>/<video>/<participant>.csv
                                                          columns time (s), 2dmu, 2dmv

``condition`` is the audio condition the participants watched under: ``none``, ``mono`` or ``ambix``.
``2dmu``/``2dmv`` are normalised ERP coordinates from the top-left (u to the right, v down); they are
converted to (azimuth, elevation) at load time. Ground truth: Gaussian density on the sphere of the
viewers' samples in each frame's interval (:mod:`sphsal.data.groundtruth`), cached.
"""

from __future__ import annotations

import os

from sphsal.data.adapters._common import (
    find_video,
    gaze_video_entry,
    make_dataset,
    read_table,
    resolve_cache_dir,
    uv_to_directions,
)
from sphsal.data.dataset import check_root, split_videos
from sphsal.data.groundtruth import GazeSamples
from sphsal.data.registry import register_dataset

CONDITIONS = ("none", "mono", "ambix")
#: Header names of the gaze CSV columns.
GAZE_COLUMNS = {"time": ("time",), "u": ("2dmu",), "v": ("2dmv",)}
#: Default Gaussian sigma (degrees): head-movement data, as Salient360!'s head-only maps.
DEFAULT_SIGMA_DEG = 3.34


def read_gaze_csv(path: str, viewer: int) -> GazeSamples:
    """One participant's CSV -> :class:`GazeSamples` (seconds, radians)."""
    table = read_table(path, GAZE_COLUMNS)
    az, el = uv_to_directions(table["u"], table["v"], path, (GAZE_COLUMNS["u"][0], GAZE_COLUMNS["v"][0]))
    return GazeSamples(table["time"], az, el, [viewer] * table["time"].size, source=path)


def read_video_gaze(folder: str) -> GazeSamples:
    """All participants' CSVs in ``folder`` (one video and condition), viewers numbered in name order."""
    files = sorted(n for n in os.listdir(folder) if n.lower().endswith(".csv"))
    if not files:
        raise FileNotFoundError(f"no participant CSV files in {folder}")
    return GazeSamples.concatenate([read_gaze_csv(os.path.join(folder, n), i) for i, n in enumerate(files)],
                                   source=folder)


def _ambix_video(root: str, name: str) -> str:
    """The ambiX video ``name`` in ``<root>/videos`` or else ``<root>/videos/ambix``
    (``FileNotFoundError`` naming the last folder looked in when neither has it)."""
    folder = os.path.join(root, "videos")
    try:
        return find_video(folder, name)
    except FileNotFoundError:
        if os.path.isdir(os.path.join(folder, "ambix")):
            return find_video(os.path.join(folder, "ambix"), name)
        raise


@register_dataset("360av-hm")
def av360hm(root, *, condition: str = "ambix", size=None, fps=None, split: str = "all",
            sigma_deg: float = DEFAULT_SIGMA_DEG, cache_dir=None, short_audio: str = "error", **options):
    """The 360AV-HM dataset under ``root``.

    Args:
        condition: ``"none"``, ``"mono"`` or ``"ambix"`` (default): whose gaze makes the ground truth.
        size: frame and map size ``(H, W)`` (``None``: the video's).
        fps: frame rate of the items (``None``: the video's).
        split: ``"train"``, ``"test"`` or ``"all"`` (sorted names, every fifth to test).
        sigma_deg: Gaussian sigma of the ground truth, degrees.
        cache_dir: ground-truth cache folder (``None``: :func:`~sphsal.data.groundtruth.default_cache_dir`,
            ``False``: no cache).
        short_audio: ``"error"`` (default) or ``"silence"``: what to do with a soundtrack shorter than its
            video (see :class:`~sphsal.data.sources.AudioTrack`).
        **options: the ClipDataset options (``clip_len``, ``frame_step``, ``clip_mode``, ...).

    Every video must carry ambisonic audio (checked from a probe when the dataset is built; the error
    names the video), and gaze coordinates must be normalised (in ``[0, 1]``).
    """
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    root = check_root(root, "videos", os.path.join("dataset_public", condition))
    gaze_root = os.path.join(root, "dataset_public", condition)
    names = sorted(n for n in os.listdir(gaze_root) if os.path.isdir(os.path.join(gaze_root, n)))
    cache = resolve_cache_dir(cache_dir)
    entries = []
    for name in split_videos(names, split):
        samples = read_video_gaze(os.path.join(gaze_root, name))
        video = _ambix_video(root, name)
        entries.append(gaze_video_entry(name, video, samples, fps=fps, size=size, sigma_deg=sigma_deg,
                                        cache_dir=cache, audio="ambisonic", short_audio=short_audio,
                                        key=f"360av-hm|{os.path.abspath(root)}|{condition}|{name}"))
    return make_dataset(entries, options, "360av-hm")
