"""`cellsim bench speed` and `cellsim bench quant` with --quick: the files they write
are well-formed (schema, finite positive rates, every engine present); the C grid
driver the speed benchmark times computes cellsim.intspec's synchronous step; bad
input gives one line on stderr, exit status 2 and no output directory.
No timing is asserted: speed is what the benchmarks measure, not what tests check."""
import functools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cellsim.cli import main
from cli_helpers import fails_cleanly
from firmware_gen import toolchain

needs_gcc = pytest.mark.skipif(bool(toolchain.missing(*toolchain.HOST_TOOLS)), reason="needs gcc")

TINY = dict(target_size=12, padding=3, min_steps=16, max_steps=24)  # an 18x18 grid, horizon 24

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_model(seed: int):
    """A CAModel with random weights, the last layer small but not zero."""
    from training.model import CAModel

    generator = torch.Generator().manual_seed(seed)
    model = CAModel()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(max(p[0].numel(), 1)))
        model.w2.weight.mul_(0.05)
        model.w2.bias.mul_(0.05)
    return model


def write_checkpoint(path: Path, seed: int) -> Path:
    """A loadable checkpoint of a random model on an 18x18 lizard (no training:
    the benchmarks only need a model, and training one costs minutes here)."""
    from cellsim.target_images import load_target
    from training.checkpoint import save_checkpoint
    from training.config import make_config

    config = make_config("quick", target="lizard", iterations=1, batch=4, pool_size=16, **TINY)
    save_checkpoint(path, {"config": config.to_dict(), "target": load_target("lizard", 12, 3),
                           "model": random_model(seed).state_dict(), "iteration": 0, "optimizer": {},
                           "rng": {}, "metrics": [], "elapsed": 0.0, "pool_file": ""})
    return path


@functools.lru_cache(maxsize=None)
def quant_run(root: Path) -> Path:
    out = root / "quant"
    ckpt = write_checkpoint(root / "tiny.pt", seed=3)
    assert main(["bench", "quant", "--checkpoint", str(ckpt), "--out", str(out), "--quick",
                 "--qat-iterations", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def quant_out(tmp_path_factory):
    return quant_run(tmp_path_factory.mktemp("bench"))


def positive_finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


SPEED_KEYS = {"engine": str, "variant": str, "precision": str, "device": str, "threads": int,
              "batch": int, "grid": list, "pass": str, "cell_updates_per_s": float, "steps_per_s": float,
              "cell_updates_per_s_iqr": list, "cell_updates_per_s_range": list, "steps_per_s_iqr": list,
              "steps_per_s_range": list, "updates_per_step": float, "repetitions": int, "scope": str}


def check_speed_records(records, grid):
    assert isinstance(records, list) and records
    for r in records:
        for key, kind in SPEED_KEYS.items():
            assert isinstance(r[key], kind), (key, r)
        assert r["precision"] in ("fp32", "int8") and r["pass"] in ("forward", "train")
        assert r["grid"] == [grid, grid]
        assert r["threads"] >= 1 and r["batch"] >= 1 and r["repetitions"] >= 3
        for key in ("cell_updates_per_s", "steps_per_s", "updates_per_step"):
            assert positive_finite(r[key]), (key, r)
        for stat in ("cell_updates_per_s", "steps_per_s"):
            lo, hi = r[f"{stat}_range"]
            q1, q3 = r[f"{stat}_iqr"]
            assert 0 < lo <= q1 <= r[stat] <= q3 <= hi and math.isfinite(hi)
        # a grid step never runs more cell updates than the grid has cells
        assert r["updates_per_step"] <= grid * grid


def test_speed_quick_times_every_engine(tmp_path, capsys):
    out = tmp_path / "speed"
    assert main(["bench", "speed", "--quick", "--grid", "24", "--out", str(out)]) == 0
    records = json.loads((out / "speed.json").read_text())
    check_speed_records(records, 24)
    seen = {(r["engine"], r["precision"], r["pass"]) for r in records}
    assert seen >= {("onnxruntime", "fp32", "forward"), ("onnxruntime", "int8", "forward"),
                    ("torch", "fp32", "forward"), ("torch", "fp32", "train"),
                    ("cellsim-sync", "int8", "forward"), ("cellsim-async", "int8", "forward"),
                    ("cellsim-sync", "fp32", "forward"), ("cellsim-async", "fp32", "forward")}
    if not toolchain.missing(*toolchain.HOST_TOOLS):
        assert ("c-host", "int8", "forward") in seen
    onnx = [r for r in records if r["engine"] == "onnxruntime"]
    assert {r["threads"] for r in onnx} >= {1} and {r["batch"] for r in onnx} == {1, 8}
    assert {r["variant"] for r in records if r["engine"] == "torch"} == {"training/model.py", "training/fast.py"}
    for r in records:
        if r["engine"] == "onnxruntime" or r["variant"] == "training/model.py":
            assert r["updates_per_step"] == 24 * 24  # dense: every cell, every step
    machine = json.loads((out / "machine.json").read_text())
    assert machine["cpu"]["logical_cores"] >= 1 and isinstance(machine["cpu"]["avx2"], bool)
    assert len(machine["load_average_start"]) == 3 and len(machine["load_average_end"]) == 3
    assert machine["libraries"]["numpy"] == np.__version__
    table = (out / "speed.md").read_text()
    assert table.count("\n| ") == len(records) + 1  # header + one row per record
    png = out / "speed.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_speed_runs_a_checkpoint_with_its_genome(quant_out, tmp_path):
    out = tmp_path / "speed"
    ckpt = quant_out.parent / "tiny.pt"
    argv = ["--quick", "--grid", "16", "--engines", "onnxruntime,c-host", "--checkpoint", str(ckpt),
            "--genome", str(quant_out / "ptq.genome"), "--out", str(out)]
    from benchmarks import speed
    assert speed.main(argv) == 0
    records = json.loads((out / "speed.json").read_text())
    check_speed_records(records, 16)
    assert {r["engine"] for r in records} <= {"onnxruntime", "c-host"}
    assert "ptq.genome" in (out / "speed.md").read_text()


def test_quant_quick_writes_every_section(quant_out):
    result = json.loads((quant_out / "quant.json").read_text())
    horizon = result["training_horizon"]
    assert horizon == TINY["max_steps"] and result["grid"] == [18, 18]
    models = ["float", "ptq", "qat"]
    assert list(result["summary"]) == models
    steps = result["long_run"]["steps"]
    assert steps[0] == 0 and steps[-1] >= 10 * horizon and steps == sorted(steps)
    for name in models:
        curve = result["long_run"]["loss"][name]
        assert len(curve) == len(steps) and all(math.isfinite(v) and v >= 0 for v in curve)
        row = result["summary"][name]
        assert isinstance(row["survives"], bool) and row["loss_final"] == curve[-1]
        assert set(row["regrowth_steps"]) == {"half", "circle", "cell-deaths"}
    for kind, per_model in result["regrowth"]["results"].items():
        for name in models:
            r = per_model[name]
            assert r["curve_steps"][0] == 0 and r["curve_steps"][-1] == result["regrowth"]["steps"]
            assert len(r["curve_loss"]) == len(r["curve_loss_undamaged"]) == len(r["curve_steps"])
            # the control run starts from the undamaged state the damage was applied to
            assert r["curve_loss_undamaged"][0] == r["loss_before"]
            assert r["regrowth_steps"] is None or 0 <= r["regrowth_steps"] <= result["regrowth"]["steps"]
    # every rollout starts from the same seed: no divergence at step 0, 16 channels after
    for name in ("ptq", "qat"):
        rel = np.asarray(result["divergence"][name]["relative"])
        assert rel.shape == (len(steps), 16) and np.isfinite(rel).all() and (rel >= 0).all()
    assert list(result["clocks"]) == models  # the float model runs on the simulator too
    for name in models:
        for clock in ("sync", "poisson"):
            r = result["clocks"][name][clock]
            assert r["updates"] > 0 and len(r["time"]) == len(r["loss"]) == len(r["loss_undamaged"])
            damage = r["time"].index(r["damage_time"])
            assert r["loss"][:damage + 1] == r["loss_undamaged"][:damage + 1]  # same grid until the damage
            assert all(math.isfinite(v) for v in r["loss"])
    assert result["machine"]["load_average_end"]
    for name in ("quant.json", "quant.md", "quant_loss.png", "quant_divergence.png",
                 "quant_growth.png", "quant_regrowth.png"):
        assert (quant_out / name).stat().st_size > 0 and name in result["files"]
    text = (quant_out / "quant.md").read_text()
    assert "| int8 QAT |" in text and "poisson" in text


def test_quant_saves_the_genomes_it_made(quant_out):
    from cellsim.genome import load_genome, sha256_file

    source = sha256_file(quant_out.parent / "tiny.pt")
    for name in ("ptq", "qat"):
        genome = load_genome(quant_out / f"{name}.genome")
        assert genome.source_sha256 == source and genome.grid_size == 18


@needs_gcc
def test_c_grid_driver_is_the_synchronous_step(tmp_path):
    """The driver timed as "c-host" (message exchange, firmware update of fired
    cells, alive masks) gives cellsim.intspec.step_grid_sync's grid."""
    from benchmarks.speed import build_c_driver, fire_masks, make_subject, run_c_driver
    from cellsim.intspec import step_grid_sync

    subject = make_subject(None, None, 10, 1)
    grid = subject.int_state[0].copy()
    grid[:, 7:, 3] = 0  # a dead region, so the alive masks matter
    grid[:, 7:, :3] = 0
    masks = fire_masks(4, (10, 10), 0.5, seed=5)
    exe, _ = build_c_driver(subject.genome, tmp_path)
    timings, final = run_c_driver(exe, grid, masks, False, 2, tmp_path)
    expected = grid
    for mask in masks:
        expected = step_grid_sync(subject.genome.params, expected, mask)
    assert np.array_equal(final, expected)
    assert [u for _, u in timings] == [int(masks.sum())] * 2


@pytest.mark.parametrize("argv, message", [
    (["speed", "--engines", "onnxruntime,gpu"], "unknown engine(s) gpu"),
    (["speed", "--grid", "4"], "--grid must lie in"),
    (["speed", "--checkpoint", "missing.pt"], "missing.pt does not exist"),
    (["quant", "--checkpoint", "missing.pt"], "--checkpoint missing.pt does not exist"),
    (["quant", "--checkpoint", "CKPT", "--steps", "1"], "--steps must be at least 2"),
    (["quant", "--checkpoint", "CKPT", "--qat-iterations", "-1"], "--qat-iterations must be >= 0"),
    (["quant", "--checkpoint", "BAD"], "is not readable"),
    (["quant", "--checkpoint", "CKPT", "--genome-ptq", "BAD"], "GENOME"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    ckpt = write_checkpoint(tmp_path / "ckpt.pt", seed=1)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a checkpoint")
    argv = [str(ckpt) if a == "CKPT" else str(bad) if a == "BAD" else a for a in argv]
    message = str(bad) if message == "GENOME" else message
    out = tmp_path / "out"
    fails_cleanly(capsys, ["bench", *argv, "--out", str(out)], message, out)


@pytest.mark.parametrize("which", ["speed", "quant"])
def test_a_genome_of_another_checkpoint_is_refused(tmp_path, capsys, quant_out, which):
    other = write_checkpoint(tmp_path / "other.pt", seed=2)
    genome = str(quant_out / "ptq.genome")
    flags = ["--genome", genome] if which == "speed" else ["--genome-ptq", genome]
    out = tmp_path / "out"
    fails_cleanly(capsys, ["bench", which, "--checkpoint", str(other), *flags, "--out", str(out)],
                  "was not made from", out)


def test_out_is_a_file(tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("x")
    assert main(["bench", "speed", "--out", str(out)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    assert out.read_text() == "x"


def test_python_m_entry_points_share_the_errors(tmp_path, capsys):
    from benchmarks import quant, speed

    assert speed.main(["--grid", "3", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("benchmarks.speed: error: --grid")
    assert quant.main(["--checkpoint", "nope.pt", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("benchmarks.quant: error: --checkpoint")
    assert not (tmp_path / "o").exists() and sys.modules["benchmarks.speed"] is speed
