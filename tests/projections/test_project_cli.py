"""The ``sphsal project`` command (sphsal/cli/project.py)."""

import cv2
import numpy as np
import pytest

from sphsal.cli import main


def test_cubemap_png_from_the_generated_pattern(tmp_path):
    out = tmp_path / "cube.png"
    assert main(["project", "--to", "cubemap", "--out", str(out), "--pattern-size", "32x64"]) == 0
    img = cv2.imread(str(out))
    assert img.shape == (3 * 16, 4 * 16, 3)  # dice layout, face size H/2
    assert img[16:32, 16:32].std() > 5 and img[:16, :16].max() == 0  # front face drawn, corner empty
    assert [p.name for p in tmp_path.iterdir()] == ["cube.png"]  # no temporary file left behind


def test_viewport_and_healpix_outputs(tmp_path):
    view = tmp_path / "view.png"
    assert main(["project", "--to", "viewport", "--fov", "60", "--yaw", "180", "--size", "24x32",
                 "--pattern-size", "32x64", "--out", str(view)]) == 0
    assert cv2.imread(str(view)).shape == (24, 32, 3)
    maps = tmp_path / "map.npy"
    assert main(["project", "--to", "healpix", "--nside", "4", "--pattern-size", "32x64",
                 "--out", str(maps)]) == 0
    array = np.load(maps)
    assert array.shape == (3, 12 * 16) and array.dtype == np.float32 and 0 <= array.min() <= array.max() <= 1
    assert cv2.imread(str(tmp_path / "map.png")).shape == (64, 128, 3)


def test_image_and_video_inputs(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (32, 64, 3), dtype=np.uint8) for _ in range(3)]
    image = tmp_path / "pano.png"
    cv2.imwrite(str(image), frames[0])
    out = tmp_path / "horizon.png"
    assert main(["project", str(image), "--to", "cubemap", "--layout", "horizon", "--face-size", "8",
                 "--out", str(out)]) == 0
    assert cv2.imread(str(out)).shape == (8, 48, 3)

    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 32))
    for frame in frames:
        writer.write(frame)
    writer.release()
    out = tmp_path / "clip_cube.mp4"
    assert main(["project", str(video), "--to", "cubemap", "--face-size", "8", "--out", str(out)]) == 0
    cap = cv2.VideoCapture(str(out))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = cap.read()
    cap.release()
    assert ok and first.shape == (24, 32, 3) and count == 3

    maps = tmp_path / "clip.npy"
    assert main(["project", str(video), "--to", "healpix", "--nside", "2", "--quiet",
                 "--out", str(maps)]) == 0
    array = np.load(maps)
    assert array.shape == (3, 3, 48) and array.dtype == np.uint8
    assert (tmp_path / "clip.png").exists()


def test_missing_or_unreadable_input_is_named(tmp_path, capsys):
    missing = tmp_path / "nothere.png"
    assert main(["project", str(missing), "--to", "cubemap", "--out", str(tmp_path / "c.png")]) == 2
    assert "nothere.png" in capsys.readouterr().err
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    assert main(["project", str(junk), "--to", "cubemap", "--out", str(tmp_path / "c.png")]) == 2
    assert "junk.jpg" in capsys.readouterr().err
    assert main(["project", "--to", "healpix", "--out", str(tmp_path / "map.png")]) == 2
    assert ".npy" in capsys.readouterr().err
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video")
    assert main(["project", str(fake), "--to", "cubemap", "--out", str(tmp_path / "c.mp4")]) == 2
    assert "fake.mp4" in capsys.readouterr().err
    assert main(["project", "--to", "healpix", "--out", str(tmp_path / "map.png")]) == 2
    assert ".npy" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.mp4", "junk.jpg"]  # nothing written


def test_help_lists_the_command(capsys):
    with pytest.raises(SystemExit):
        main(["project", "--help"])
    assert "--to" in capsys.readouterr().out


def test_flags_are_checked_in_their_own_units(tmp_path, capsys):
    out = str(tmp_path / "c.png")
    cube = ["project", "--to", "cubemap", "--pattern-size", "16x32", "--out", out]
    # --face-size 0 silently fell back to the default
    assert main([*cube, "--face-size", "0"]) == 2
    assert "--face-size must be a positive number of pixels, got 0" in capsys.readouterr().err
    # the error spoke radians ("(0, pi) radians, got 3.49") for a flag given in degrees
    assert main(["project", "--to", "viewport", "--fov", "200", "--pattern-size", "16x32", "--out", out]) == 2
    assert "--fov must be a horizontal field of view in (0, 180) degrees, got 200" in capsys.readouterr().err
    assert main(["project", "--to", "viewport", "--yaw", "nan", "--pattern-size", "16x32", "--out", out]) == 2
    assert "--yaw must be a finite angle in degrees" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert main([*cube, "--face-size", "3"]) == 0
    assert cv2.imread(out).shape == (9, 12, 3)
