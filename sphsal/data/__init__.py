"""Data: video reading, clip sampling, dataset adapters (registry) and the synthetic ambisonic 360° video
generator that is sphsal's embedded default dataset.

    >>> from sphsal.data import create_dataset, default_dataset
    >>> ds = create_dataset("360av-hm", default_dataset(), clip_len=8)
    >>> item = ds[0]; item["frames"].shape, item["audio"].shape
"""

from sphsal.data.clips import audio_window, clip_indices, clip_span, slice_audio, time_to_sample
from sphsal.data.dataset import ClipDataset, VideoEntry, split_videos
from sphsal.data.groundtruth import (
    EmptyGroundTruth,
    GazeGroundTruth,
    GazeSamples,
    MapGroundTruth,
    default_cache_dir,
)
from sphsal.data.registry import create_dataset, list_datasets, register_dataset
from sphsal.data.synthetic import default_dataset, make_dataset, make_video
from sphsal.data.video import VideoReader

__all__ = [
    "VideoReader", "clip_indices", "clip_span", "audio_window", "slice_audio", "time_to_sample",
    "ClipDataset", "VideoEntry", "split_videos", "GazeSamples", "GazeGroundTruth", "MapGroundTruth",
    "EmptyGroundTruth",
    "default_cache_dir", "create_dataset", "list_datasets", "register_dataset", "make_video", "make_dataset",
    "default_dataset",
]
