"""``folder``: a generic layout for your own videos and saliency maps.

On-disk layout::

    <root>/videos/<video>.mp4                    any container PyAV reads; its audio (if any) is used
    <root>/saliency/<video>/<number>.png         one map per frame (PNG or JPEG, grayscale or colour)
    <root>/fixations/<video>/<number>.png        optional binary fixation maps (non-zero = fixated)

A map's frame is the last number in its name (``0001.png``, ``frame_12.png``, ...) minus the number of
frame 0's map, ``first_number`` (default: the smallest number in the video's ``saliency/`` folder), at
the video's own frame rate. Frames without a map are not targets (a gap in the numbering skips a frame,
it never shifts the maps after it); two files with the same number are an error. Maps follow the ERP
convention of the video (row 0 the top, the front in the middle). Without ``fixations/``, the
fixation map marks the maxima of each saliency map; with it, every saliency map needs the fixation map
of the same number.
"""

from __future__ import annotations

import os

from sphsal._checks import check_integer
from sphsal.data.adapters._common import find_video, make_dataset, numbered_file_map, video_audio
from sphsal.data.dataset import VideoEntry, check_root, split_videos
from sphsal.data.groundtruth import MapGroundTruth
from sphsal.data.registry import register_dataset
from sphsal.data.sources import ImageMaps, VideoFrames

MAP_EXTENSIONS = (".png", ".jpg", ".jpeg")


@register_dataset("folder")
def folder(root, *, size=None, split: str = "all", first_number: int | None = None,
           short_audio: str = "error", **options):
    """Videos and maps in the generic layout under ``root`` (videos that have a ``saliency/`` folder).

    Args:
        size: frame and map size ``(H, W)`` (``None``: the video's).
        split: ``"train"``, ``"test"`` or ``"all"`` (sorted names, every fifth to test).
        first_number: the number in the name of frame 0's map (e.g. 1 for maps numbered from 1);
            ``None``: the smallest number found, per video.
        short_audio: ``"error"`` (default) or ``"silence"``: what to do with a soundtrack shorter than its
            video (see :class:`~sphsal.data.sources.AudioTrack`).
        **options: the ClipDataset options (``clip_len``, ``frame_step``, ``clip_mode``, ...).
    """
    first_number = check_integer(first_number, "first_number", minimum=0, optional=True, whole_floats=True)
    root = check_root(root, "videos", "saliency")
    saliency_root = os.path.join(root, "saliency")
    names = sorted(n for n in os.listdir(saliency_root) if os.path.isdir(os.path.join(saliency_root, n)))
    entries = []
    for name in split_videos(names, split):
        video = find_video(os.path.join(root, "videos"), name)
        frames = VideoFrames(video, size=size)
        map_dir = os.path.join(saliency_root, name)
        maps, base = frame_maps(map_dir, first_number)
        fix_dir = os.path.join(root, "fixations", name)
        fixations = None
        if os.path.isdir(fix_dir):
            fixations, _ = frame_maps(fix_dir, base)  # numbered as the saliency maps
            missing = sorted(set(maps) - set(fixations))
            if missing:
                raise ValueError(f"{fix_dir} has no fixation map for frame(s) {missing[:5]} that have a "
                                 f"saliency map in {map_dir}")
        truth = MapGroundTruth(ImageMaps(maps), None if fixations is None else ImageMaps(fixations),
                               frames.frame_size, map_dir)
        entries.append(VideoEntry(name, frames.num_frames, frames.fps, frames, truth,
                                  audio=video_audio(video, frames, "auto", short_audio),
                                  targets=[k for k in maps if k < frames.num_frames]))
    return make_dataset(entries, options, "folder")


def frame_maps(folder_path: str, first_number: int | None) -> tuple[dict[int, str], int]:
    """``{frame index: map file}`` of the numbered maps in ``folder_path`` and the number of frame 0:
    frame = number - ``first_number`` (``None``: the smallest number). A number below ``first_number``
    raises ``ValueError`` naming the file."""
    numbered = numbered_file_map(folder_path, MAP_EXTENSIONS)
    base = min(numbered) if first_number is None else int(first_number)
    below = [path for number, path in numbered.items() if number < base]
    if below:
        raise ValueError(f"{below[0]} is numbered below first_number={base}")
    return {number - base: path for number, path in numbered.items()}, base
