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
def lizard_demo():
    return run_demo(get_model("lizard"), DemoPlan(), progress=False).summary


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


def test_demo_list_names_every_model(capsys):
    assert main(["demo", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [m.name for m in MODELS]


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
