"""The shipped models and `cellsim demo`: every shipped file is consistent with
the others, the lizard meets the quality bar on the asynchronous int8 grid (and
reproduces its recorded figures), and the demo writes what it promises."""
import json

import numpy as np
import pytest
from PIL import Image

from cellsim.cli import main
from cellsim.demo import REGROWN_FACTOR, DemoPlan, run_demo
from cellsim.genome import sha256_file
from cellsim.pretrained import DEFAULT_MODEL, get_model, list_models
from cli_helpers import fails_cleanly

MODELS = list_models()
EXPERIMENTS = {m.experiment for m in MODELS}


def test_the_lizard_and_one_model_of_each_other_experiment_ship():
    assert DEFAULT_MODEL in {m.name for m in MODELS}
    assert get_model().experiment == "regenerating"
    assert {"growing", "persistent", "regenerating"} <= EXPERIMENTS


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_shipped_files_agree(model, tmp_path):
    genome = model.load_genome()
    meta = model.metadata
    # The genome was quantised from exactly the shipped checkpoint.
    assert genome.source_sha256 == sha256_file(model.checkpoint_path)
    assert genome.target == meta["training"]["target"]
    assert meta["quantisation"]["genome_bytes"] == model.genome_path.stat().st_size
    # The shipped header is what `cellsim header` makes of the shipped genome today.
    regenerated = tmp_path / model.header_path.name
    assert main(["header", str(model.genome_path), "--name", model.name,
                 "--out", str(regenerated)]) == 0
    assert regenerated.read_bytes() == model.header_path.read_bytes()
    # The shipped float weights are what `cellsim export --npz` makes of the checkpoint.
    floats = tmp_path / "float.npz"
    assert main(["export", str(model.checkpoint_path), "--npz", str(floats)]) == 0
    with np.load(floats) as made, np.load(model.float_path) as shipped:
        assert sorted(made.files) == sorted(shipped.files)
        for name in made.files:
            assert np.array_equal(made[name], shipped[name]), name
    q = meta["quantisation"]
    assert q["int8_loss"] == q["losses"][q["chosen"]][q["summary_label"]]
    assert meta["training"]["iterations"] >= 1 and meta["training"]["wall_time_s"] > 0


@pytest.fixture(scope="module")
def lizard_run():
    return run_demo(get_model("lizard"), DemoPlan(), progress=False)


@pytest.fixture(scope="module")
def lizard_demo(lizard_run):
    return lizard_run.summary


def test_shipped_lizard_grows_and_reproduces_its_recorded_figures(lizard_demo):
    loss = lizard_demo["loss"]
    curve = np.array(lizard_demo["loss_curve"])
    grown = curve[curve[:, 0] <= 200, 1]
    assert grown[-1] < grown[0] / 10                               # it grows from the seed
    assert loss["after_damage"] > 5 * loss["before_damage"]         # the cut did harm
    assert loss["after_regrowth"] < loss["after_damage"] / 2        # and it regrows
    recorded = get_model("lizard").metadata["async_grid"]
    assert loss == pytest.approx(recorded["loss"], rel=1e-12)     # exact engine: reproducible


def test_shipped_lizard_regrows_a_half_cut_within_the_quality_bar(lizard_demo):
    loss = lizard_demo["loss"]
    assert loss["after_regrowth"] <= REGROWN_FACTOR * loss["before_damage"]
    assert lizard_demo["regrown"]


def test_demo_writes_gif_filmstrip_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--grow", "20", "--regrow", "10", "--seed", "3",
                 "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    curve = np.array(summary["loss_curve"])
    assert curve[0, 0] == 0 and curve[-1, 0] == 30 and len(curve) == 16  # every 2 time units
    assert summary["loss"]["before_damage"] == curve[curve[:, 0] == 20, 1][0]
    assert summary["loss"]["after_regrowth"] == curve[-1, 1]
    assert summary["events"]["cell_updates"] > 0 and summary["seed"] == 3
    with Image.open(out / "demo.gif") as gif:
        assert gif.n_frames == len(curve) and gif.size == (72 * 3, 72 * 3)
    strip = Image.open(out / "filmstrip.png")
    assert strip.width > 6 * 72 * 3 and strip.height > 72 * 3  # six labelled panels
    text = capsys.readouterr().out
    assert (out / "summary.txt").read_text() in text and "wrote" in text


def test_demo_list_names_every_model_and_what_it_was_trained_for(capsys):
    from cellsim.pretrained import EXPERIMENT_PURPOSE

    assert main(["demo", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == \
        [m.name for m in MODELS]
    for model in MODELS:
        purpose = lines[lines.index(model.summary.splitlines()[0]) + 1]
        assert EXPERIMENT_PURPOSE[model.experiment] in purpose
        assert ("not what it was trained for" in purpose) == (model.experiment != "regenerating")


def test_the_filmstrip_shows_the_growth(lizard_run):
    """It once started at t = 66 with the lizard already grown."""
    times, losses = lizard_run.times, lizard_run.losses
    growth = [(label, frame) for label, frame in lizard_run.stills
              if label.startswith("t = ") and float(label[4:]) <= 200]
    at = [times.index(float(label[4:])) for label, _ in growth]
    assert len(growth) == 4 and at == sorted(at) and times[at[-1]] == 200
    grown = losses[at[-1]]
    assert losses[at[0]] > 10 * grown                       # first panel: far from grown
    assert all(losses[a] > losses[b] for a, b in zip(at, at[1:]))  # then it grows
    for (_, frame), index in zip(growth, at):
        assert np.array_equal(frame, lizard_run.frames[index])


def test_a_regrowth_figure_is_scored_only_where_it_means_something(tmp_path):
    """grinning (the growing experiment) was never trained to regrow, and a cut
    that leaves the loss where it was leaves nothing to regrow: the summary says
    so instead of 'back within 1.5x after 2 time units'."""
    from cellsim.demo import text_summary

    short = dict(grow_until=20.0, regrow_for=4.0)
    grinning = run_demo(get_model("grinning"), DemoPlan(**short), progress=False).summary
    assert grinning["regrowth_scored"] is False and grinning["experiment"] == "growing"
    assert "not scored: grinning was not trained to regrow" in text_summary(grinning)
    assert "back within" not in text_summary(grinning)
    harmless = run_demo(get_model("lizard"), DemoPlan(damage="rect:0,0,2,2", **short),
                        progress=False).summary
    assert harmless["regrowth_scored"] is False
    assert "there was nothing to regrow" in text_summary(harmless)


def test_the_lizards_regrowth_is_scored(lizard_demo):
    assert lizard_demo["regrowth_scored"] is True and lizard_demo["regrowth_note"] == ""


@pytest.mark.parametrize("after, said", [(0.05, True), (1e9, False)])
def test_a_slow_first_run_says_it_is_compiling(monkeypatch, capsys, after, said):
    """While numba compiles (a cold cache), the demo says so instead of showing a
    progress bar stuck at 1/201 with an ETA of minutes; the bar starts after.
    A compiling first run is stood in for by a warm-up made 0.5 s slow."""
    import time

    import cellsim.demo as demo
    from cellsim.sim import Grid

    snapshot = Grid.snapshot
    monkeypatch.setattr(Grid, "snapshot", lambda grid: time.sleep(0.5) or snapshot(grid))
    monkeypatch.setattr(demo, "COMPILE_NOTICE_AFTER", after)
    run_demo(get_model("lizard"), DemoPlan(grow_until=4.0, regrow_for=2.0), progress=True)
    err = capsys.readouterr().err
    notice = "demo: compiling kernels (first run only)..."
    assert (notice in err) == said
    if said:
        assert err.index(notice) < err.index("frame")  # before the bar's first line


@pytest.mark.parametrize("argv, message", [
    (["--model", "dragon"], "no shipped model 'dragon'; shipped: "),
    (["--model", "../lizard"], "no shipped model"),
    (["--damage", "hexagon"], "unknown shape"),
    (["--grow", "0"], "--grow"),
    (["--regrow", "nan"], "--regrow"),
    (["--seed", "-1"], "--seed"),
])
def test_demo_bad_input_fails_cleanly(argv, message, tmp_path, capsys):
    out = tmp_path / "never"
    fails_cleanly(capsys, ["demo", "--out", str(out), *argv], message, out=out)


def test_demo_into_a_file_fails_cleanly(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fails_cleanly(capsys, ["demo", "--out", str(blocker / "sub"), "--no-progress"], "output")
