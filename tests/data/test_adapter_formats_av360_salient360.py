"""360AV-HM and Salient360! adapters against the published file formats.

Salient360! (``Videos/`` on the dataset's FTP, described by its ``Readme_Videos.md``): ``Stimuli/``,
``H/SalMaps``, ``H/Scanpaths/<name>_fixations.csv``, ``HE/SalMaps``, ``HE/Scanpaths/{L,R}/``; the CSV
header is ``# Idx, longitude, latitude, start timestamp, duration, start frame, end frame`` with
timestamps in ms and frames numbered from 1 (every observer's first fixation starts at frame 1, the last
ends at the video's frame count). 360AV-HM: ``dataset_public/{none,mono,ambix}/<video>/<user>.csv`` with
columns ``time`` (s), ``2dmu``, ``2dmv`` (ERP fractions from the top-left), read by name.
"""

import math

import numpy as np
import pytest
from data_fixtures import H, W, near, peak, pixel_of, write_video, write_video_with_audio

from sphsal.data import create_dataset

HEADER = "# Idx, longitude, latitude, start timestamp, duration, start frame, end frame\n"


def fixated(item) -> list[tuple[int, int]]:
    return [tuple(p) for p in item["fixations"].nonzero().tolist()]


def published_tree(root, tracking="H", frames=4, scanpaths=None):
    """A Salient360! ``Videos/`` folder with video ``18_Bar``: frame ``k``'s map is bright at row
    ``2 + k`` (so row 0 is the top of the ERP image), and the given ``{relative path: csv rows}``."""
    (root / "Stimuli").mkdir(parents=True)
    write_video(str(root / "Stimuli" / "18_Bar.mp4"), frames, 8, h=H, w=W)
    maps = np.zeros((frames, H, W), dtype="<f4")
    for k in range(frames):
        maps[k, 2 + k, 7 * k] = 1.0
    (root / tracking / "SalMaps").mkdir(parents=True)
    maps.tofile(root / tracking / "SalMaps" / f"18_Bar_{W}x{H}x{frames}_32b.bin")
    for rel, rows in (scanpaths or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(HEADER + rows)


def test_salient360_published_layout_and_one_based_frames(tmp_path):
    # Two observers (Idx restarts at 0), timestamps in ms; frames 1-2 look ahead, frames 3-4 a quarter
    # turn left and 45 degrees down.
    rows = ("0,0.5,0.5,0.0,200.0,1,2\n1,0.25,0.75,250.0,200.0,3,4\n"
            "0,0.5,0.5,0.0,200.0,1,2\n1,0.25,0.75,250.0,200.0,3,4\n")
    published_tree(tmp_path, "H", scanpaths={"H/Scanpaths/18_Bar_fixations.csv": rows})
    ds = create_dataset("salient360", tmp_path, tracking="H", clip_len=1)
    items = [ds[k] for k in range(4)]
    for k, item in enumerate(items):
        assert peak(item["saliency"]) == (2 + k, 7 * k)  # map k is video frame k, row 0 on top
        assert len(fixated(item)) == 1
    front, left_down = pixel_of(0.0, 0.0), pixel_of(math.pi / 2, -math.pi / 4)
    assert [near(fixated(it)[0], front) for it in items] == [True, True, False, False]
    assert [near(fixated(it)[0], left_down) for it in items] == [False, False, True, True]


def test_salient360_frame_numbers_are_not_zero_based(tmp_path):
    # A fixation of frame 1 only belongs to the first video frame; one of the last frame (the
    # video's frame count) to the last; nothing is shifted by one.
    rows = "0,0.5,0.5,0.0,40.0,1,1\n1,0.75,0.5,40.0,40.0,4,4\n"
    published_tree(tmp_path, "H", scanpaths={"H/Scanpaths/18_Bar_fixations.csv": rows})
    ds = create_dataset("salient360", tmp_path, tracking="H", clip_len=1)
    counts = [len(fixated(ds[k])) for k in range(4)]
    assert counts[0] == 1 and counts[3] == 1
    assert near(fixated(ds[0])[0], pixel_of(0.0, 0.0))
    assert near(fixated(ds[3])[0], pixel_of(-math.pi / 2, 0.0))


def test_salient360_head_eye_combines_left_and_right_eye_scanpaths(tmp_path):
    published_tree(tmp_path, "HE", scanpaths={
        "HE/Scanpaths/L/18_Bar_fixations.csv": "0,0.5,0.5,0.0,500.0,1,4\n",
        "HE/Scanpaths/R/18_Bar_fixations.csv": "0,0.25,0.5,0.0,500.0,1,4\n"})
    item = create_dataset("salient360", tmp_path, clip_len=1)[1]  # tracking defaults to "HE"
    points = fixated(item)
    assert len(points) == 2
    assert any(near(p, pixel_of(0.0, 0.0)) for p in points)
    assert any(near(p, pixel_of(math.pi / 2, 0.0)) for p in points)


def test_salient360_tracking_option_and_missing_folders(tmp_path):
    published_tree(tmp_path, "H")
    with pytest.raises(ValueError, match="tracking"):
        create_dataset("salient360", tmp_path, tracking="eye")
    with pytest.raises(FileNotFoundError, match="HE/SalMaps"):  # only head-only maps here
        create_dataset("salient360", tmp_path)
    item = create_dataset("salient360", tmp_path, tracking="H", clip_len=1)[0]
    assert peak(item["saliency"]) == (2, 0) and item["fixations"].sum() == 1  # no CSV: the map's maximum


def test_360avhm_reads_columns_by_name_in_seconds_from_the_top_left(tmp_path):
    # The published CSVs carry more columns than time, 2dmu, 2dmv (read by name); time is in seconds
    # from the start of the video: at 8 fps, t = 0.30 s is frame 2 and t = 0.55 s frame 4.
    (tmp_path / "videos").mkdir()
    write_video_with_audio(str(tmp_path / "videos" / "idLVnagjl_s.mp4"), 8, 8, channels=4, h=H, w=W)
    folder = tmp_path / "dataset_public" / "mono" / "idLVnagjl_s"
    folder.mkdir(parents=True)
    rows = [(t / 8 + 0.05, 0.5, 0.5) for t in range(8)]
    rows[2] = (0.30, 0.25, 0.25)  # a quarter turn left, 45 degrees up
    rows[4] = (0.55, 0.75, 0.75)  # a quarter turn right, 45 degrees down
    (folder / "user1.csv").write_text(",time,2dmu,2dmv\n"
                                      + "".join(f"{i},{t},{u},{v}\n" for i, (t, u, v) in enumerate(rows)))
    ds = create_dataset("360av-hm", tmp_path, condition="mono", clip_len=1, cache_dir=False)
    assert near(peak(ds[2]["saliency"]), pixel_of(math.pi / 2, math.pi / 4))
    assert near(peak(ds[4]["saliency"]), pixel_of(-math.pi / 2, -math.pi / 4))
    assert near(peak(ds[3]["saliency"]), pixel_of(0.0, 0.0))
