"""The training loop: it learns, it resumes bit-identically (in process and after
a SIGKILL), and its checkpoints, pool handling and damage follow the recipe."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsim.errors import CheckpointError, ConfigError
from training.checkpoint import load_checkpoint, load_model, load_pool
from training.config import TrainConfig, make_config
from training.trainer import (Trainer, circle_damage, damage_masks, half_damage, normalise_gradients,
                              per_sample_loss)

TINY = dict(target="lizard", target_size=8, padding=2, batch=4, pool_size=12,
            min_steps=8, max_steps=12, checkpoint_every=3)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(**changes) -> TrainConfig:
    return make_config("quick", **{**TINY, **changes})


def final_state(out):
    ckpt = load_checkpoint(out / "checkpoint.pt")
    pool = None
    if ckpt["pool_file"]:
        shape = torch.load(out / ckpt["pool_file"], weights_only=True)["pool"].shape
        pool = load_pool(out / ckpt["pool_file"], ckpt["iteration"], tuple(shape))
    return ckpt, pool


def assert_same_run(a, b):
    ckpt_a, pool_a = final_state(a)
    ckpt_b, pool_b = final_state(b)
    assert ckpt_a["iteration"] == ckpt_b["iteration"]
    for name, tensor in ckpt_a["model"].items():
        assert torch.equal(tensor, ckpt_b["model"][name]), name
    for sa, sb in zip(ckpt_a["optimizer"]["state"].values(), ckpt_b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in ("exp_avg", "exp_avg_sq"))
    assert torch.equal(ckpt_a["rng"]["control"], ckpt_b["rng"]["control"])
    assert torch.equal(ckpt_a["rng"]["noise"], ckpt_b["rng"]["noise"])
    assert [r[:3] for r in ckpt_a["metrics"]] == [r[:3] for r in ckpt_b["metrics"]]
    assert (pool_a is None) == (pool_b is None)
    if pool_a is not None:
        assert torch.equal(pool_a, pool_b)


def test_loss_of_a_short_run_on_a_small_target_falls(tmp_path):
    trainer = Trainer.start(tiny(experiment="growing", iterations=60, checkpoint_every=60), tmp_path, "cpu")
    trainer.run(progress=False)
    losses = np.array([row[1] for row in trainer.metrics])
    assert len(losses) == 60
    assert losses[-10:].mean() < 0.5 * losses[:5].mean()


@pytest.mark.parametrize("experiment", ["growing", "regenerating"])
def test_resume_continues_bit_identically(tmp_path, experiment):
    straight, split = tmp_path / "straight", tmp_path / "split"
    Trainer.start(tiny(experiment=experiment, iterations=7), straight, "cpu").run(progress=False)
    Trainer.start(tiny(experiment=experiment, iterations=4), split, "cpu").run(progress=False)
    Trainer.resume(split, "cpu", {"iterations": 7}).run(progress=False)
    assert_same_run(straight, split)
    assert sorted(p.name for p in split.glob("pool-*.pt")) == \
        (["pool-0000007.pt"] if experiment == "regenerating" else [])


def _cellsim(*args, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cellsim", "train", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    """Kill the command mid-run, as a crash would, then resume from its last
    checkpoint: the result equals an uninterrupted run's."""
    common = ["--target", "lizard", "--size", "8", "--padding", "2", "--batch", "4", "--pool", "12",
              "--experiment", "regenerating", "--iterations", "30", "--checkpoint-every", "2",
              "--device", "cpu", "--no-progress"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = _cellsim(*common, "--out", str(straight))
    victim = _cellsim(*common, "--out", str(killed))
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint.pt").exists():
        assert victim.poll() is None, victim.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    stopped_at = load_checkpoint(killed / "checkpoint.pt")["iteration"]
    assert 2 <= stopped_at < 30
    assert reference.wait() == 0, reference.stderr.read()
    resumed = _cellsim(*common, "--out", str(killed), "--resume")
    assert resumed.wait() == 0, resumed.stderr.read()
    assert_same_run(straight, killed)


def test_checkpoint_holds_what_other_stages_need(tmp_path):
    Trainer.start(tiny(iterations=3, angle=0.5, torus=True), tmp_path, "cpu").run(progress=False)
    model, ckpt = load_model(tmp_path / "checkpoint.pt")
    assert ckpt["format"] == "cellsim-checkpoint" and ckpt["version"] == 1 and ckpt["iteration"] == 3
    config = ckpt["config"]
    assert config["model"] == {"channels": 16, "hidden": 128, "fire_rate": 0.5, "angle": 0.5, "torus": True}
    assert (config["target"], config["target_size"], config["padding"]) == ("lizard", 8, 2)
    assert (config["experiment"], config["batch"], config["pool_size"]) == ("regenerating", 4, 12)
    assert ckpt["target"].dtype == np.float32 and ckpt["target"].shape == (4, 12, 12)
    assert not model.training and model.angle == 0.5 and model.torus
    assert next(model.parameters()).device.type == "cpu"
    for name in ("metrics.csv", "loss.png", "pool.png", "growth.gif"):
        assert (tmp_path / name).stat().st_size > 0
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "iteration,loss,lr,seconds" and [int(l.split(",")[0]) for l in lines[1:]] == [1, 2, 3]


def test_broken_or_foreign_checkpoints_are_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(path)
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="not readable"):
        load_checkpoint(path)
    torch.save({"format": "cellsim-checkpoint", "version": 99}, path)
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(path)
    torch.save({"something": "else"}, path)
    with pytest.raises(CheckpointError, match="not a cellsim checkpoint"):
        load_checkpoint(path)
    Trainer.start(tiny(iterations=3), tmp_path / "run", "cpu").run(progress=False)
    (tmp_path / "run" / "pool-0000003.pt").unlink()
    with pytest.raises(CheckpointError, match="does not exist"):
        Trainer.resume(tmp_path / "run", "cpu", {"iterations": 5})


def test_resume_refuses_changed_settings_and_a_fresh_start_refuses_an_old_run(tmp_path):
    Trainer.start(tiny(iterations=3), tmp_path, "cpu").run(progress=False)
    with pytest.raises(ConfigError, match="batch"):
        Trainer.resume(tmp_path, "cpu", {"batch": 5})
    with pytest.raises(ConfigError, match="beyond"):
        Trainer.resume(tmp_path, "cpu", {"iterations": 2})
    with pytest.raises(ConfigError, match="already holds a checkpoint"):
        Trainer.start(tiny(iterations=3), tmp_path, "cpu")
    assert Trainer.resume(tmp_path, "cpu", {"batch": 4, "iterations": 9}).config.iterations == 9


def test_pool_batches_reseed_the_worst_and_damage_the_best(tmp_path):
    trainer = Trainer.start(tiny(iterations=1, batch=6, pool_size=6), tmp_path, "cpu")
    g = torch.Generator().manual_seed(0)
    trainer.pool = torch.rand(trainer.pool.shape, generator=g)
    before = trainer.pool.clone()
    x0, index = trainer._batch()
    assert sorted(index.tolist()) == list(range(6))
    assert torch.equal(x0[0], trainer.seed_state)
    losses = per_sample_loss(before[index], trainer.target)
    assert torch.all(losses[:-1] >= losses[1:])
    assert torch.equal(x0[1:3], before[index[1:3]])          # the middle samples are untouched
    damaged = x0[3:] != before[index[3:]]
    assert damaged.any() and torch.all((x0[3:] == 0) | ~damaged)  # damage only zeroes cells


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2 ** 32), count=st.integers(1, 4), size=st.integers(8, 80))
def test_circle_damage_cuts_one_disc_of_the_allowed_size(seed, count, size):
    masks = circle_damage(count, size, size, torch.Generator().manual_seed(seed))
    assert masks.shape == (count, size, size, 1)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    cell_area = (2 / (size - 1)) ** 2
    for m in masks[..., 0]:
        area = float((m == 0).sum()) * cell_area
        assert area <= np.pi * 0.4 ** 2 + 8 * 0.4 * 2 / (size - 1) + cell_area
        ys, xs = np.nonzero((m == 0).numpy())
        if len(xs):  # the disc's centre lies within [-0.5, 0.5]^2 (+ one cell)
            centre = np.array([xs.mean(), ys.mean()]) * 2 / (size - 1) - 1
            assert np.all(np.abs(centre) <= 0.5 + 2 / (size - 1) + 1e-6)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2 ** 32), count=st.integers(1, 6), height=st.integers(2, 40),
       width=st.integers(2, 40))
def test_half_damage_erases_exactly_one_half(seed, count, height, width):
    masks = half_damage(count, height, width, torch.Generator().manual_seed(seed))[..., 0]
    halves = {"left": np.s_[:, : width // 2], "right": np.s_[:, width // 2:],
              "top": np.s_[: height // 2, :], "bottom": np.s_[height // 2:, :]}
    for m in masks.numpy():
        erased = m == 0
        matches = [name for name, cut in halves.items()
                   if erased[cut].all() and erased.sum() == erased[cut].size]
        assert matches, m


def test_circle_plus_half_damage_gives_the_last_sample_a_half_cut():
    masks = damage_masks("circle+half", 3, 20, 20, torch.Generator().manual_seed(3))[..., 0]
    assert [int((m == 0).sum()) for m in masks][-1] == 200
    assert all(0 < int((m == 0).sum()) < 200 for m in masks[:-1])  # discs (radius <= 0.4)
    assert torch.equal(damage_masks("circle", 3, 20, 20, torch.Generator().manual_seed(3)),
                       circle_damage(3, 20, 20, torch.Generator().manual_seed(3)))


def test_resume_may_switch_the_damage_and_logs_the_switch(tmp_path):
    Trainer.start(tiny(iterations=3), tmp_path, "cpu").run(progress=False)
    trainer = Trainer.resume(tmp_path, "cpu", {"iterations": 5, "damage": "circle+half"})
    assert trainer.config.damage == "circle+half"
    trainer.run(progress=False)
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["config"]["damage"] == "circle+half"
    assert ckpt["recipe_changes"] == [{"iteration": 3, "damage": ["circle", "circle+half"]}]
    Trainer.resume(tmp_path, "cpu", {"iterations": 6}).run(progress=False)  # no change, no entry
    assert len(load_checkpoint(tmp_path / "checkpoint.pt")["recipe_changes"]) == 1
    with pytest.raises(ConfigError, match="regenerating"):
        tiny(experiment="persistent", damage="circle+half")
    with pytest.raises(ConfigError, match="unknown damage"):
        tiny(damage="square")


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2 ** 32))
def test_every_gradient_is_normalised_to_unit_length(seed):
    model = torch.nn.Linear(5, 3)
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g) * 100
    normalise_gradients(model)
    for p in model.parameters():
        assert float(p.grad.norm()) == pytest.approx(1.0, rel=1e-5)


def test_learning_rate_drops_tenfold_after_2000_iterations():
    cfg = TrainConfig()
    assert [cfg.learning_rate(i) for i in (0, 1999, 2000, 7999)] == pytest.approx([2e-3, 2e-3, 2e-4, 2e-4])


def test_config_round_trips_and_rejects_bad_values():
    cfg = make_config("full", target="fish", angle=0.25, torus=True, iterations=5)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert (cfg.grid_size, cfg.batch, cfg.pool_size, cfg.min_steps, cfg.max_steps) == (72, 8, 1024, 64, 96)
    for bad in (dict(iterations=0), dict(iterations=-3), dict(batch=0), dict(target_size=4),
                dict(padding=-1), dict(pool_size=4), dict(experiment="shrinking"), dict(fire_rate=0.0),
                dict(checkpoint_every=0), dict(min_steps=10, max_steps=10), dict(batch=3)):
        with pytest.raises(ConfigError):
            make_config("full", **bad)
    with pytest.raises(ConfigError, match="preset"):
        make_config("huge")


def test_fresh_pool_resumes_a_checkpoint_without_its_pool_file(tmp_path):
    """A shipped checkpoint comes without its pool: --resume refuses it and names
    --fresh-pool, which goes on from the same weights and optimiser with seeds."""
    Trainer.start(tiny(iterations=3), tmp_path, "cpu").run(progress=False)
    before = load_checkpoint(tmp_path / "checkpoint.pt")
    (tmp_path / before["pool_file"]).unlink()
    with pytest.raises(CheckpointError, match="--fresh-pool"):
        Trainer.resume(tmp_path, "cpu", {"iterations": 5})
    trainer = Trainer.resume(tmp_path, "cpu", {"iterations": 5}, fresh_pool=True)
    assert trainer.iteration == 3
    assert torch.equal(trainer.pool, trainer.seed_state.expand_as(trainer.pool))
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, before["model"][name])
    trainer.run(progress=False)
    ckpt, pool = final_state(tmp_path)
    assert ckpt["iteration"] == 5 and pool is not None
    assert ckpt["recipe_changes"] == [{"iteration": 3, "pool": "refilled with seeds"}]
    with pytest.raises(ConfigError, match="no sample pool"):
        Trainer.start(tiny(iterations=2, experiment="growing"), tmp_path / "g", "cpu").run(progress=False)
        Trainer.resume(tmp_path / "g", "cpu", {"iterations": 3}, fresh_pool=True)
