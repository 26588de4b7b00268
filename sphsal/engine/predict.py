"""Prediction on videos: per-frame saliency maps (PNG and/or NPY) and an overlay MP4 with the source audio.

For every frame ``t`` of a video (at the model's or a chosen frame rate) the model sees the causal clip of
``clip_len`` frames ending at ``t`` (sliding window; the first frame repeats at the start; centred on
``t`` for models whose ``input_spec.clip_mode`` is ``"center"``) and the audio under that clip. Models
that read an earlier frame's saliency (the spherical U-Net) get their own prediction for frame ``t - k``,
``k`` their ``input_spec.prev_saliency_interval`` (the first ``k`` frames get its ``prev_saliency_start``
map). Outputs of a video go to ``OUT/<video name>/``::

    maps/00000.png ...   the map of each frame, max-normalised to 0..255 at the frame size
    maps/00000.npy ...   (with save_npy) the model's raw output map: float32 (h, w) at the model's output
                         resolution, non-negative, in the model's own scale (not normalised: its sum
                         depends on the model; the metrics normalise internally, so score it as it is
                         and divide by its sum where a probability map is needed)
    overlay.mp4          heatmap over the frames, with the source audio
    done.json            written last: the video, its frames, and the settings that made the outputs

A rerun skips a video whose ``done.json`` records the same source video (its size and modification
time: another file of the same name, or the same file changed, is another source), the
same model settings (registry name, options, weights digest, requested frame rate) and every output
asked for now; with the same source and model settings but an output missing (e.g. ``save_npy`` now,
not then) the video is redone. Outputs of another source or other model settings are never replaced
silently: that is a ``ValueError`` unless ``overwrite=True``, which redoes the video (as for a
``done.json`` of an older sphsal that did not record them).

Every file is written atomically. A model that needs ambisonic audio (the AEM) fails with a clear
error on a mono or stereo video; one with a ``use_aem`` option runs without it when built with
``use_aem=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import weakref
from collections.abc import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from sphsal._checks import check_integer, check_number
from sphsal.atomic import atomic_path, write_text
from sphsal.data.clips import audio_window, clip_indices, clip_span, slice_audio
from sphsal.engine.evaluate import FedBackMaps, upsample_prediction
from sphsal.engine.runtime import collate_items, resolve_device, to_device
from sphsal.models.checkpoints import format_differences, mapping_differences
from sphsal.models.registry import stored_model_kwargs
from sphsal.viz import capped_size, overlay, tensor_to_frame, write_png, write_video

DONE_NAME = "done.json"
#: ``done.json`` settings that must match for a finished video to count (see :func:`output_settings`):
#: the source video's identity and the model settings.
MATCHED_SETTINGS = ("source", "model_name", "model_kwargs", "weights_sha1", "requested_fps")
#: ``done.json`` flags of the outputs written; a finished video counts if it has every one asked for.
OUTPUT_FLAGS = ("png", "npy", "overlay")
#: AAC carries at most this many channels; higher-order ambisonics keeps its W channel in the overlay.
MAX_OVERLAY_CHANNELS = 8
_MAP_FILE = re.compile(r"\d{5}\.(png|npy)")  # maps/00000.png ...


def _load_video_audio(path: str, model) -> tuple[np.ndarray | None, int]:
    """The video's audio ``(channels, samples)`` (from its first frame on) and rate; checks it is
    ambisonic when the model needs the AEM. Returns ``(None, 0)`` for a silent video when the model
    needs no audio."""
    from sphsal.audio import load_audio, require_ambisonic

    spec = model.input_spec
    needs_audio = spec.audio_channels > 0 or spec.needs_audio_mel or spec.needs_aem
    try:
        audio, rate = load_audio(path, align_to_video=True)
    except ValueError as err:
        if needs_audio:
            name = getattr(model, "model_name", type(model).__name__)
            raise ValueError(f"{err}; {name} reads the audio: use a visual-only model for silent videos "
                             "(e.g. avs360_visual, vinet, stavis_visual; see sphsal models)") from err
        return None, 0
    if spec.needs_aem:
        try:
            require_ambisonic(audio, path=path)
        except ValueError as err:
            raise ValueError(f"{err}. This model reads the audio energy map (AEM), which needs ambisonic "
                             f"audio; {_without_aem_hint(model)}") from err
    return audio, rate


def _without_aem_hint(model) -> str:
    """What to do about a model that reads the AEM on a video without ambisonic audio: turn the AEM off
    where the model has a ``use_aem`` option; otherwise it cannot run on the video."""
    from sphsal.models import list_models, model_options
    from sphsal.models.registry import keyword_options

    name = getattr(model, "model_name", None)
    options = model_options(name) if name in list_models() else None
    if options is None:  # built from its class, or a factory whose options cannot be told
        options = keyword_options(type(model))[0]
    if "use_aem" in options:
        return ("run the model without it (sphsal predict --no-aem, model option use_aem=False) or give a "
                "video with ambisonic audio")
    return (f"{name or type(model).__name__} has no use_aem option, so it cannot run without ambisonic "
            "audio: give a video with ambisonic audio or choose a model that reads no AEM (e.g. "
            "avs360_no_aem)")


def _check_options(batch_size, fps) -> int:
    """``batch_size`` as an int; ``ValueError`` naming ``batch_size`` or ``fps`` when it is not positive
    (``fps`` may be None: the video's own)."""
    batch_size = check_integer(batch_size, "batch_size")
    check_number(fps, "fps", optional=True)
    return batch_size


# model -> (state key, digest): predict_videos hashes the same weights for its check and for every
# video (AVS360's 103 M parameters: 0.3 s each time on a 2-core Xeon).
_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_digest(model: torch.nn.Module) -> str:
    """SHA-1 of the model's parameters and buffers (names, dtypes, shapes and values). Remembered per
    model while no tensor of its state is replaced or changed in place (each tensor's storage, offset
    and version counter are the key)."""
    state = {name: t for name, t in model.state_dict().items() if isinstance(t, torch.Tensor)}
    key = tuple((name, t.device, t.dtype, t.shape, t.data_ptr(), t._version) for name, t in state.items())
    remembered = _DIGESTS.get(model)
    if remembered is not None and remembered[0] == key:
        return remembered[1]
    digest = hashlib.sha1()
    for name, tensor in state.items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    _DIGESTS[model] = (key, digest.hexdigest())
    return digest.hexdigest()


def source_identity(path) -> dict:
    """The video file ``path`` as ``done.json`` matches it: its size (bytes) and modification time (ns).
    Cheap (no hashing of the video); another file of the same name, or the same file rewritten or
    touched, almost surely has another identity, while the same file moved with its folder (or the
    folder mounted elsewhere) keeps it. The record's ``video`` entry gives the path."""
    status = os.stat(path)
    return {"size": status.st_size, "mtime_ns": status.st_mtime_ns}


def output_settings(model: torch.nn.Module, path, *, fps=None, save_png: bool = True, save_npy: bool = False,
                    make_overlay: bool = True) -> dict:
    """What decides the outputs of the video ``path``, as stored in ``done.json``: the source video
    (:func:`source_identity`), the model's registry name, keyword arguments and weights digest, the
    requested frame rate and which outputs are written (JSON values)."""
    settings = {"source": source_identity(path),
                "model_name": getattr(model, "model_name", type(model).__name__),
                "model_kwargs": dict(getattr(model, "model_kwargs", {}) or {}),
                "weights_sha1": _weights_digest(model), "requested_fps": fps,
                "png": bool(save_png), "npy": bool(save_npy), "overlay": bool(make_overlay)}
    return json.loads(json.dumps(settings, default=repr))


def _previous_record(done_path: str, settings: dict) -> dict | None:
    """The ``done.json`` record of a video finished with the source and model settings
    (:data:`MATCHED_SETTINGS`) of ``settings``; None when there is none. ``ValueError`` naming the
    folder when it was finished from another source or with other model settings, or the record is
    unreadable or does not record them (an older sphsal)."""
    if not os.path.exists(done_path):
        return None
    folder = os.path.dirname(done_path)
    try:
        with open(done_path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {done_path} ({err}); pass overwrite=True (sphsal predict --overwrite) "
                         "to redo the video") from err
    if not isinstance(record, dict):
        raise ValueError(f"{done_path} holds a {type(record).__name__}, not a record; pass overwrite=True "
                         "(sphsal predict --overwrite) to redo the video")
    unrecorded = [what for key, what in (("weights_sha1", "the model settings"),
                                         ("source", "the source video")) if key not in record]
    if unrecorded:
        raise ValueError(f"{done_path} was written by an older sphsal that did not record "
                         f"{' or '.join(unrecorded)}; pass overwrite=True (sphsal predict --overwrite) to "
                         "redo the video")
    if isinstance(record.get("model_kwargs"), dict):  # as they built the recorded model
        record = {**record, "model_kwargs": stored_model_kwargs(record.get("model_name"),
                                                                 record["model_kwargs"])}
    differences = mapping_differences(record, settings, keys=list(MATCHED_SETTINGS))
    if differences:
        made = ([f"from another video file ({record.get('video')!r} as recorded, or that file changed since)"]
                if "source" in differences else [])
        if set(differences) - {"source"}:
            made.append("with other model settings")
        raise ValueError(f"{folder} holds predictions made {' and '.join(made)} "
                         f"({format_differences(differences, 'done.json', 'this call')}); pass "
                         "overwrite=True (sphsal predict --overwrite) to replace them, or choose another "
                         "output folder")
    return record


def _missing_outputs(record: dict, settings: dict) -> list[str]:
    """The outputs asked for in ``settings`` that a finished video's ``record`` did not write."""
    return [k for k in OUTPUT_FLAGS if settings[k] and record.get(k) is not True]


def _clear_outputs(video_dir: str) -> None:
    """Delete what an earlier (other or interrupted) run wrote into ``video_dir``: ``done.json`` first
    (so an interrupted redo never leaves a record of outputs it replaced), then the frame maps
    ``maps/NNNNN.png`` / ``.npy`` and ``overlay.mp4``; other files are left alone."""
    maps_dir = os.path.join(video_dir, "maps")
    stale = [os.path.join(video_dir, DONE_NAME), os.path.join(video_dir, "overlay.mp4")]
    if os.path.isdir(maps_dir):
        stale += [os.path.join(maps_dir, f) for f in os.listdir(maps_dir) if _MAP_FILE.fullmatch(f)]
    for path in stale:
        if os.path.isfile(path):
            os.remove(path)


@torch.no_grad()
def predict_video(model: torch.nn.Module, path, out_dir, *, fps=None, batch_size: int = 2,
                  save_png: bool = True, save_npy: bool = False, make_overlay: bool = True,
                  overwrite: bool = False, device=None, progress: bool = True) -> dict:
    """Predict the saliency of every frame of one video; returns the video's ``done.json`` record
    (with ``"skipped": True`` when the video was already finished with the same settings).

    Args:
        model: a registered sphsal model.
        path: the video file.
        out_dir: parent folder; outputs go to ``out_dir/<video file stem>/``.
        fps: frame rate to predict at (default: the video's own).
        batch_size: clips per forward pass (>= 1).
        save_png, save_npy, make_overlay: which outputs to write.
        overwrite: redo a video that already has ``done.json`` (its earlier outputs are deleted first:
            see :func:`_clear_outputs`). Without it a video finished from the same source with the same
            model settings (:data:`MATCHED_SETTINGS` of :func:`output_settings`) is skipped, or redone
            when an output asked for is missing, and one finished from another source (another file of
            the same name, or this one changed) or with other model settings is a ``ValueError`` (its
            outputs are kept).
        device, progress: torch device (default CUDA if available), tqdm bar.
    """
    from sphsal.data import VideoReader

    batch_size = _check_options(batch_size, fps)
    [path] = _check_videos([path])
    name = os.path.splitext(os.path.basename(path))[0]
    video_dir = os.path.join(os.fspath(out_dir), name)
    done_path = os.path.join(video_dir, DONE_NAME)
    settings = output_settings(model, path, fps=fps, save_png=save_png, save_npy=save_npy,
                               make_overlay=make_overlay)
    earlier = None if overwrite else _previous_record(done_path, settings)
    if earlier is not None and not _missing_outputs(earlier, settings):
        return {**earlier, "video": path, "skipped": True}  # the path given now, not the recorded one
    device = resolve_device(device)
    model = model.to(device).eval()
    audio, rate = _load_video_audio(path, model)
    with VideoReader(path, fps=fps) as probe:
        size = capped_size(probe.height, probe.width)  # larger videos are downscaled
        seconds = float(probe.source_frames / probe.source_fps)
        if fps is not None and fps * seconds < 1:  # (1e-6 made clips of 1e7 s of audio: 238 GB)
            raise ValueError(f"fps {fps:g} gives less than one frame in the {seconds:.3g} s of {path}")
    with VideoReader(path, fps=fps, size=size) as reader:  # closed on errors too
        n, clip_len, out_fps = len(reader), model.input_spec.clip_len, float(reader.fps)
        maps_dir = os.path.join(video_dir, "maps")
        if earlier is None:  # new, redone (overwrite) or left unfinished: nothing earlier is kept
            _clear_outputs(video_dir)
        os.makedirs(maps_dir, exist_ok=True)
        saliency = []
        fed_back = None
        if model.input_spec.needs_prev_saliency:
            batch_size = 1  # each frame needs an earlier frame's prediction
            fed_back = FedBackMaps.for_model(model, size)
        mode = model.input_spec.clip_mode
        bar = tqdm(total=n, desc=f"predict {name}", disable=not progress, unit="frame")
        for start in range(0, n, batch_size):
            targets = range(start, min(n, start + batch_size))
            items = [_clip_item(reader, t, clip_len, audio, rate, mode) for t in targets]
            if fed_back is not None:
                items[0]["prev_saliency"] = fed_back.next_input()
            batch = to_device(collate_items(items), device)
            pred = model(**model.prepare_inputs(batch)).float().cpu()
            if fed_back is not None:
                fed_back.push(pred)
            for k, t in enumerate(range(start, start + len(items))):
                if save_npy:
                    _save_npy(os.path.join(maps_dir, f"{t:05d}.npy"), pred[k, 0].numpy())
                full = upsample_prediction(pred[k:k + 1], size)[0]
                if save_png:
                    peak = float(full.max())
                    grey = (full / peak * 255 if peak > 0 else full).round().clamp(0, 255).byte().numpy()
                    write_png(os.path.join(maps_dir, f"{t:05d}.png"), grey)
                if make_overlay:
                    saliency.append(pred[k, 0].numpy())
            bar.update(len(items))
        bar.close()
        if make_overlay:
            overlay_audio = None if audio is None else (
                audio if audio.shape[0] <= MAX_OVERLAY_CHANNELS else audio[:1])
            # each map is upsampled as the PNGs are, across the +-180 deg seam and the poles
            frames = (overlay(tensor_to_frame(reader.read_frame(t)),
                              upsample_prediction(torch.from_numpy(saliency[t])[None, None], size)[0])
                      for t in range(n))
            write_video(os.path.join(video_dir, "overlay.mp4"), frames, out_fps, audio=overlay_audio,
                        sample_rate=rate or None)
    # Outputs an earlier run of the same model settings wrote are still valid: the record keeps them.
    written = {k: settings[k] or (earlier is not None and earlier.get(k) is True) for k in OUTPUT_FLAGS}
    record = {"video": path, "frames": n, "fps": out_fps, "size": list(size),
              "model": type(model).__name__, **settings, **written}
    write_text(done_path, json.dumps(record, indent=2))
    return {**record, "skipped": False}


def predict_videos(model: torch.nn.Module, paths: Iterable, out_dir, **options) -> list[dict]:
    """:func:`predict_video` for many videos (each in its own sub-folder); videos finished with the same
    settings are skipped. Missing files, folders, repeated names, bad options and videos finished from
    another source or with other model settings (without ``overwrite=True``) are errors raised before
    any video is processed."""
    paths = _check_videos(paths)
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    if len(set(stems)) != len(stems):
        raise ValueError(f"videos must have distinct file names (outputs go to OUT/<name>/): {stems}")
    _check_options(options.get("batch_size", 2), options.get("fps"))
    if not options.get("overwrite", False):
        kept = {k: options[k] for k in ("fps", "save_png", "save_npy", "make_overlay") if k in options}
        for path, stem in zip(paths, stems):
            _previous_record(os.path.join(os.fspath(out_dir), stem, DONE_NAME),
                             output_settings(model, path, **kept))
    return [predict_video(model, p, out_dir, **options) for p in paths]


def _check_videos(paths: Iterable) -> list[str]:
    """``paths`` as strings; ``IsADirectoryError`` naming the folders among them (a VIDEO argument must
    be a video file) and ``FileNotFoundError`` naming the missing ones."""
    paths = [os.fspath(p) for p in paths]
    folders = [p for p in paths if os.path.isdir(p)]
    if folders:
        raise IsADirectoryError("; ".join(f"video argument {p} is a folder, not a video file"
                                          for p in folders))
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"video file(s) not found: {', '.join(missing)}")
    return paths


def _clip_item(reader, t: int, clip_len: int, audio: np.ndarray | None, rate: int, mode: str = "end") -> dict:
    """A dataset-like item (no ground truth) for the clip of target frame ``t`` (``mode``: the clip ends
    at ``t`` or is centred on it, :func:`sphsal.data.clips.clip_indices`)."""
    frames = reader.read_frames(clip_indices(t, clip_len, len(reader), mode))
    item = {"frames": frames, "fps": float(reader.fps), "video": reader.path, "frame_index": t}
    if audio is not None:
        t0, t1 = clip_span(t, clip_len, reader.fps, mode)
        item["audio"] = torch.from_numpy(slice_audio(audio, *audio_window(t0, t1, rate)))
        item["sample_rate"] = int(rate)
    return item


def _save_npy(path: str, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array.astype(np.float32))
