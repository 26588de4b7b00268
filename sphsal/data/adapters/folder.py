"""``folder``: a generic layout for your own videos and saliency maps.

On-disk layout::

    <root>/videos/<video>.mp4                    any container PyAV reads; its audio (if any) is used
    <root>/saliency/<video>/<number>.png         one map per frame (PNG or JPEG, grayscale or colour)
    <root>/fixations/<video>/<number>.png        optional binary fixation maps (non-zero = fixated)

Map files are ordered by the last number in their names (``0001.png``, ``frame_12.png``, ...): the
first is frame 0 of the video at its own frame rate, the next frame 1, and so on. Frames without a map
are not targets. Maps follow the ERP convention of the video (row 0 the top, the front in the middle).
Without ``fixations/``, the fixation map marks the maxima of each saliency map.
"""

from __future__ import annotations

import os

from sphsal.data.adapters._common import find_video, make_dataset, numbered_files, video_audio
from sphsal.data.dataset import VideoEntry, check_root, split_videos
from sphsal.data.groundtruth import MapGroundTruth
from sphsal.data.registry import register_dataset
from sphsal.data.sources import ImageMaps, VideoFrames

MAP_EXTENSIONS = (".png", ".jpg", ".jpeg")


@register_dataset("folder")
def folder(root, *, size=None, split: str = "all", **options):
    """Videos and maps in the generic layout under ``root`` (videos that have a ``saliency/`` folder).

    Args:
        size: frame and map size ``(H, W)`` (``None``: the video's).
        split: ``"train"``, ``"test"`` or ``"all"`` (sorted names, every fifth to test).
        **options: the ClipDataset options (``clip_len``, ``frame_step``, ``clip_mode``, ...).
    """
    root = check_root(root, "videos", "saliency")
    saliency_root = os.path.join(root, "saliency")
    names = sorted(n for n in os.listdir(saliency_root) if os.path.isdir(os.path.join(saliency_root, n)))
    entries = []
    for name in split_videos(names, split):
        video = find_video(os.path.join(root, "videos"), name)
        frames = VideoFrames(video, size=size)
        maps = ImageMaps(numbered_files(os.path.join(saliency_root, name), MAP_EXTENSIONS))
        fix_dir = os.path.join(root, "fixations", name)
        fixations = ImageMaps(numbered_files(fix_dir, MAP_EXTENSIONS)) if os.path.isdir(fix_dir) else None
        if fixations is not None and len(fixations) != len(maps):
            raise ValueError(f"{fix_dir} has {len(fixations)} maps but {os.path.join(saliency_root, name)} "
                             f"has {len(maps)}")
        truth = MapGroundTruth(maps, fixations, frames.frame_size, os.path.join(saliency_root, name))
        entries.append(VideoEntry(name, frames.num_frames, frames.fps, frames, truth,
                                  audio=video_audio(video, frames, "auto"),
                                  targets=list(range(min(frames.num_frames, len(maps))))))
    return make_dataset(entries, options, "folder")
