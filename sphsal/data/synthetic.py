"""Synthetic ambisonic 360° videos with simulated viewers, written in the 360AV-HM on-disk layout.

Each scene is a textured spherical background with a few discs of fixed angular radius moving along
great circles (so they cross the +-180° seam and pass near the poles; every disc is drawn by testing
each ERP pixel's great-circle distance to its centre, hence correctly distorted). One or two objects
sound at a time, switching every second or so; each has its own timbre (harmonic tone, noise burst,
amplitude-modulated tone, chirp) and is encoded into first-order ambiX (ACN/SN3D) at its exact
direction at every audio sample with :func:`sphsal.audio.encode`. Video frame ``k`` (interval
``[k/fps, (k+1)/fps)``) pictures the scene at the interval's middle, ``(k + 0.5) / fps``, where the
frame's gaze samples and audio energy window centre. Simulated viewers look mostly at a sounding
object, sometimes at a silent one and otherwise explore with a bias to the equator; their gaze (2 samples
per video frame, with noise) is written as 360AV-HM CSVs for the three audio conditions.
The mp4 files carry H.264 video and 4-channel AAC (or ALAC) audio tagged with an ``SA3D`` box, as
YouTube's spatial-media specification describes.

With ``audio_decisive=True`` all objects look the same, so only the sound says which one is
interesting; with ``False`` the sounding objects are also drawn brighter with a white rim.

Everything is deterministic per ``seed`` (``numpy.random.Generator``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import torch

from sphsal._checks import check_integer, check_number
from sphsal.atomic import atomic_path
from sphsal.audio.io import check_sample_rate
from sphsal.data.groundtruth import default_cache_dir
from sphsal.sphere import (
    directions_to_pixels,
    directions_to_vectors,
    equirect_directions,
    vectors_to_directions,
)

__all__ = ["SyntheticScene", "make_scene", "make_video", "make_dataset", "default_dataset", "simulate_gaze",
           "CONDITION_ATTENTION"]

TIMBRES = ("harmonic", "noise", "am", "chirp")
#: Probability that a viewer's chosen target is a sounding object, per audio condition and
#: ``audio_decisive``: without spatial audio viewers find the sounding object less often.
CONDITION_ATTENTION = {
    True: {"ambix": 0.75, "mono": 0.45, "none": 0.3},
    False: {"ambix": 0.8, "mono": 0.65, "none": 0.55},
}
#: Bumped whenever the generator's output changes, so that :func:`default_dataset` regenerates its cached
#: copy (2: frames picture the middle of their interval).
GENERATOR_VERSION = 2
_SEGMENT_SECONDS = (0.8, 1.6)  # length range of the segments during which a set of objects sounds
_RAMP_SECONDS = 0.01  # fade in/out of each sound


@dataclass
class SyntheticScene:
    """A scene: object trajectories, looks and sound schedule. Times in seconds, angles in radians.

    Attributes:
        start: ``(K, 3)`` unit vectors of the objects at ``t = 0``.
        axis: ``(K, 3)`` unit rotation axes; object ``k`` turns about ``axis[k]`` at ``speed[k]`` rad/s.
        speed: ``(K,)`` angular speeds (rad/s, signed).
        radius: ``(K,)`` angular radii of the discs (rad).
        colour: ``(K, 3)`` RGB in ``[0, 1]``.
        timbre: timbre name per object (:data:`TIMBRES`); ``pitch``: ``(K,)`` base frequencies (Hz).
        segments: list of ``(t0, t1, sounding object indices)`` covering ``[0, duration)``.
        duration: seconds; ``audio_decisive``: see the module docstring; ``background_seed``: texture seed.
    """

    start: np.ndarray
    axis: np.ndarray
    speed: np.ndarray
    radius: np.ndarray
    colour: np.ndarray
    timbre: list[str]
    pitch: np.ndarray
    segments: list[tuple[float, float, tuple[int, ...]]]
    duration: float
    audio_decisive: bool
    background_seed: int

    @property
    def num_objects(self) -> int:
        return len(self.radius)

    def vectors(self, times) -> np.ndarray:
        """Unit vectors ``(K, T, 3)`` of the object centres at ``times`` (Rodrigues' rotation)."""
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        angle = self.speed[:, None] * times[None, :]  # (K, T)
        cos, sin = np.cos(angle)[..., None], np.sin(angle)[..., None]
        p, n = self.start[:, None, :], self.axis[:, None, :]
        cross = np.cross(n, p)
        dot = np.sum(n * p, axis=-1, keepdims=True)
        return p * cos + cross * sin + n * dot * (1 - cos)

    def directions(self, times) -> tuple[np.ndarray, np.ndarray]:
        """``(az, el)``, each ``(K, T)`` radians, of the object centres at ``times``."""
        az, el = vectors_to_directions(self.vectors(times))
        return az.numpy(), el.numpy()

    def sounding(self, times) -> np.ndarray:
        """``(K, T)`` bool: which objects sound at ``times``."""
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        out = np.zeros((self.num_objects, times.size), dtype=bool)
        for t0, t1, objs in self.segments:
            inside = (times >= t0) & (times < t1)
            for k in objs:
                out[k] |= inside
        return out

    def to_json(self) -> dict:
        """JSON-friendly description (what the dataset's ``synthetic.json`` stores per video)."""
        return {
            "start": self.start.tolist(), "axis": self.axis.tolist(), "speed": self.speed.tolist(),
            "radius": self.radius.tolist(), "colour": self.colour.tolist(), "timbre": list(self.timbre),
            "pitch": self.pitch.tolist(), "segments": [[a, b, list(o)] for a, b, o in self.segments],
            "duration": self.duration, "audio_decisive": self.audio_decisive,
            "background_seed": self.background_seed,
        }


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def make_scene(rng: np.random.Generator, duration: float, n_objects: int = 4,
               audio_decisive: bool = True) -> SyntheticScene:
    """Draw a random scene. Object 0 starts just left of the seam (az 160°) moving across it; object 1
    starts 55-70° from the equator and moves on a circle through both poles; the others move on random
    great circles."""
    if n_objects < 2:
        raise ValueError(f"n_objects must be >= 2 (a sounding and a silent object), got {n_objects}")
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    k = n_objects
    az0 = rng.uniform(-math.pi, math.pi, k)
    el0 = rng.uniform(-0.6, 0.6, k)
    az0[0], el0[0] = math.radians(160), math.radians(rng.uniform(-15, 15))
    el0[1] = math.radians(rng.uniform(55, 70)) * rng.choice([-1.0, 1.0])  # starts near a pole
    start = directions_to_vectors(az0, el0).numpy()
    axis = _unit(rng.normal(size=(k, 3)))
    axis[0] = _unit(np.array([0.2 * rng.normal(), 0.2 * rng.normal(), 1.0]))  # near-horizontal motion
    horizontal = _unit(np.cross(start[1], [0.0, 0.0, 1.0]))  # circle through both poles
    axis[1] = horizontal
    # Make each start vector lie on its great circle (perpendicular to the axis).
    start = _unit(start - axis * np.sum(start * axis, axis=1, keepdims=True))
    speed = np.radians(rng.uniform(35, 70, k)) * rng.choice([-1.0, 1.0], k)
    speed[0] = abs(speed[0]) if axis[0, 2] > 0 else -abs(speed[0])  # towards +az: across the seam
    radius = np.radians(rng.uniform(9, 14, k))
    if audio_decisive:
        colour = np.tile(np.array([[0.95, 0.55, 0.1]]), (k, 1))
    else:
        colour = rng.uniform(0.25, 0.95, (k, 3))
    timbre = [TIMBRES[i % len(TIMBRES)] for i in rng.permutation(k)]
    pitch = 220.0 * 2.0 ** (rng.permutation(k) * 5 / 12)  # fourths apart
    segments, t = [], 0.0
    previous: tuple[int, ...] = ()
    while t < duration:
        length = rng.uniform(*_SEGMENT_SECONDS)
        count = 2 if rng.random() < 0.25 else 1
        choices = [i for i in range(k) if i not in previous] or list(range(k))
        picked = rng.choice(choices, size=min(count, len(choices)), replace=False)
        objs = tuple(sorted(int(i) for i in picked))
        segments.append((round(t, 6), round(min(t + length, duration), 6), objs))
        previous, t = objs, t + length
    return SyntheticScene(start, axis, speed, radius, colour, timbre, pitch, segments, float(duration),
                          bool(audio_decisive), int(rng.integers(2**31)))


# --------------------------------------------------------------------------------------------------
# Pictures

def _pixel_vectors(height: int, width: int) -> np.ndarray:
    az, el = equirect_directions(height, width, dtype=torch.float64)
    return directions_to_vectors(az, el).numpy().astype(np.float32)


def render_background(pixels: np.ndarray, seed: int) -> np.ndarray:
    """Smooth seamless texture on the sphere ``(H, W, 3)`` float32 in ``[0, 1]`` from pixel vectors
    ``(H, W, 3)``: a sum of plane waves over the unit vectors (so it has no seam and no pole artefact)."""
    rng = np.random.default_rng(seed)
    out = np.full(pixels.shape, 0.35, dtype=np.float32)
    for _ in range(6):
        direction = _unit(rng.normal(size=3)).astype(np.float32)
        freq = rng.uniform(2.0, 9.0)
        phase = rng.uniform(0, 2 * math.pi)
        wave = np.sin(freq * (pixels @ direction) + phase)
        out += (0.07 * wave)[..., None] * rng.uniform(0.3, 1.0, 3).astype(np.float32)
    return np.clip(out, 0.0, 1.0)


def render_frame(scene: SyntheticScene, t: float, pixels: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The ERP picture ``(H, W, 3)`` uint8 RGB at time ``t``.

    ``pixels`` are the ERP grid's unit vectors ``(H, W, 3)`` and ``background`` the ``(H, W, 3)`` uint8
    backdrop. Each disc covers the pixels whose great-circle distance to its centre is below its
    radius (anti-aliased over one pixel pitch); only the rows of its elevation band are visited.
    """
    img = background.copy()
    h = pixels.shape[0]
    pitch = math.pi / h
    centres = scene.vectors([t])[:, 0]
    sounding = scene.sounding([t])[:, 0]
    for k in range(scene.num_objects):
        r = scene.radius[k]
        margin = r + 2 * pitch
        el = math.asin(float(np.clip(centres[k, 2], -1.0, 1.0)))
        top = max(0, int(math.floor((0.5 - (el + margin) / math.pi) * h - 0.5)))
        bottom = min(h, int(math.ceil((0.5 - (el - margin) / math.pi) * h + 0.5)) + 1)
        band = img[top:bottom]
        cosd = pixels[top:bottom] @ centres[k].astype(np.float32)
        near = cosd > math.cos(min(margin, math.pi))
        if not near.any():
            continue
        dist = np.arccos(np.clip(cosd[near], -1.0, 1.0))
        alpha = np.clip((r - dist) / pitch + 0.5, 0.0, 1.0)[:, None]
        rings = 0.8 + 0.2 * np.cos(dist * (6 * math.pi / r))[:, None]  # concentric texture
        colour = scene.colour[k] * rings
        if sounding[k] and not scene.audio_decisive:
            colour = np.clip(colour * 1.3 + 0.15, 0, 1)
            colour = np.where((dist > 0.8 * r)[:, None], 1.0, colour)  # white rim
        band[near] = (band[near] * (1 - alpha) + colour * 255.0 * alpha + 0.5).astype(np.uint8)
    return img


# --------------------------------------------------------------------------------------------------
# Sound

def _source_signal(timbre: str, pitch: float, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mono signal (peak about 1) of a timbre at ``times`` (seconds); ``pitch`` in Hz."""
    if timbre == "harmonic":
        return sum(np.sin(2 * math.pi * pitch * m * times) / m for m in range(1, 6)) * 0.4
    if timbre == "noise":
        noise = rng.normal(size=times.size)
        kernel = np.hanning(9)
        return np.convolve(noise, kernel / kernel.sum(), mode="same") * 0.9
    if timbre == "am":
        envelope = 0.5 + 0.5 * np.sin(2 * math.pi * 6.0 * times)
        return np.sin(2 * math.pi * pitch * 1.5 * times) * envelope * 0.7
    if timbre == "chirp":
        return np.sin(2 * math.pi * pitch * (times + 0.5 * np.mod(times, 0.5) ** 2 * 8)) * 0.6
    raise ValueError(f"unknown timbre {timbre!r}; expected one of {TIMBRES}")


def _runs(mask: np.ndarray) -> list[slice]:
    """Slices of the runs of ``True`` in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [slice(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def render_audio(scene: SyntheticScene, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """First-order ambiX ``(4, samples)`` float32 of the scene, ``samples = round(duration * rate)``."""
    from sphsal.audio import encode

    n = int(round(scene.duration * sample_rate))
    times = np.arange(n) / sample_rate
    az, el = scene.directions(times)
    gate = scene.sounding(times).astype(np.float64)
    ramp = max(1, int(_RAMP_SECONDS * sample_rate))
    window = np.hanning(2 * ramp + 1)
    window /= window.sum()
    out = np.zeros((4, n), dtype=np.float64)
    for k in range(scene.num_objects):
        smooth = np.convolve(gate[k], window, mode="same")
        for span in _runs(smooth > 0):  # encode only where the object sounds
            mono = _source_signal(scene.timbre[k], float(scene.pitch[k]), times[span], rng) * smooth[span]
            out[:, span] += np.asarray(encode(mono, az[k, span], el[k, span], order=1), dtype=np.float64)
    out[0] += rng.normal(scale=1e-3, size=n)  # faint diffuse floor
    gain = min(0.5, 0.9 / np.abs(out).max())  # W peaks at 0.9 at most: no clipping in the codec
    return (out * gain).astype(np.float32)


def _write_mp4(path: str, frames, fps: Fraction, height: int, width: int, audio: np.ndarray,
               sample_rate: int, audio_codec: str) -> None:
    from sphsal.audio import SpatialAudioMetadata, insert_sa3d

    with atomic_path(path) as tmp:
        _write_streams(tmp, frames, fps, height, width, audio, sample_rate, audio_codec)
        insert_sa3d(tmp, SpatialAudioMetadata.ambix(1))  # spatial-media tag: first-order ambiX
        os.chmod(tmp, 0o644)


def _write_streams(path: str, frames, fps: Fraction, height: int, width: int, audio: np.ndarray,
                   sample_rate: int, audio_codec: str) -> None:
    with av.open(path, "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        # A keyframe every second, as streaming encoders place them: random access stays cheap.
        video.options = {"preset": "veryfast", "crf": "18", "g": str(max(1, round(float(fps))))}
        stream = container.add_stream(audio_codec, rate=sample_rate, layout="4.0")
        if audio_codec == "aac":
            stream.bit_rate = 4 * 96_000
            stream.options = {"aac_coder": "fast"}
        fmt = stream.codec_context.format.name
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        block = 1024
        for start in range(0, audio.shape[1], block):
            chunk = np.ascontiguousarray(_to_sample_format(audio[:, start:start + block], fmt))
            frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="4.0")
            frame.sample_rate, frame.pts = sample_rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _to_sample_format(x: np.ndarray, fmt: str) -> np.ndarray:
    """``(channels, n)`` float in [-1, 1] -> the planar/packed array PyAV expects for ``fmt``."""
    x = np.clip(x, -1.0, 1.0)
    if fmt in ("fltp", "flt"):
        data = x.astype(np.float32)
    elif fmt.startswith("s16"):
        data = np.round(x * 32767).astype(np.int16)
    elif fmt.startswith("s32"):
        data = np.round(x * 2147483392).astype(np.int32)
    else:
        raise ValueError(f"unsupported audio sample format {fmt!r}")
    return data if fmt.endswith("p") else data.T.reshape(1, -1)


#: Sample rates (Hz) the ALAC encoder is given: any integer in this range.
ALAC_RATES = (8000, 384000)


def _check_codec_rate(sample_rate, audio_codec: str) -> int:
    """``sample_rate`` (Hz) as an int, or ``ValueError`` unless ``audio_codec`` encodes at that rate
    (AAC: the rates FFmpeg's encoder lists; ALAC: :data:`ALAC_RATES`)."""
    rate = check_sample_rate(sample_rate)
    if audio_codec == "aac":
        allowed = sorted(av.codec.Codec("aac", "w").audio_rates or ())
        if allowed and rate not in allowed:
            raise ValueError(f"sample_rate {rate} Hz is not one AAC encodes; use one of "
                             f"{', '.join(map(str, allowed))} (or audio_codec='alac')")
    elif not ALAC_RATES[0] <= rate <= ALAC_RATES[1]:
        raise ValueError(f"sample_rate must be from {ALAC_RATES[0]} to {ALAC_RATES[1]} Hz for ALAC, "
                         f"got {rate}")
    return rate


def _check_video_options(duration, fps, height, width, sample_rate, audio_codec) -> Fraction:
    """Validate :func:`make_video`'s options up front (errors name the argument); return ``fps`` as the
    ``Fraction`` the video is written at."""
    if audio_codec not in ("aac", "alac"):
        raise ValueError(f"audio_codec must be 'aac' or 'alac', got {audio_codec!r}")
    for name, size in (("height", height), ("width", width)):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2 or size % 2:
            raise ValueError(f"height and width must be positive even integers (H.264 4:2:0), "
                             f"got {name}={size!r}")
    duration = check_number(duration, "duration")
    rate = Fraction(check_number(fps, "fps")).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be a finite number > 0, got {fps!r}")
    if round(duration * rate) < 1:
        raise ValueError(f"duration {duration!r} s at fps {fps!r} gives no video frame "
                         f"(round(duration * fps) = 0); make duration at least {float(1 / (2 * rate)):.4g} s")
    _check_codec_rate(sample_rate, audio_codec)
    return rate


def make_video(path, *, duration: float = 4.0, fps=8, height: int = 128, width: int = 256, seed: int = 0,
               n_objects: int = 4, audio_decisive: bool = True, sample_rate: int = 16000,
               audio_codec: str = "aac") -> SyntheticScene:
    """Write one synthetic ERP video with 4-channel ambiX audio to ``path`` (mp4, H.264 yuv420p) and
    return its :class:`SyntheticScene`.

    Args:
        duration: seconds (positive, finite); the video has ``round(duration * fps)`` frames, at least 1.
        fps: frame rate (positive, finite; read as a fraction with a denominator up to 1001);
            height, width: ERP size in pixels (positive even integers).
        seed: random seed of the scene.
        n_objects: number of moving discs (>= 2).
        audio_decisive: whether the sounding object looks like the silent ones (see module doc).
        sample_rate: audio rate in Hz: for AAC one of the encoder's rates (8000, 16000, 44100, 48000,
            ...), for ALAC any integer from 8000 to 384000.
        audio_codec: ``"aac"`` (as YouTube/360AV-HM files carry it) or ``"alac"`` (lossless).

    Raises ``ValueError`` naming the argument before anything is written when an option is invalid.
    """
    fps = _check_video_options(duration, fps, height, width, sample_rate, audio_codec)
    rng = np.random.default_rng(seed)
    scene = make_scene(rng, duration, n_objects, audio_decisive)
    pixels = _pixel_vectors(height, width)
    background = (render_background(pixels, scene.background_seed) * 255.0 + 0.5).astype(np.uint8)
    n_frames = int(round(duration * fps))
    # Frame k pictures the middle of its interval [k/fps, (k+1)/fps) (module docstring).
    frames = (render_frame(scene, float((k + Fraction(1, 2)) / fps), pixels, background)
              for k in range(n_frames))
    audio = render_audio(scene, sample_rate, rng)
    _write_mp4(os.fspath(path), frames, fps, height, width, audio, sample_rate, audio_codec)
    return scene


# --------------------------------------------------------------------------------------------------
# Viewers

def simulate_gaze(scene: SyntheticScene, rng: np.random.Generator, n_viewers: int, rate: float,
                  attention: float) -> list[np.ndarray]:
    """Gaze of ``n_viewers`` simulated viewers sampled at ``rate`` Hz.

    At each sample a viewer keeps its target, or (with probability 0.2, or always when its target object
    stopped sounding) picks a new one: a sounding object with probability ``attention``, else a silent
    object (60%) or a free look (azimuth uniform, elevation ~ N(0, 20°): the equator bias). The gaze is
    the target direction plus 3° Gaussian noise.

    Returns one ``(samples, 3)`` array per viewer: time (s), az, el (radians).
    """
    times = (np.arange(int(math.floor(scene.duration * rate))) + 0.5) / rate
    vectors = scene.vectors(times)  # (K, T, 3)
    sounding = scene.sounding(times)
    k_all = np.arange(scene.num_objects)
    out = []
    for _ in range(n_viewers):
        target, free = None, None
        aims = np.empty((times.size, 3))
        for i in range(times.size):
            loud = k_all[sounding[:, i]]
            lost = target is not None and target not in loud and rng.random() < 0.7
            if (target is None and free is None) or lost or rng.random() < 0.2:
                target, free = _pick_target(rng, loud, k_all, attention)
            aims[i] = vectors[target, i] if target is not None else free
        aims = _unit(aims + rng.normal(scale=math.radians(3), size=aims.shape))
        az, el = vectors_to_directions(aims)
        out.append(np.stack((times, az.numpy(), el.numpy()), axis=1))
    return out


def _pick_target(rng: np.random.Generator, loud: np.ndarray, k_all: np.ndarray, attention: float):
    """A new target: ``(object index, None)`` or ``(None, free-look unit vector)``."""
    if loud.size and rng.random() < attention:
        return int(rng.choice(loud)), None
    quiet = np.setdiff1d(k_all, loud)
    if quiet.size and rng.random() < 0.6:
        return int(rng.choice(quiet)), None
    az, el = rng.uniform(-math.pi, math.pi), np.clip(rng.normal(0, math.radians(20)), -1.4, 1.4)
    return None, np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def _write_gaze_csv(path: str, gaze: np.ndarray) -> None:
    row, col = directions_to_pixels(gaze[:, 1], gaze[:, 2], 1, 1)
    u, v = col.numpy() + 0.5, row.numpy() + 0.5
    lines = ["time,2dmu,2dmv"] + [f"{t:.4f},{a:.6f},{b:.6f}" for t, a, b in zip(gaze[:, 0], u, v)]
    with atomic_path(path, durable=False) as tmp:  # inside make_dataset's staging folder
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o644)


def make_dataset(root, n_videos: int = 6, duration: float = 4.0, fps=8, height: int = 128, width: int = 256,
                 seed: int = 0, audio_decisive: bool = True, n_objects: int = 4, n_viewers: int = 12,
                 sample_rate: int = 16000, audio_codec: str = "aac", overwrite: bool = False) -> str:
    """Write a synthetic dataset in the 360AV-HM layout under ``root`` and return ``root``::

        videos/synth_000.mp4 ...                         (see :func:`make_video`)
        dataset_public/{none,mono,ambix}/synth_000/viewer_00.csv ...   time,2dmu,2dmv at 2 x fps
        synthetic.json                                   parameters and every scene's description

    Viewers' attention to the sounding object per condition is :data:`CONDITION_ATTENTION`.

    ``root`` must not exist or be an empty folder: an existing dataset would mix with the new one.
    ``overwrite=True`` replaces a folder that holds a dataset written here (one with a
    ``synthetic.json``) and nothing else: a folder with other files in it is refused, so no other
    content is ever deleted. Options are checked before anything is
    written (``ValueError`` naming the argument; see :func:`make_video`). The dataset is built in a
    temporary folder next to ``root`` and renamed into place when complete, so a failed run leaves
    nothing behind and an interrupted one at most a hidden ``.<name>.*`` staging folder, never a partial
    ``root`` (with ``overwrite`` the old dataset stays until the new one is complete).
    """
    check_integer(n_videos, "n_videos", whole_floats=True)
    check_integer(n_viewers, "n_viewers", whole_floats=True)
    _check_video_options(duration, fps, height, width, sample_rate, audio_codec)
    params = {"n_videos": n_videos, "duration": duration, "fps": fps, "height": height, "width": width,
              "seed": seed, "audio_decisive": audio_decisive, "n_objects": n_objects, "n_viewers": n_viewers,
              "sample_rate": sample_rate, "audio_codec": audio_codec}
    root = os.fspath(root)
    _check_output_root(root, overwrite)
    staging = _staging_folder(root)
    try:
        _write_dataset(staging, **params)
        _publish_folder(staging, root, overwrite)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return root


def _write_dataset(root: str, *, n_videos: int, duration: float, fps, height: int, width: int, seed: int,
                   audio_decisive: bool, n_objects: int, n_viewers: int, sample_rate: int,
                   audio_codec: str) -> None:
    """Write every file of :func:`make_dataset` into the (new, empty) folder ``root``."""
    os.makedirs(os.path.join(root, "videos"), exist_ok=True)
    seeds = np.random.SeedSequence(seed).spawn(n_videos)
    scenes = {}
    for i, child in enumerate(seeds):
        name = f"synth_{i:03d}"
        video_seed, gaze_seed = (int(s.generate_state(1)[0]) for s in child.spawn(2))
        scene = make_video(os.path.join(root, "videos", name + ".mp4"), duration=duration, fps=fps,
                           height=height, width=width, seed=video_seed, n_objects=n_objects,
                           audio_decisive=audio_decisive, sample_rate=sample_rate, audio_codec=audio_codec)
        rng = np.random.default_rng(gaze_seed)
        for condition, attention in CONDITION_ATTENTION[bool(audio_decisive)].items():
            folder = os.path.join(root, "dataset_public", condition, name)
            os.makedirs(folder, exist_ok=True)
            for v, gaze in enumerate(simulate_gaze(scene, rng, n_viewers, 2 * float(fps), attention)):
                _write_gaze_csv(os.path.join(folder, f"viewer_{v:02d}.csv"), gaze)
        scenes[name] = scene.to_json()
    meta = {"n_videos": n_videos, "duration": duration, "fps": str(Fraction(fps).limit_denominator(1001)),
            "height": height, "width": width, "seed": seed, "audio_decisive": audio_decisive,
            "n_objects": n_objects, "n_viewers": n_viewers, "sample_rate": sample_rate,
            "audio_codec": audio_codec, "scenes": scenes}
    with atomic_path(os.path.join(root, "synthetic.json"), durable=False) as tmp:  # in the staging folder
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
        os.chmod(tmp, 0o644)


def _check_output_root(root: str, overwrite: bool) -> None:
    """``ValueError`` naming ``root`` unless :func:`make_dataset` may write there (see its docstring)."""
    if not os.path.lexists(root):
        return
    if not os.path.isdir(root):
        raise ValueError(f"dataset root {root} exists and is not a folder")
    if not os.listdir(root):
        return
    if not overwrite:
        raise ValueError(f"dataset root {root} is not empty; choose a new or empty folder (or --overwrite, "
                         "overwrite=True in Python, to replace a synthetic dataset there)")
    if not os.path.isfile(os.path.join(root, "synthetic.json")):
        raise ValueError(f"dataset root {root} holds no synthetic.json; overwrite only replaces a synthetic "
                         "dataset, so remove that folder yourself or choose another one")
    foreign = _foreign_entries(root)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ValueError(f"dataset root {root} holds files that make_dataset did not write ({shown}); "
                         "overwrite would delete them, so move them away or choose another folder")


def _foreign_entries(root: str) -> list[str]:
    """Paths under ``root`` (relative, sorted) that are not files of the synthetic dataset its
    ``synthetic.json`` describes: anything else a user put there. An unreadable ``synthetic.json``
    makes every path foreign (nothing can be told apart)."""
    try:
        with open(os.path.join(root, "synthetic.json"), encoding="utf-8") as f:
            meta = json.load(f)
        conditions = CONDITION_ATTENTION[bool(meta["audio_decisive"])]
        viewers, names = int(meta["n_viewers"]), list(meta["scenes"])
    except (OSError, ValueError, KeyError, TypeError):
        conditions, viewers, names = {}, 0, []
    known = {"synthetic.json", "videos", "dataset_public"} if names else set()
    for name in names:
        known.add(os.path.join("videos", name + ".mp4"))
        for condition in conditions:
            folder = os.path.join("dataset_public", condition, name)
            known.update({os.path.dirname(folder), folder})
            known.update(os.path.join(folder, f"viewer_{v:02d}.csv") for v in range(viewers))
    foreign = []
    for parent, dirs, files in os.walk(root):
        for entry in dirs + files:
            path = os.path.relpath(os.path.join(parent, entry), root)
            if path not in known:
                foreign.append(path)
        dirs[:] = [d for d in dirs if os.path.relpath(os.path.join(parent, d), root) in known]
    return sorted(foreign)


def _staging_folder(root: str) -> str:
    """Create and return a new empty hidden folder next to ``root`` (same file system, so it can be
    renamed to ``root``; the usual permissions, unlike ``tempfile.mkdtemp``'s 0700)."""
    parent, name = os.path.split(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    while True:
        path = os.path.join(parent, f".{name}.{os.urandom(4).hex()}.tmp")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue


def _publish_folder(staging: str, root: str, overwrite: bool) -> None:
    """Rename the complete ``staging`` folder to ``root``: an empty ``root`` is replaced; a non-empty one
    only with ``overwrite`` (checked again: it may have appeared meanwhile), and it is deleted only after
    the new folder is in place."""
    if os.path.isdir(root) and not os.listdir(root):
        os.rmdir(root)
    if not os.path.lexists(root):
        os.rename(staging, root)
        return
    _check_output_root(root, overwrite)
    old = staging + ".old"
    os.rename(root, old)
    os.rename(staging, root)
    shutil.rmtree(old, ignore_errors=True)


def default_dataset(root=None, **params) -> str:
    """The embedded default dataset (for the demo, tests and benchmarks): :func:`make_dataset` with its
    defaults (6 videos x 4 s, 128x256, 8 fps, audio decisive) or ``params``, generated once and reused.

    ``root=None`` keeps it in ``<cache>/synthetic/<hash of the parameters and GENERATOR_VERSION>``
    (:func:`~sphsal.data.groundtruth.default_cache_dir`). :func:`make_dataset` builds it in a temporary
    folder renamed into place, so concurrent callers never see a half-written dataset (the one that
    finishes second keeps the first one's). Returns the root path.
    """
    if root is None:
        keyed = {**params, "generator": GENERATOR_VERSION}
        digest = hashlib.sha1(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()[:12]
        root = os.path.join(default_cache_dir(), "synthetic", f"default-{digest}")
    root = os.fspath(root)
    stamp = os.path.join(root, "synthetic.json")
    if os.path.isfile(stamp):
        return root
    try:
        make_dataset(root, **params)
    except (ValueError, OSError):  # "not empty" / a rename race: another caller may have finished first
        if not os.path.isfile(stamp):  # not another caller's finished dataset: a real error
            raise
    return root
