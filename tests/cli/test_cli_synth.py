import json

from sphsal.cli import main


def test_synth_command_writes_a_readable_dataset(tmp_path, capsys):
    root = tmp_path / "synthetic"
    code = main(["synth", str(root), "--videos", "2", "--duration", "0.5", "--fps", "4", "--height", "16",
                 "--width", "32", "--viewers", "2", "--seed", "7"])
    assert code == 0 and "wrote 2 videos" in capsys.readouterr().out
    meta = json.loads((root / "synthetic.json").read_text())
    assert (meta["n_videos"], meta["fps"], meta["seed"], meta["audio_decisive"]) == (2, "4", 7, True)
    from sphsal.data import create_dataset

    assert len(create_dataset("360av-hm", root, clip_len=2, cache_dir=False)) == 4
    again = ["synth", str(root), "--videos", "1", "--duration", "0.5", "--fps", "4", "--height", "16",
             "--width", "32", "--viewers", "1"]
    assert main(again) == 2 and "not empty" in capsys.readouterr().err  # never mixed with the old videos
    assert main([*again, "--overwrite"]) == 0
    assert len(create_dataset("360av-hm", root, clip_len=2, cache_dir=False)) == 2


def test_synth_command_reports_bad_sizes(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "x"), "--height", "15"]) == 2
    assert "even" in capsys.readouterr().err
