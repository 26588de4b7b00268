"""The ``stavis`` adapter against the published STAViS/AViNet file conventions.

Facts checked (sources: atsiami/STAViS ``datasets/saliency_db.py``, ``opts.py``, ``eval_code/eval_diem.m``;
samyak0210/ViNet ``dataloader.py``; fold lists as published in ViNet-Saliency/vinet_v2 ``fold_lists/``):

* frames, maps and fixation files count from 1: 0-based frame ``k`` is ``img_{k+1:05d}.jpg``,
  ``maps/eyeMap_{k+1:05d}.jpg`` and ``fixMap_{k+1:05d}.mat`` (variable ``eyeMap``, binary);
* fold lists hold ``"<vid> <nframes> <fps>"`` lines with fps written like ``24.999750``;
* DIEM has no fold-numbered lists: ``DIEM_list_{train,test}_fps.txt`` serve every fold.
"""

import os
import shutil
from fractions import Fraction

import numpy as np
import pytest
import scipy.io
from data_fixtures import write_stavis_tree

from sphsal.data import create_dataset
from sphsal.data.adapters.stavis import read_fold_list


def add_diem(root, n_frames=6, fps="29.999700"):
    """Copy the fixture's 'DB' videos to a 'DIEM' database with only fold-free lists (as published)."""
    for src in ("video_frames", "annotations", "video_audio"):
        shutil.copytree(os.path.join(root, src, "DB"), os.path.join(root, src, "DIEM"))
    for part, vid in (("train", "v"), ("test", "w")):
        with open(os.path.join(root, "fold_lists", f"DIEM_list_{part}_fps.txt"), "w") as f:
            f.write(f"{vid} {n_frames} {fps}\n")


@pytest.mark.parametrize("fold", [1, 2, 3])
def test_diem_fold_free_lists_serve_every_fold(tmp_path, fold):
    write_stavis_tree(str(tmp_path), 30, 6, 16000)
    add_diem(str(tmp_path))
    train = create_dataset("stavis", tmp_path, databases="DIEM", fold=fold, split="train", clip_len=2)
    test = create_dataset("stavis", tmp_path, databases="DIEM", fold=fold, split="test", clip_len=2)
    assert train.videos == ["DIEM/v"] and test.videos == ["DIEM/w"]
    assert train.entries[0].fps == 30  # "29.999700" as published


def test_databases_none_finds_diem_next_to_fold_numbered_databases(tmp_path):
    write_stavis_tree(str(tmp_path), 30, 6, 16000)
    add_diem(str(tmp_path))
    ds = create_dataset("stavis", tmp_path, split="all", clip_len=2)
    assert sorted(ds.videos) == ["DB/v", "DB/w", "DIEM/v", "DIEM/w"]


def test_fold_numbered_list_wins_over_fold_free_one(tmp_path):
    write_stavis_tree(str(tmp_path), 25, 6, 16000)
    with open(os.path.join(tmp_path, "fold_lists", "DB_list_train_fps.txt"), "w") as f:
        f.write("w 6 25\n")
    assert create_dataset("stavis", tmp_path, split="train", clip_len=2).videos == ["DB/v"]


def test_missing_lists_name_both_file_names(tmp_path):
    write_stavis_tree(str(tmp_path), 25, 6, 16000)
    with pytest.raises(FileNotFoundError, match=r"DB_list_train_2_fps.txt \(nor DB_list_train_fps.txt"):
        create_dataset("stavis", tmp_path, fold=2, split="train")


def test_published_fold_list_lines_parse(tmp_path):
    path = tmp_path / "AVAD_list_test_1_fps.txt"
    path.write_text("V32_Dancers 202 28.666571\nV3_Speech3 243 29.970030\nclip4 385 24.999750\n"
                    "Valparaiso_Downhill 5177 29.970030\nx 10 23.976024\n")
    rows = read_fold_list(str(path))
    assert [r[:2] for r in rows] == [("V32_Dancers", 202), ("V3_Speech3", 243), ("clip4", 385),
                                     ("Valparaiso_Downhill", 5177), ("x", 10)]
    assert [r[2] for r in rows] == [Fraction(86, 3), Fraction(30000, 1001), 25, Fraction(30000, 1001),
                                    Fraction(24000, 1001)]


def test_frames_maps_and_fixmaps_count_from_one(tmp_path):
    # Frame k (0-based) must read img/eyeMap/fixMap number k + 1 (STAViS saliency_db.py: frames
    # 1..n_frames, audio of frame v at (v - 1) / fps; ViNet: img_%05d % (start_idx + i + 1)).
    write_stavis_tree(str(tmp_path), 25, 6, 16000)
    notes = tmp_path / "annotations" / "DB" / "v"
    for number in range(1, 7):
        fix = np.zeros((16, 32))
        fix[number, 2 * number] = 1.0  # 'eyeMap' key, binary, as in eval_diem.m
        scipy.io.savemat(notes / f"fixMap_{number:05d}.mat", {"eyeMap": fix})
    ds = create_dataset("stavis", tmp_path, split="train", clip_len=1)
    for item in ds:
        k = item["frame_index"]
        assert item["fixations"].nonzero().tolist() == [[k + 1, 2 * (k + 1)]]
