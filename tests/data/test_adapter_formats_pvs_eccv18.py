"""PVS-HM and ECCV18 fixtures laid out as the published archives are, per the authors' own loaders.

PVS-HM: YuhangSong/DHP (README "Details of the mat data file"; envs.py reads ``<database>/<video>.mp4``
next to ``<database>/FULLdata_per_video_frame.mat``; suppor_lib.get_subjects: column 2k latitude, 2k + 1
longitude). ECCV18: xuyanyu-shh/Saliency-detection-in-360-video data.py (video folders next to
``vinfo.pkl``, frames ``%04d.jpg`` keyed by their file stem, points ``(x_norm, y_norm)`` from the top-left,
Gaussian sigma pi / 20; the archive also ships ``NNNN_gt.npy`` heatmaps beside the frames).
"""

import math
import pickle

import numpy as np
import scipy.io
from data_fixtures import H, W, near, peak, pixel_of, write_jpg_frames, write_video

from sphsal.data import create_dataset
from sphsal.data.adapters import eccv18, pvs_hm


# --- pvs-hm
def test_pvs_hm_reads_the_published_flat_layout_two_rows_per_frame_from_the_first(tmp_path):
    write_video(str(tmp_path / "A380.mp4"), 3, 4, h=H, w=W)  # MP4 beside the .mat, no videos/ folder
    # one viewer, (lat, lon) in degrees, up and left positive; rows 2k and 2k + 1 belong to frame k
    rows = [(0.0, 90.0)] * 2 + [(45.0, 0.0)] * 2 + [(-30.0, -90.0)] * 2
    scipy.io.savemat(tmp_path / "FULLdata_per_video_frame.mat", {"A380": np.array(rows)})
    ds = create_dataset("pvs-hm", tmp_path, clip_len=1, cache_dir=False)
    assert len(ds) == 3
    expected = [(math.pi / 2, 0.0), (0.0, math.pi / 4), (-math.pi / 2, -math.pi / 6)]
    for k, (az, el) in enumerate(expected):
        item = ds[k]
        assert item["frame_index"] == k
        assert near(peak(item["saliency"]), pixel_of(az, el)), k


def test_pvs_hm_sample_times_and_units():
    data = np.array([[10.0, 20.0, -5.0, 170.0]] * 4)  # two viewers
    samples = pvs_hm.pvs_gaze(data, 25, "x.mat [v]")
    order = np.argsort(samples.viewer, kind="stable")
    assert np.allclose(samples.time[order], [0.01, 0.03, 0.05, 0.07] * 2)  # 2 rows per 1/25 s frame
    assert np.allclose(samples.el[order], np.radians([10.0] * 4 + [-5.0] * 4))
    assert np.allclose(samples.az[order], np.radians([20.0] * 4 + [170.0] * 4))


# --- eccv18
def test_eccv18_reads_the_published_layout_frames_from_0001_keyed_by_stem(tmp_path):
    video = tmp_path / "217"  # video folders sit directly beside vinfo.pkl
    write_jpg_frames(str(video), 3, "%04d.jpg", h=H, w=W, first=1)
    for k in range(1, 4):  # the archive's ground-truth heatmaps, next to each frame: not frames
        np.save(video / f"{k:04d}_gt.npy", np.zeros((1, 8, 16), np.float32))
    vinfo = {"217": {"0001": [(0.5, 0.25)], "0002": [(0.25, 0.5), (0.25, 0.5)], "0003": [[0.75, 0.75]]}}
    with open(tmp_path / "vinfo.pkl", "wb") as f:
        pickle.dump(vinfo, f, protocol=2)
    ds = create_dataset("eccv18", tmp_path, clip_len=1, cache_dir=False)
    assert len(ds) == 3
    # x right and y DOWN from the top-left: y 0.25 is 45 degrees up, x 0.25 a quarter turn left
    expected = [(0.0, math.pi / 4), (math.pi / 2, 0.0), (-math.pi / 2, -math.pi / 4)]
    for k, (az, el) in enumerate(expected):
        item = ds[k]
        assert item["frame_index"] == k  # 0001.jpg is the first frame
        assert near(peak(item["saliency"]), pixel_of(az, el)), k


def test_eccv18_default_sigma_is_the_authors_pi_over_20():
    assert math.isclose(eccv18.DEFAULT_SIGMA_DEG, math.degrees(math.pi / 20))
