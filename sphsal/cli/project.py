"""``sphsal project``: project an ERP image or video to a cubemap, HEALPix map or perspective viewport.

Without INPUT a generated test pattern (:func:`sphsal.testimages.erp_test_pattern`) is projected::

    sphsal project --to cubemap --out cube.png
    sphsal project pano.jpg --to viewport --fov 90 --yaw 30 --pitch 10 --size 480x640 --out view.png
    sphsal project clip.mp4 --to cubemap --layout horizon --out clip_cube.mp4
    sphsal project --to healpix --nside 64 --out map.npy

Cubemaps are written in the ``dice`` (cross, default) or ``horizon`` layout. HEALPix output is a
``.npy`` array, NESTED ordering: ``(3, Npix)`` float32 RGB in [0, 1] for an image, ``(T, 3, Npix)``
uint8 for a video; beside it OUT with a ``.png`` suffix previews the (first) map, resampled to an ERP
image with nearest HEALPix pixels (``healpix_to_equirect``) so the pixel layout is visible. All files
are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import math
import os

import cv2
import numpy as np
import torch
from tqdm import tqdm

from sphsal._checks import check_input_file
from sphsal.atomic import atomic_path
from sphsal.cli.options import check_outputs
from sphsal.projections import (
    equirect_to_cubemap,
    equirect_to_healpix,
    equirect_to_perspective,
    healpix_to_equirect,
)

TARGETS = ("cubemap", "healpix", "viewport")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
BATCH_FRAMES = 8


def register(subparsers) -> None:
    p = subparsers.add_parser("project", help="project an ERP image/video to a cubemap, HEALPix or viewport",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("input", nargs="?", default=None,
                   help="ERP image (png/jpg) or video (mp4); default: a generated test pattern")
    p.add_argument("--to", required=True, choices=TARGETS, help="target projection")
    p.add_argument("--out", required=True, help="output file (.png/.jpg, .mp4 for a video, .npy for healpix)")
    p.add_argument("--face-size", type=int, default=None,
                   help="cube face side in pixels, a positive integer (default H/2)")
    p.add_argument("--layout", choices=("dice", "horizon"), default="dice",
                   help="cubemap image layout (default: dice)")
    p.add_argument("--nside", type=int, default=64, help="HEALPix nside, a power of 2 (default 64)")
    p.add_argument("--fov", type=float, default=90.0,
                   help="viewport horizontal field of view in degrees, in (0, 180) (default 90)")
    p.add_argument("--yaw", type=float, default=0.0, help="viewport yaw in degrees (positive: left)")
    p.add_argument("--pitch", type=float, default=0.0, help="viewport pitch in degrees (positive: up)")
    p.add_argument("--roll", type=float, default=0.0, help="viewport roll in degrees")
    p.add_argument("--size", default="512x512", help="viewport size HxW (default 512x512)")
    p.add_argument("--pattern-size", default="512x1024", help="size HxW of the generated pattern")
    p.add_argument("--mode", choices=("bilinear", "nearest"), default="bilinear", help="interpolation")
    p.add_argument("--quiet", action="store_true", help="no progress bar for videos")
    p.set_defaults(func=run)


def parse_hw(text: str, name: str) -> tuple[int, int]:
    """``"HxW"`` -> ``(H, W)`` positive integers."""
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"{name} must look like HxW, e.g. 512x1024, got {text!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive, got {text!r}")
    return h, w


def _check_options(args) -> None:
    """Raise ``ValueError`` naming the flag, in its own units, for a ``--face-size`` that is not a positive
    integer, a ``--fov`` outside (0, 180) degrees or a non-finite ``--yaw`` / ``--pitch`` / ``--roll``
    (the projections' own errors speak radians)."""
    if args.face_size is not None and args.face_size < 1:
        raise ValueError(f"--face-size must be a positive number of pixels, got {args.face_size}")
    if not 0.0 < args.fov < 180.0:
        raise ValueError(f"--fov must be a horizontal field of view in (0, 180) degrees, got {args.fov:g}")
    for flag in ("yaw", "pitch", "roll"):
        if not math.isfinite(getattr(args, flag)):
            raise ValueError(f"--{flag} must be a finite angle in degrees, got {getattr(args, flag):g}")


def _projector(args, erp_h: int):
    """A function ``(B, 3, H, W) -> (B, 3, h, w)`` images, or ``(B, 3, Npix)`` maps for healpix."""
    if args.to == "cubemap":
        face = max(1, erp_h // 2) if args.face_size is None else args.face_size
        return lambda x: equirect_to_cubemap(x, face, mode=args.mode, layout=args.layout)
    if args.to == "healpix":
        return lambda x: equirect_to_healpix(x, args.nside, mode=args.mode)
    out_hw = parse_hw(args.size, "--size")
    angles = [math.radians(a) for a in (args.fov, args.yaw, args.pitch, args.roll)]
    return lambda x: equirect_to_perspective(x, *angles, out_hw=out_hw, mode=args.mode)


def _to_tensor(frames_bgr: list[np.ndarray]) -> torch.Tensor:
    """uint8 BGR frames ``(H, W, 3)`` -> float32 RGB ``(B, 3, H, W)`` in [0, 1]."""
    batch = np.stack([f[..., ::-1] for f in frames_bgr])
    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div(255)
    if x.shape[-1] % 2:
        raise ValueError(f"input ERP width must be even, got {x.shape[-1]}")
    return x


def _to_bgr(x: torch.Tensor) -> np.ndarray:
    """float RGB ``(3, H, W)`` -> uint8 BGR ``(H, W, 3)``."""
    rgb = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(rgb[..., ::-1])


def write_atomically(path: str, write) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path`` (same suffix), then rename it to ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)


def write_image(path: str, x: torch.Tensor) -> None:
    """Write a float RGB ``(3, H, W)`` image atomically."""

    def write(tmp):
        if not cv2.imwrite(tmp, _to_bgr(x)):
            raise ValueError(f"cannot write image {path!r}: unsupported suffix or unwritable directory")

    write_atomically(path, write)


def write_array(path: str, array: np.ndarray) -> None:
    """Save a ``.npy`` array atomically."""

    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, array)

    write_atomically(path, write)


def healpix_preview(maps: torch.Tensor) -> torch.Tensor:
    """``(3, Npix)`` NESTED maps -> ``(3, h, 2h)`` ERP preview with nearest HEALPix pixels."""
    nside = math.isqrt(maps.shape[-1] // 12)
    h = min(512, max(64, 4 * nside))
    return healpix_to_equirect(maps[None].float(), h, 2 * h, mode="nearest")[0]


def read_image(path: str) -> torch.Tensor:
    """An ERP image file -> ``(1, 3, H, W)`` float32 RGB in [0, 1]."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read {path!r} as an image (expected an ERP png/jpg)")
    return _to_tensor([img])


def _check_out(args) -> None:
    suffix = os.path.splitext(args.out)[1].lower()
    video = args.input is not None and os.path.splitext(args.input)[1].lower() in VIDEO_SUFFIXES
    if args.to == "healpix":
        expected = (".npy",)
    else:
        expected = (".mp4",) if video else (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
    if suffix not in expected:
        raise ValueError(f"--out {args.out!r} must end with one of {expected} for --to {args.to}"
                         f"{' from a video' if video else ''}")
    directory = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"output directory {directory!r} of --out does not exist")
    outputs = [(args.out, "--out")]
    if args.to == "healpix":
        outputs.append((os.path.splitext(args.out)[0] + ".png", "the PNG preview beside --out"))
    check_outputs(args.input, outputs)


def _read_batches(reader, quiet: bool, source: str):
    """Yield float32 RGB batches ``(B, 3, H, W)`` of up to ``BATCH_FRAMES`` frames of the video ``source``
    from its :class:`~sphsal.data.VideoReader`; ``ValueError`` when a frame it declares cannot be decoded,
    as in a truncated or corrupt file (its output is then not written). The frames are those of the
    video's time line at its frame rate (a variable-frame-rate video is resampled at its average rate;
    the declared length is the video stream's own, not the container's, which a longer audio track
    extends)."""
    total = len(reader)
    read = 0
    with tqdm(total=total, unit="frame", desc="project", disable=quiet) as bar:
        for start in range(0, total, BATCH_FRAMES):
            frames = []
            for k in range(start, min(total, start + BATCH_FRAMES)):
                try:
                    frames.append(reader.read_frame(k))
                except ValueError as err:
                    raise ValueError(f"video {source!r} ends after {read} of the {total} frames it "
                                     "declares: the file is truncated or corrupt; nothing was written "
                                     f"({err})") from err
                read += 1
            bar.update(len(frames))
            yield torch.stack(frames)


def _write_mp4(path: str, batches, fps: float, source: str) -> int:
    """Write float RGB batches ``(B, 3, h, w)`` projected from video ``source`` as mp4 frames;
    returns the number of frames (an error if there were none, or if ``h`` or ``w`` is odd)."""
    writer, count = None, 0
    try:
        for batch in batches:
            for view in batch:
                bgr = _to_bgr(view)
                if writer is None:
                    h, w = bgr.shape[:2]
                    if h % 2 or w % 2:
                        raise ValueError(f"the projected frames are {h}x{w} pixels: an MP4 needs even sizes "
                                         f"(its encoder would cut them to {h // 2 * 2}x{w // 2 * 2}); choose "
                                         "an even --size or --face-size")
                    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                             (bgr.shape[1], bgr.shape[0]))
                writer.write(bgr)
                count += 1
    finally:
        if writer is not None:
            writer.release()
    if count == 0:
        raise ValueError(f"{source!r} holds no readable video frames")
    return count


def project_video(args) -> int:
    """Project every frame of ``args.input``; returns the number of frames written."""
    from sphsal.data.video import VideoReader

    with VideoReader(args.input) as reader:  # ValueError naming the file when it is not a video
        if reader.width % 2:
            raise ValueError(f"input ERP width must be even, got {reader.width} ({args.input!r})")
        project = _projector(args, reader.height)
        batches = (project(batch) for batch in _read_batches(reader, args.quiet, args.input))
        with torch.no_grad():
            if args.to != "healpix":
                counts = []
                write_atomically(args.out, lambda tmp: counts.append(
                    _write_mp4(tmp, batches, float(reader.fps), args.input)))
                return counts[0]
            maps = [(b.clamp(0, 1) * 255).round().to(torch.uint8).numpy() for b in batches]
    if not maps:
        raise ValueError(f"{args.input!r} holds no readable video frames")
    stacked = np.concatenate(maps)
    write_array(args.out, stacked)
    write_image(os.path.splitext(args.out)[0] + ".png",
                healpix_preview(torch.from_numpy(stacked[0]).float().div(255)))
    return len(stacked)


def run(args) -> int:
    if args.input is not None:
        check_input_file(args.input, "input file")
    _check_options(args)
    _check_out(args)
    if args.input is not None and os.path.splitext(args.input)[1].lower() in VIDEO_SUFFIXES:
        count = project_video(args)
        print(f"wrote {args.out} ({count} frames, {args.to})")
        return 0
    if args.input is None:
        from sphsal.testimages import erp_test_pattern

        x = erp_test_pattern(*parse_hw(args.pattern_size, "--pattern-size"))[None]
    else:
        x = read_image(args.input)
    with torch.no_grad():
        out = _projector(args, x.shape[-2])(x)[0]
    if args.to == "healpix":
        write_array(args.out, out.numpy().astype(np.float32))
        preview = os.path.splitext(args.out)[0] + ".png"
        write_image(preview, healpix_preview(out))
        print(f"wrote {args.out} ({tuple(out.shape)} NESTED HEALPix, nside {args.nside}) and {preview}")
    else:
        write_image(args.out, out)
        print(f"wrote {args.out} ({out.shape[-2]}x{out.shape[-1]} {args.to})")
    return 0
