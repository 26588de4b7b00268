import csv
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from sphsal.engine.train import TrainConfig, load_training_state, lr_factor, train

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from engine_tiny import BlobDataset  # noqa: E402


def _config(out_dir, **kw):
    base = dict(model="tiny_test_model", out_dir=str(out_dir), epochs=3, batch_size=2, ckpt_every=2,
                progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path):
    return load_training_state(path)["model"]


def test_training_lowers_the_loss_and_writes_logs(tmp_path):
    summary = train(_config(tmp_path, epochs=8), dataset=BlobDataset(12))
    assert summary["step"] == 8 * 6
    with open(tmp_path / "log.csv", newline="") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 48
    assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6
    assert os.path.exists(tmp_path / "config.json")
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["progress"]["step"] == 48


def test_stopped_and_resumed_run_matches_uninterrupted(tmp_path):
    ds = BlobDataset(12)
    train(_config(tmp_path / "full"), dataset=ds)
    # Stop in the middle of the second epoch (step 8 of 18), then resume to the end.
    train(_config(tmp_path / "part", max_steps=8), dataset=ds)
    assert load_training_state(str(tmp_path / "part" / "last.pt"))["progress"]["step"] == 8
    train(_config(tmp_path / "part"), dataset=ds, resume=True)
    full, part = _weights(str(tmp_path / "full" / "last.pt")), _weights(str(tmp_path / "part" / "last.pt"))
    for key in full:
        assert torch.equal(full[key], part[key]), key
    with open(tmp_path / "part" / "log.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == list(range(1, 19))


def test_augmented_run_resumes_to_the_same_weights(tmp_path):
    """Mirrors and yaw turns are drawn from the RNG the checkpoint restores: a stopped and resumed run
    augments exactly as an uninterrupted one, and augmenting changes what is learned."""
    ds = BlobDataset(12)
    augment = dict(hflip=0.5, random_yaw=True)
    train(_config(tmp_path / "full", **augment), dataset=ds)
    train(_config(tmp_path / "part", max_steps=7, **augment), dataset=ds)
    train(_config(tmp_path / "part", **augment), dataset=ds, resume=True)
    train(_config(tmp_path / "plain"), dataset=ds)
    full, part = _weights(str(tmp_path / "full" / "last.pt")), _weights(str(tmp_path / "part" / "last.pt"))
    assert all(torch.equal(full[key], part[key]) for key in full)
    plain = _weights(str(tmp_path / "plain" / "last.pt"))
    assert not all(torch.equal(full[key], plain[key]) for key in full)
    with pytest.raises(ValueError, match="hflip: 0.5 \\(checkpoint\\) vs 0.0 \\(now\\)"):
        train(_config(tmp_path / "part", random_yaw=True), dataset=ds, resume=True)
    for bad in (1.5, -0.5, "0.5"):
        with pytest.raises(ValueError, match="TrainConfig.hflip"):
            _config(tmp_path, hflip=bad)


def test_audio_the_augmentations_cannot_move_is_refused_before_the_run_folder_changes(tmp_path):
    class StereoBlobs(BlobDataset):
        def __getitem__(self, i):
            return {**super().__getitem__(i), "audio": torch.zeros(2, 100), "sample_rate": 1000}

    ds = StereoBlobs(12)
    train(_config(tmp_path, max_steps=2), dataset=ds)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match="cannot rotate 2-channel audio"):
        train(_config(tmp_path, random_yaw=True, overwrite=True), dataset=ds)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    train(_config(tmp_path, hflip=1.0, overwrite=True, max_steps=2), dataset=ds)  # stereo mirrors: swapped


def test_learning_rate_schedules_and_their_exact_resume(tmp_path):
    assert [lr_factor("cosine", s, 5, warmup_steps=2) for s in range(5)] == pytest.approx(
        [0.5, 1.0, 1.0, 0.5, 0.0])
    assert lr_factor("constant", 7, 10, warmup_steps=4) == 1.0
    # step: x0.1 from half and again from three quarters of the steps after the warm-up
    assert [lr_factor("step", s, 10, warmup_steps=2) for s in range(10)] == pytest.approx(
        [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    assert [lr_factor("step", s, 8) for s in range(8)] == pytest.approx([1] * 4 + [0.1] * 2 + [0.01] * 2)
    with pytest.raises(ValueError, match="lr_schedule"):
        lr_factor("linear", 0, 10)
    ds = BlobDataset(12)
    schedule = {"lr_schedule": "cosine", "warmup_steps": 3}
    train(_config(tmp_path / "full", **schedule), dataset=ds)
    with open(tmp_path / "full" / "log.csv", newline="") as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    assert lrs[:3] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2]) and lrs[-1] == 0.0
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))
    train(_config(tmp_path / "part", max_steps=8, **schedule), dataset=ds)
    train(_config(tmp_path / "part", **schedule), dataset=ds, resume=True)
    full, part = _weights(str(tmp_path / "full" / "last.pt")), _weights(str(tmp_path / "part" / "last.pt"))
    for key in full:
        assert torch.equal(full[key], part[key]), key


_WORKER = """
import sys, time, torch
sys.path.insert(0, {here!r})
from engine_tiny import BlobDataset
from sphsal.engine.train import TrainConfig, train

class Slow(BlobDataset):
    def __getitem__(self, i):
        time.sleep({delay})
        return super().__getitem__(i)

cfg = TrainConfig(model="tiny_test_model", out_dir={out!r}, epochs=3, batch_size=2, ckpt_every=2,
                  progress=False, seed=3)
train(cfg, dataset=Slow(12), resume={resume})
"""


def _run_worker(out, resume, delay=0.0, **popen):
    code = _WORKER.format(here=HERE, out=str(out), resume=resume, delay=delay)
    return subprocess.Popen([sys.executable, "-c", code], **popen)


def test_killed_process_resumes_to_the_same_weights(tmp_path):
    ds = BlobDataset(12)
    train(_config(tmp_path / "full"), dataset=ds)
    proc = _run_worker(tmp_path / "killed", resume=False, delay=0.15)
    ckpt = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 60
    while time.time() < deadline:
        if ckpt.exists() and load_training_state(str(ckpt))["progress"]["step"] >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = load_training_state(str(ckpt))["progress"]["step"]
    assert 4 <= step < 18, "the worker must be killed mid-run"
    assert _run_worker(tmp_path / "killed", resume=True).wait() == 0
    full, resumed = _weights(str(tmp_path / "full" / "last.pt")), _weights(str(ckpt))
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


_DDP = """
import sys
sys.path.insert(0, {here!r})
from engine_tiny import BlobDataset
from sphsal.engine.train import TrainConfig, train
summary = train(TrainConfig(model="tiny_test_model", out_dir={out!r}, epochs=2, batch_size=2,
                            progress=False, device="cpu"), dataset=BlobDataset(12))
sys.stdout.write(f"main: {{summary['main']}}\\n")  # one write: the two ranks' lines do not interleave
"""


def test_two_process_torchrun_on_cpu(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(_DDP.format(here=HERE, out=str(tmp_path / "ddp")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_training_state(str(tmp_path / "ddp" / "last.pt"))
    # 12 items / 2 processes / batch 2 = 3 steps per epoch.
    assert state["progress"]["step"] == 6 and state["world_size"] == 2
    assert sorted(re.findall(r"main: (True|False)\n", result.stdout)) == ["False", "True"]  # rank 0 alone


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="last.pt"):
        train(_config(tmp_path), dataset=BlobDataset(4), resume=True)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(_config(tmp_path, batch_size=8), dataset=BlobDataset(4))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        train(_config(tmp_path / "bad"), dataset=BlobDataset(4), resume=True)


_HEADER, _ROW = b"step,epoch,loss,lr,grad_norm,seconds\n", b"1,0,0.5,0.01,0.1,0.2\n"


@pytest.mark.parametrize("damage, problem", [
    (b"garbage\n1,2\n", "line 1: 'garbage' is not the header 'step,epoch,loss,lr,grad_norm,seconds'"),
    (b"\xff\xfe", "line 1: byte 0xff is not UTF-8 text"),
    (_HEADER + _ROW + b"2,0,\xe9t\xe9,0.01,0.1,0.2\n", "line 3: byte 0xe9 is not UTF-8"),
    (_HEADER + b"x,0,0.5,0.01,0.1,0.2\n", "line 2: step 'x' is not a whole number"),
    (_HEADER + _ROW + b"2,0,0.5\n", "line 3: 3 fields, expected 6"),
    (_HEADER + b"1,0,0.5,0.01,0.1,0.2,9\n", "line 2: 7 fields, expected 6"),
    (_HEADER + b"1,0,abc,0.01,0.1,0.2\n", "line 2: loss 'abc' is not a number"),
    (_HEADER + b"1,0.5,0.5,0.01,0.1,0.2\n", "line 2: epoch '0.5' is not a whole number"),
    (_HEADER + _ROW + b"2,0,0.5,0.01,0.1,\r2\n", "line 3: new-line character seen"),
])
def test_resume_names_a_damaged_log_and_keeps_it(tmp_path, damage, problem):
    ds = BlobDataset(12)
    train(_config(tmp_path, max_steps=4), dataset=ds)
    log = tmp_path / "log.csv"
    log.write_bytes(damage)
    with pytest.raises(ValueError) as info:
        train(_config(tmp_path, max_steps=6), dataset=ds, resume=True)
    message = str(info.value)
    assert message.startswith(f"training log {log} is damaged at line ") and problem in message, message
    assert message.endswith("repair it or move it away to resume (the checkpoint is not affected)")
    assert "\n" not in message and log.read_bytes() == damage
    assert load_training_state(str(tmp_path / "last.pt"))["progress"]["step"] == 4


def test_resume_drops_a_torn_row_logged_after_the_checkpoint(tmp_path):
    ds = BlobDataset(12)
    train(_config(tmp_path, max_steps=4), dataset=ds)
    log = tmp_path / "log.csv"
    log.write_text(log.read_text() + "5,0,0.4\n")  # written after the checkpoint, cut off by a crash
    train(_config(tmp_path, max_steps=6), dataset=ds, resume=True)
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 7)) and all(None not in r.values() for r in rows)


_WORKERS = """
import sys, torch
sys.path.insert(0, {here!r})
import engine_tiny  # noqa: F401  (registers tiny_test_model)
from sphsal.data import create_dataset, make_dataset
from sphsal.engine.train import TrainConfig, train
from sphsal.metrics import density_from_fixations

if __name__ == "__main__":
    root = make_dataset({data!r}, n_videos=2, duration=1.0, fps=8, height=16, width=32, seed=0)
    density_from_fixations(torch.tensor([[0.1, 0.2]]), 16, 32, 7.0)  # numba threads start in the parent
    ds = create_dataset("360av-hm", root, clip_len=2, cache_dir=False)
    train(TrainConfig(model="tiny_test_model", out_dir={out!r}, max_steps=4, batch_size=2, num_workers=2,
                      progress=False), dataset=ds)
"""


def test_loader_workers_after_numba_kernels_in_the_parent(tmp_path):
    # Ground truth is computed with numba inside the workers; they must not deadlock.
    script = tmp_path / "workers.py"
    script.write_text(_WORKERS.format(here=HERE, data=str(tmp_path / "data"), out=str(tmp_path / "run")))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert load_training_state(str(tmp_path / "run" / "last.pt"))["progress"]["step"] == 4


class _NanGradFrom(torch.autograd.Function):
    """Identity whose backward returns NaN from the ``start``-th backward pass on (the loss stays finite)."""

    calls = 0
    start = 1

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        _NanGradFrom.calls += 1
        return grad * float("nan") if _NanGradFrom.calls >= _NanGradFrom.start else grad


@pytest.mark.parametrize("clip_grad", [5.0, None])
def test_non_finite_gradient_stops_before_the_step_and_the_checkpoint(tmp_path, monkeypatch, clip_grad):
    from engine_tiny import TinySaliency

    forward = TinySaliency.forward
    monkeypatch.setattr(TinySaliency, "forward",
                        lambda self, frames: _NanGradFrom.apply(forward(self, frames)))
    monkeypatch.setattr(_NanGradFrom, "calls", 0)
    monkeypatch.setattr(_NanGradFrom, "start", 3)
    with pytest.raises(FloatingPointError, match="gradient norm became nan at step 3"):
        train(_config(tmp_path, clip_grad=clip_grad, ckpt_every=1, max_steps=5), dataset=BlobDataset(12))
    state = load_training_state(str(tmp_path / "last.pt"))
    assert state["progress"]["step"] == 2  # the last good checkpoint, not a NaN one
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    with open(tmp_path / "log.csv", newline="") as f:
        norms = [float(r["grad_norm"]) for r in csv.DictReader(f)]
    assert len(norms) == 2 and all(map(math.isfinite, norms))


def test_resume_refuses_other_training_settings(tmp_path):
    ds = BlobDataset(12)
    train(_config(tmp_path, max_steps=2), dataset=ds)
    config_json = (tmp_path / "config.json").read_text()
    changes = [({"batch_size": 3}, "batch_size: 2 (checkpoint) vs 3 (now)"),
               ({"seed": 4}, "seed: 3 (checkpoint) vs 4 (now)"),
               ({"model": "planar_unet"}, "model: 'tiny_test_model' (checkpoint) vs 'planar_unet' (now)"),
               ({"model_kwargs": {"width_mult": 0.5}}, "model_kwargs: {} (checkpoint)"),
               ({"lr": 0.5, "loss": "cc"}, "lr: None (checkpoint) vs 0.5 (now); loss: None"),
               ({"dataset_kwargs": {"split": "all"}}, "dataset_kwargs")]
    for change, shown in changes:
        with pytest.raises(ValueError, match="last.pt") as err:
            train(_config(tmp_path, **change), dataset=ds, resume=True)
        assert shown in str(err.value)
    assert (tmp_path / "config.json").read_text() == config_json
    assert load_training_state(str(tmp_path / "last.pt"))["progress"]["step"] == 2
    # How long and how to run may change: here the step budget, logging and checkpoint intervals.
    summary = train(_config(tmp_path, max_steps=4, log_every=2, ckpt_every=3, num_workers=0), dataset=ds,
                    resume=True)
    assert summary["step"] == 4


def test_model_kwargs_tuples_and_lists_compare_equal_on_resume(tmp_path):
    from sphsal.engine.train import check_resumable

    config = _config(tmp_path, model_kwargs={"frame_size": (16, 32)})
    stored = {**vars(_config(tmp_path, model_kwargs={"frame_size": [16, 32]}))}
    del stored["overwrite"]  # a checkpoint from before the field existed: its default counts
    check_resumable("last.pt", stored, config)
    with pytest.raises(ValueError, match="holds no 'config'"):
        check_resumable("last.pt", None, config)


def test_unet_run_of_an_older_sphsal_resumes_only_with_its_previous_frame_interval(tmp_path):
    """A U-Net run stored without prev_interval and prev_start trained on the map of the frame before,
    zeros before the first (the defaults then): resuming it with today's defaults (5, the centre map)
    would switch halfway; it is refused, and resumes with those options given."""
    from sphsal.engine.train import check_resumable

    old = {**vars(_config(tmp_path, model="planar_unet", model_kwargs={"width_mult": 0.125}))}
    with pytest.raises(ValueError, match=r"prev_interval.*1.*\(checkpoint\).*5.*\(now\)"):
        check_resumable("last.pt", dict(old), _config(tmp_path, model="planar_unet",
                                                      model_kwargs={"width_mult": 0.125}))
    as_then = {"width_mult": 0.125, "prev_interval": 1, "prev_start": "zeros"}
    check_resumable("last.pt", dict(old), _config(tmp_path, model="planar_unet", model_kwargs=as_then))
    tiny = {"width_mult": 0.125}
    new = {**vars(_config(tmp_path, model="planar_unet",
                          model_kwargs={**tiny, "prev_interval": 5, "prev_start": "centre"}))}
    check_resumable("last.pt", new, _config(tmp_path, model="planar_unet", model_kwargs=tiny))


def test_new_run_refuses_a_folder_with_a_checkpoint_unless_overwrite(tmp_path):
    ds = BlobDataset(12)
    train(_config(tmp_path, max_steps=3), dataset=ds)
    log = (tmp_path / "log.csv").read_text()
    weights = _weights(str(tmp_path / "last.pt"))
    with pytest.raises(ValueError, match=f"{tmp_path}.*already holds last.pt.*resume"):
        train(_config(tmp_path, max_steps=1), dataset=ds)
    assert (tmp_path / "log.csv").read_text() == log
    kept = _weights(str(tmp_path / "last.pt"))
    assert all(torch.equal(weights[k], kept[k]) for k in weights)
    train(_config(tmp_path, max_steps=1, overwrite=True), dataset=ds)
    with open(tmp_path / "log.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1]


@pytest.mark.parametrize("field, value", [
    ("ckpt_every", 0), ("log_every", 0), ("epochs", 0), ("batch_size", 0), ("max_steps", 0),
    ("warmup_steps", -1), ("num_workers", -1), ("seed", -1), ("epochs", 1.5), ("batch_size", True),
    ("lr", 0.0), ("lr", -1e-3), ("lr", float("nan")), ("lr", 1e300), ("lr", 3e38), ("clip_grad", -1.0),
    ("clip_grad", float("inf")),
    ("lr_schedule", "linear"), ("model", ""), ("amp", "yes"), ("overwrite", 1), ("model_kwargs", None),
])
def test_train_config_values_are_checked_on_construction(tmp_path, field, value):
    with pytest.raises(ValueError, match=f"TrainConfig.{field} "):
        _config(tmp_path, **{field: value})


def test_train_config_normalises_paths_and_numpy_numbers(tmp_path):
    import numpy as np

    config = _config(tmp_path, max_steps=np.int64(2), lr=np.float32(0.01), clip_grad=0)
    assert config.out_dir == str(tmp_path) and isinstance(config.out_dir, str)
    assert type(config.max_steps) is int and type(config.lr) is float and config.clip_grad == 0.0
    config.log_every = 0  # changed after construction: train checks again
    with pytest.raises(ValueError, match="TrainConfig.log_every"):
        train(config, dataset=BlobDataset(4))


def test_epochs_may_change_on_resume_only_under_a_constant_schedule(tmp_path):
    """A cosine schedule's horizon is epochs x steps per epoch: another --epochs would jump the rate."""
    from sphsal.engine.train import check_resumable

    for schedule, allowed in (("constant", True), ("cosine", False)):
        stored = vars(_config(tmp_path, epochs=2, lr_schedule=schedule))
        config = _config(tmp_path, epochs=5, lr_schedule=schedule)
        if allowed:
            check_resumable("last.pt", dict(stored), config)
        else:
            with pytest.raises(ValueError, match=r"epochs: 2 \(checkpoint\) vs 5 \(now\)") as err:
                check_resumable("last.pt", dict(stored), config)
            # the list of what may change leaves epochs out here (it named epochs as changeable)
            assert "max_steps, ckpt_every" in str(err.value) and "epochs, max_steps" not in str(err.value)
            assert "epochs only under a constant learning-rate schedule" in str(err.value)


def test_train_config_takes_a_torch_device():
    assert TrainConfig(model="m", out_dir="o", device=torch.device("cpu")).device == "cpu"


def test_cuda_rng_state_is_this_process_device_only(monkeypatch):
    """Under torchrun every rank restores the main process's checkpoint: only the current device's CUDA
    generator state is saved and restored (all devices' states gave the other ranks' devices states
    their process never advanced). Faked CUDA: the logic, not the generators."""
    from sphsal.engine.runtime import rng_state, set_rng_state

    restored = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda: torch.tensor([7], dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state: restored.update(current=state))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.update(all=states))
    state = rng_state()
    assert torch.equal(state["cuda"], torch.tensor([7], dtype=torch.uint8))
    set_rng_state(state)
    assert torch.equal(restored.pop("current"), state["cuda"]) and not restored
    set_rng_state({**state, "cuda": [state["cuda"]] * 2})  # a checkpoint of an earlier version
    assert list(restored) == ["all"]


def test_an_interrupted_overwrite_leaves_no_checkpoint_of_the_old_run(tmp_path, monkeypatch):
    """--overwrite wrote the new config.json and log.csv at its start but kept the old last.pt until its
    first checkpoint: interrupted before that, a resume continued the old run with the new files (the
    old log's rows lost). The old last.pt now goes first; nothing is left to resume, nothing mixes."""
    import json

    import sphsal.engine.train as engine_train

    ds = BlobDataset(12)
    old, new = _config(tmp_path, max_steps=4), _config(tmp_path, max_steps=4, seed=5, overwrite=True)
    train(old, dataset=ds)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(engine_train, "_optimizer_step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(new, dataset=ds)
    assert not (tmp_path / "last.pt").exists()
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 5
    assert (tmp_path / "log.csv").read_text().splitlines() == [",".join(engine_train._LOG_FIELDS)]
    for config in (old, new):
        with pytest.raises(FileNotFoundError, match=r"last.pt; the run in .* has no checkpoint to resume"):
            train(config, dataset=ds, resume=True)
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == 5
    train(_config(tmp_path, max_steps=4, seed=5), dataset=ds)  # started again: a coherent new run
    state = load_training_state(str(tmp_path / "last.pt"))
    assert state["config"]["seed"] == 5 and state["progress"]["step"] == 4
    with open(tmp_path / "log.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]


def test_resume_refuses_another_number_of_processes(tmp_path, monkeypatch):
    """Each process takes its share of an epoch's sample order: resuming with another count replayed
    samples and changed the steps per epoch. The count is stored and checked (torchrun faked here)."""
    import sphsal.engine.train as engine_train
    from sphsal.engine.runtime import Runtime

    ds = BlobDataset(12)
    train(_config(tmp_path, max_steps=2), dataset=ds)
    path = tmp_path / "last.pt"
    state = torch.load(path, weights_only=True)
    assert state["world_size"] == 1
    with monkeypatch.context() as patch:
        patch.setattr(engine_train, "init_runtime", lambda device: Runtime(torch.device("cpu"), 0, 2))
        with pytest.raises(ValueError, match=r"with 2 process\(es\): it was trained with 1 .*"
                                             r"resume it without torchrun \(one process\)"):
            train(_config(tmp_path, max_steps=4), dataset=ds, resume=True)
    torch.save({**state, "world_size": 2}, path)
    with pytest.raises(ValueError, match=r"last.pt with 1 process\(es\): it was trained with 2 .*"
                                         r"--nproc_per_node=2"):
        train(_config(tmp_path, max_steps=4), dataset=ds, resume=True)
    assert load_training_state(str(path))["progress"]["step"] == 2
    # A checkpoint from before the count was stored does not say it: accepted, as before.
    torch.save({k: v for k, v in state.items() if k != "world_size"}, path)
    assert train(_config(tmp_path, max_steps=4), dataset=ds, resume=True)["step"] == 4
    assert load_training_state(str(path))["world_size"] == 1


def test_resume_compares_folders_not_their_spelling(tmp_path, monkeypatch):
    """--root data, data/ and its absolute path (or a link to it) are one folder; so are cache_dir's."""
    from sphsal.engine.train import check_resumable

    for name in ("data", "other", "cache"):
        (tmp_path / name).mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    def now(root, cache):
        return _config("run", root=root, dataset_kwargs={"cache_dir": cache})

    stored = vars(now("data", "cache"))
    for root, cache in (("data/", "cache/"), (str(tmp_path / "data"), str(tmp_path / "cache")),
                        ("./link", "cache")):
        check_resumable("last.pt", dict(stored), now(root, cache))
    with pytest.raises(ValueError, match=r"root: '.*/data' \(checkpoint\) vs '.*/other' \(now\)"):
        check_resumable("last.pt", dict(stored), now("other/", "cache"))
    # the root is recorded absolute: the same relative --root from another folder is another folder
    (tmp_path / "other" / "data").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    with pytest.raises(ValueError, match=r"root: '.*/data' \(checkpoint\) vs '.*/other/data' \(now\)"):
        check_resumable("last.pt", dict(stored), now("data", str(tmp_path / "cache")))
    with pytest.raises(ValueError, match=r"dataset_kwargs: .*'cache_dir': 'cache'.* \(checkpoint\) vs "
                                         r".*'cache_dir': 'other'"):
        check_resumable("last.pt", dict(stored), now("data/", "other"))


def test_a_diverging_run_stops_at_the_prediction_with_the_step_and_advice(tmp_path):
    """With a huge learning rate the prediction of step 2 is NaN: the loss refused it ("pred contains NaN
    values": no step, no advice); the engine now stops there itself, before the optimiser step."""
    with pytest.raises(FloatingPointError, match=r"prediction became non-finite \(NaN or inf\) at step 2; "
                                                 "lower the learning rate"):
        train(_config(tmp_path, lr=1e20, max_steps=4, ckpt_every=1), dataset=BlobDataset(12))
    assert load_training_state(str(tmp_path / "last.pt"))["progress"]["step"] == 1


def test_weights_that_overflow_are_never_checkpointed(tmp_path, monkeypatch):
    """An optimiser step with finite gradients can overflow the weights to inf: the checkpoint of that
    step was written with them (a resume then failed at its first prediction); training stops first."""
    import sphsal.engine.train as engine_train

    step = engine_train._optimizer_step

    def overflowing(config, model, *args):
        result = step(config, model, *args)
        if args[-1] == 3:  # the step number
            next(model.parameters()).data[0] = float("inf")
        return result

    monkeypatch.setattr(engine_train, "_optimizer_step", overflowing)
    expected = r"the weights \S+ became non-finite \(NaN or inf\) at step 3; .*last.pt was not overwritten"
    with pytest.raises(FloatingPointError, match=expected + ": lower the learning rate"):
        train(_config(tmp_path, max_steps=5, ckpt_every=1), dataset=BlobDataset(12))
    state = load_training_state(str(tmp_path / "last.pt"))
    assert state["progress"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_lr_scales_train_parameters_by_name_at_their_own_rates_through_the_schedule(tmp_path, monkeypatch):
    """A recipe's lr_scales put parameters in groups (first matching pattern wins; the rest at 1x); the
    schedule scales every group, the --lr override moves them all, and log.csv shows the base rate."""
    from engine_tiny import TinySaliency

    from sphsal.engine.train import build_optimizer

    model = TinySaliency()
    names = [name for name, _ in model.named_parameters()]
    recipe = {"name": "sgd", "lr": 0.1, "lr_scales": [[names[0], 0.5], ["*", 0.01]]}
    groups = build_optimizer(model, recipe).param_groups
    assert [(g["lr"], len(g["params"])) for g in groups] == [(0.05, 1), (0.001, len(names) - 1)]
    assert [g["lr"] for g in build_optimizer(model, recipe, lr=1.0).param_groups] == [0.5, 0.01]
    assert [g["lr"] for g in build_optimizer(model, {"name": "adam", "lr": 0.1}).param_groups] == [0.1]
    assert [g["lr"] for g in build_optimizer(model, {"name": "sgd"}).param_groups] == [1e-3]  # SGD's default
    with pytest.raises(ValueError, match="the lr_scales scale of '\\*' must be a finite number >= 0"):
        build_optimizer(model, {"name": "sgd", "lr": 0.1, "lr_scales": [["*", float("nan")]]})

    init = TinySaliency.__init__

    def scaled(self):
        init(self)
        self.default_optimizer = {"name": "sgd", "lr": 0.1, "lr_scales": [[names[0], 0.5]]}

    monkeypatch.setattr(TinySaliency, "__init__", scaled)
    summary = train(_config(tmp_path, epochs=2, lr_schedule="cosine", log_every=1), dataset=BlobDataset(8))
    with open(tmp_path / "log.csv", newline="") as f:
        logged = [float(r["lr"]) for r in csv.DictReader(f)]
    assert logged[0] == pytest.approx(0.1 * lr_factor("cosine", 0, summary["step"]))
    stored = load_training_state(str(tmp_path / "last.pt"))["recipe"]["optimizer"]
    assert stored["lr_scales"] == [[names[0], 0.5]]


def test_a_model_without_trainable_parameters_is_refused(tmp_path):
    from sphsal.engine.train import build_optimizer
    from sphsal.models import create_model

    model = create_model("aem_ecb")
    with pytest.raises(ValueError, match="model 'aem_ecb' has no trainable parameters: there is nothing"):
        build_optimizer(model, model.default_optimizer)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(TrainConfig(model="aem_ecb", root=str(tmp_path / "none"), out_dir=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_the_api_trains_on_the_train_split_by_default(tmp_path):
    """TrainConfig left the split to the adapters' default "all" (the held-out test videos included)
    while `sphsal train` defaults to --split train; both train on "train" now."""
    from sphsal.cli import build_parser
    from sphsal.data import make_dataset
    from sphsal.engine.train import DEFAULT_SPLIT, check_resumable, dataset_for_model
    from sphsal.models import create_model

    root = make_dataset(tmp_path / "data", n_videos=5, duration=0.5, fps=4, height=16, width=32, n_viewers=2)
    unet = {"width_mult": 1 / 16, "prev_interval": 5, "prev_start": "centre"}  # as train() stores them
    config = TrainConfig(model="planar_unet", root=root, model_kwargs=unet,
                         dataset_kwargs={"cache_dir": None})
    assert config.dataset_kwargs == {"split": "train", "cache_dir": None}
    model = create_model(config.model, **config.model_kwargs)
    videos = dataset_for_model(model, config.dataset, config.root, **config.dataset_kwargs).videos
    assert videos == ["synth_000", "synth_001", "synth_002", "synth_003"]  # synth_004: held out for test
    assert TrainConfig(model="m", dataset_kwargs={"split": "all"}).dataset_kwargs == {"split": "all"}
    train_parser = build_parser(only="train")._subparsers._group_actions[0].choices["train"]
    assert train_parser.get_default("split") == DEFAULT_SPLIT
    # A checkpoint from before the default stored no split: it trained on "all", and says so.
    stored = {**vars(config), "dataset_kwargs": {"cache_dir": None}}
    with pytest.raises(ValueError, match=r"'split': 'all'.*\(checkpoint\) vs .*'split': 'train'"):
        check_resumable("last.pt", stored, config)
    check_resumable("last.pt", stored, TrainConfig(**{**vars(config), "dataset_kwargs": {
        "split": "all", "cache_dir": None}}))


def test_tensorboard_events_of_an_old_run_are_removed_and_a_resume_purges_later_steps(tmp_path, monkeypatch):
    """TensorBoard shows every event file in OUT/tensorboard: an overwritten run's curves stayed beside the
    new run's, and a resumed run's steps after its checkpoint were drawn twice."""
    import sphsal.engine.train as engine_train

    writers = []

    class FakeWriter:
        def __init__(self, log_dir, purge_step=None):
            os.makedirs(log_dir, exist_ok=True)
            self.path = os.path.join(log_dir, f"events.out.tfevents.{len(writers)}")
            self.purge_step, self.steps = purge_step, []
            open(self.path, "w").close()
            writers.append(self)

        def add_scalar(self, tag, value, step):
            self.steps.append(step)

        def close(self):
            pass

    monkeypatch.setattr(engine_train, "_require_tensorboard", lambda: FakeWriter)
    ds = BlobDataset(12)
    train(_config(tmp_path, max_steps=3, tensorboard=True), dataset=ds)
    (tmp_path / "tensorboard" / "notes.txt").write_text("mine")
    train(_config(tmp_path, max_steps=3, tensorboard=True, overwrite=True), dataset=ds)
    assert sorted(os.listdir(tmp_path / "tensorboard")) == ["events.out.tfevents.1", "notes.txt"]
    assert writers[1].purge_step is None
    train(_config(tmp_path, max_steps=5, tensorboard=True), dataset=ds, resume=True)  # from step 3
    assert writers[2].purge_step == 4 and writers[2].steps[0] == 4
    train(_config(tmp_path, max_steps=2, overwrite=True), dataset=ds)  # no TensorBoard: old events go too
    assert os.listdir(tmp_path / "tensorboard") == ["notes.txt"]


def test_resume_may_switch_empty_truth_but_refuses_a_changed_default_recipe(tmp_path, monkeypatch):
    """A run that stopped at a blank map or a short soundtrack resumes with empty_truth='next' or
    short_audio='silence' (the items before it are the same); a model whose default loss or optimiser
    changed since the checkpoint (the U-Net's did) is refused rather than resumed with gradients of
    another scale."""
    from engine_tiny import TinySaliency

    from sphsal.engine.train import check_resumable

    ds = BlobDataset(12)
    train(_config(tmp_path, max_steps=2), dataset=ds)
    path = str(tmp_path / "last.pt")
    state = load_training_state(path)
    assert state["recipe"] == {"loss": "kld", "optimizer": {"name": "adam", "lr": 1e-2}}
    check_resumable(path, state["config"], _config(tmp_path, dataset_kwargs={"empty_truth": "next"}))
    check_resumable(path, state["config"], _config(tmp_path, dataset_kwargs={"short_audio": "silence"}))
    with pytest.raises(ValueError, match="sigma_deg"):
        check_resumable(path, state["config"], _config(tmp_path, dataset_kwargs={"sigma_deg": 2.0}))
    init = TinySaliency.__init__

    def other_default(self):
        init(self)
        self.default_loss = "cc"

    monkeypatch.setattr(TinySaliency, "__init__", other_default)
    with pytest.raises(ValueError, match=r"recipe changed since it was written \(loss: 'kld' \(checkpoint\) "
                                         r"vs 'cc' \(now\)\)"):
        train(_config(tmp_path, max_steps=3), dataset=ds, resume=True)
    train(_config(tmp_path, max_steps=3, loss="cc", overwrite=True), dataset=ds)  # a new run may
