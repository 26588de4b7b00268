"""``sphsal aem``: render the audio energy map of an ambisonic 360° video as a heatmap over its frames.

Writes OUT (an MP4 with the heatmap over every frame, each map normalised by its own maximum, and the
source audio kept) and, beside it, a PNG still of the frame with the loudest map (OUT with ``.png``).
"""

from __future__ import annotations

import os
import warnings

from sphsal.cli.options import check_outputs, non_negative_float, output_file, positive_float, positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser("aem", help="render a video's audio energy map", description=__doc__)
    p.add_argument("video", metavar="VIDEO", help="360° video (ERP) with ambisonic audio")
    p.add_argument("--out", required=True, type=output_file,
                   help="output MP4 (a PNG still is written next to it)")
    p.add_argument("--decoder", default="cardioid", choices=("cardioid", "max_re", "pwd"),
                   help="beam of each map direction: cardioid (default, AVS360's), max_re or pwd "
                        "(plane waves)")
    p.add_argument("--window", type=positive_float, default=None,
                   help="analysis window in seconds (default: one frame; AVS360 uses 0.1)")
    p.add_argument("--smoothing", type=non_negative_float, default=None,
                   help="temporal smoothing sigma in seconds")
    p.add_argument("--map-size", default="64x128", help="energy map resolution HxW (default 64x128)")
    p.add_argument("--max-height", type=positive_int, default=960,
                   help="downscale frames taller than this (pixels, default 960)")
    p.add_argument("--allow-non-ambisonic", action="store_true",
                   help="render a uniform map (with a warning) instead of failing on mono/stereo audio")
    p.set_defaults(func=run)


def _size(text: str) -> tuple[int, int]:
    """``"64x128"`` -> ``(64, 128)``; ``ValueError`` naming ``--map-size`` otherwise."""
    h, sep, w = text.lower().partition("x")
    if not sep or not h.isdigit() or not w.isdigit() or int(h) < 1 or int(w) < 1:
        raise ValueError(f"--map-size expects HxW with positive sizes such as 64x128, got {text!r}")
    return int(h), int(w)


def still_path(out: str) -> str:
    """The PNG still written beside the video ``out``."""
    return os.path.splitext(out)[0] + ".png"


def check_paths(video: str, out: str) -> None:
    """``ValueError`` before any work when ``out`` is not an ``.mp4`` file (the video written is MP4), or
    it or the PNG still beside it is an existing folder, the input ``video`` itself, or the other one."""
    if os.path.splitext(out)[1].lower() != ".mp4":
        raise ValueError(f"--out must name an .mp4 file (the AEM video is written as MP4), got {out!r}")
    check_outputs(video, [(out, "--out"), (still_path(out), "the PNG still beside --out")])


def render_aem(video: str, out: str, *, decoder: str = "cardioid", window: float | None = None,
               smoothing: float | None = None, map_size=(64, 128), max_height: int = 960,
               allow_non_ambisonic: bool = False) -> tuple[str, str]:
    """Render the AEM of ``video`` to ``out`` (MP4) and a PNG still; returns both paths (paths are
    checked first: :func:`check_paths`)."""
    check_paths(video, out)
    if max_height < 1:
        raise ValueError(f"max_height must be a positive number of pixels, got {max_height}")
    import torch

    from sphsal.audio import energy_map, load_audio, require_ambisonic
    from sphsal.data import VideoReader
    from sphsal.sphere import resize_equirect
    from sphsal.viz import capped_size, overlay, tensor_to_frame, write_png, write_video

    audio, rate = load_audio(video, align_to_video=True)
    seconds = audio.shape[-1] / rate
    if window is not None and window > seconds:  # (a window of 1e300 s overflowed, 1e9 s exhausted memory)
        raise ValueError(f"--window {window:g} s is longer than the audio of {video} ({seconds:.3g} s)")
    try:
        require_ambisonic(audio, path=video)
        ambisonic = True
    except ValueError as err:
        if not allow_non_ambisonic:
            raise ValueError(f"{err} (--allow-non-ambisonic renders a uniform map instead)") from err
        warnings.warn(f"{err}; rendering a uniform energy map", stacklevel=2)
        ambisonic = False
    with VideoReader(video) as probe:
        size = capped_size(probe.height, probe.width, max_height, 2 * probe.width)
    with VideoReader(video, size=size) as reader:
        if ambisonic:
            maps = energy_map(audio, rate, reader.fps, *map_size, decoder=decoder, window=window,
                              num_frames=len(reader), smoothing=smoothing)
        else:
            maps = torch.ones(len(reader), *map_size)

        def heat(t):  # the ERP map at the frame size, interpolated across the +-180 deg seam and the poles
            return resize_equirect(maps[t], size) if maps.shape[-1] % 2 == 0 else maps[t]

        frames = (overlay(tensor_to_frame(reader.read_frame(t)), heat(t)) for t in range(len(reader)))
        write_video(out, frames, float(reader.fps), audio=audio if audio.shape[0] <= 8 else audio[:1],
                    sample_rate=rate)
        loudest = int(maps.flatten(1).amax(dim=1).argmax())
        still = still_path(out)
        write_png(still, overlay(tensor_to_frame(reader.read_frame(loudest)), heat(loudest)))
    return out, still


def run(args) -> int:
    out, still = render_aem(args.video, args.out, decoder=args.decoder, window=args.window,
                            smoothing=args.smoothing, map_size=_size(args.map_size),
                            max_height=args.max_height, allow_non_ambisonic=args.allow_non_ambisonic)
    print(f"wrote {out} and {still}")
    return 0
