"""`cellsim simulate`: the files it writes, and one-line errors with exit status 2
and no output for bad input."""
import csv
import dataclasses

import numpy as np

import pytest
from PIL import Image

from cellsim.cli import main
from cellsim.genome import save_genome
from cli_helpers import fails_cleanly
from strategies import random_genome


@pytest.fixture(scope="module")
def genome_file(small_genome_file):
    return small_genome_file


def test_simulate_writes_gif_metrics_and_final_png(genome_file, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["simulate", str(genome_file), "--size", "44", "--until", "6", "--frames", "6",
                 "--damage", "half@3", "--fault", "ramflip=1e-5@1-5", "--seed", "3",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [float(r["time"]) for r in rows] == [0, 1, 2, 3, 4, 5, 6]
    assert all(r["loss"] for r in rows)  # the genome names the lizard: a loss column
    updates = [int(r["updates"]) for r in rows]
    assert updates[0] == 0 and updates == sorted(updates) and updates[-1] > 44 * 44
    final = Image.open(out / "final.png")
    assert final.size == (44 * 7, 44 * 7)  # upscaled to about 288 pixels
    with Image.open(out / "run.gif") as gif:
        assert gif.n_frames >= 2 and gif.size == final.size
    assert "wrote" in capsys.readouterr().out


def test_simulate_sync_clock_and_fault_file(genome_file, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[fault]]\nkind = "kill"\nshape = "rect:0,0,3,3"\nat = 2\n')
    out = tmp_path / "sync"
    assert main(["simulate", str(genome_file), "--size", "10", "--until", "4", "--frames", "2",
                 "--clock", "sync", "--faults", str(plan), "--out", str(out),
                 "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert float(rows[-1]["dead"]) == 9 / 100
    assert rows[-1]["loss"]  # scored on a 10x10 grid too: the target drawn 8 cells wide


@pytest.mark.parametrize("extra, message", [
    (["--damage", "half"], "needs a time"),
    (["--damage", "circle:99,99,2@1"], "selects no cell"),
    (["--until", "0"], "--until"),
    (["--frames", "0"], "--frames"),
    (["--fault", "loss=0.5@1-2", "--clock", "sync"], "asynchronous clock"),
    (["--faults", "missing.toml"], "cannot read"),
    (["--damage", "half@50"], "after --until"),
    (["--fire-rate", "3"], "fire rate"),
    (["--size", "2"], "--size"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(genome_file, tmp_path, capsys, extra,
                                                    message):
    out = tmp_path / "never"
    size = [] if "--size" in extra else ["--size", "8"]
    extra = [str(tmp_path / e) if e == "missing.toml" else e for e in extra]
    fails_cleanly(capsys, ["simulate", str(genome_file), "--until", "5", "--out", str(out),
                           "--no-progress"] + size + extra, message, out)


def test_a_corrupt_genome_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.genome"
    bad.write_bytes(b"NCAG" + bytes(40))
    fails_cleanly(capsys, ["simulate", str(bad), "--out", str(tmp_path / "o"), "--no-progress"], str(bad),
                  tmp_path / "o")


def test_the_command_offers_every_clock_the_simulator_has():
    from cellsim.commands.simulate import CLOCKS
    from cellsim.sim.clocks import KINDS

    assert set(CLOCKS) == set(KINDS)


def _grid_at_start(genome, size):
    from cellsim.sim import Grid

    grid = Grid(genome, size)
    grid.plant_seed()
    return grid


def test_simulate_scores_a_small_grid_against_the_target_recorded_beside_the_genome(
        tmp_path, capsys):
    """An image-trained genome names no target, and grids under 40 cells had no
    loss: the training target recorded beside the genome (X.target.png, as
    `cellsim quantize` writes it) scores it, on its own grid or any other."""
    from PIL import Image, ImageDraw

    from cellsim.sim import render
    from cellsim.target_images import (load_target, read_recorded_target, recorded_target_path,
                                       recorded_target_png)

    picture = Image.new("RGBA", (30, 30), (0, 0, 0, 0))
    ImageDraw.Draw(picture).ellipse((3, 3, 26, 26), fill=(200, 40, 30, 255))
    picture.save(tmp_path / "disc.png")
    trained_on = load_target(str(tmp_path / "disc.png"), 12, 3)  # an 18x18 training target
    genome = random_genome(4, hidden=16, target="")
    genome_path = tmp_path / "disc.genome"
    save_genome(genome, genome_path)
    recorded_target_path(genome_path).write_bytes(recorded_target_png(trained_on))
    assert np.array_equal(read_recorded_target(tmp_path / "disc.target.png"), trained_on)
    for size in (18, 24):
        out = tmp_path / f"run{size}"
        assert main(["simulate", str(genome_path), "--size", str(size), "--until", "2",
                     "--frames", "2", "--out", str(out), "--no-progress"]) == 0
        rows = list(csv.DictReader((out / "metrics.csv").open()))
        expected = render.centred(trained_on, size, size)
        assert rows[0]["loss"] == f"{render.loss(_grid_at_start(genome, size), expected):.6f}"
        assert all(r["loss"] for r in rows)
    capsys.readouterr()


def test_simulate_says_why_a_loss_column_is_empty(tmp_path, capsys):
    genome_path = tmp_path / "unnamed.genome"
    save_genome(random_genome(4, hidden=16, target=""), genome_path)
    out = tmp_path / "run"
    assert main(["simulate", str(genome_path), "--size", "12", "--until", "2", "--frames", "2",
                 "--out", str(out), "--no-progress"]) == 0
    assert all(r["loss"] == "" for r in csv.DictReader((out / "metrics.csv").open()))
    err = capsys.readouterr().err
    assert "names no target" in err and "unnamed.target.png" in err and "--target" in err


def test_an_emoji_genome_is_scored_on_a_quick_preset_grid(genome_file, tmp_path):
    """36 cells, the quick preset's grid: the emoji drawn 24 wide with 6 of
    padding, as that preset trains it."""
    from cellsim.genome import load_genome
    from cellsim.sim import render
    from cellsim.target_images import load_target

    out = tmp_path / "run"
    assert main(["simulate", str(genome_file), "--size", "36", "--until", "2", "--frames", "2",
                 "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    grid = _grid_at_start(load_genome(genome_file), 36)
    assert rows[0]["loss"] == f"{render.loss(grid, load_target('lizard', 24, 6)):.6f}"


def test_size_help_derives_its_default_from_the_genome(genome_file, tmp_path, capsys):
    from cellsim.genome import load_genome
    from cellsim.pretrained import get_model

    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the grid the genome was trained on" in text
    assert f"e.g. {get_model().load_genome().grid_size} for the shipped lizard" in text
    small = tmp_path / "small.genome"
    save_genome(dataclasses.replace(load_genome(genome_file), grid_size=20), small)
    out = tmp_path / "run"
    assert main(["simulate", str(small), "--until", "1", "--frames", "1", "--scale", "1",
                 "--out", str(out), "--no-progress"]) == 0
    assert Image.open(out / "final.png").size == (20, 20)


def test_a_shipped_model_name_runs_its_genome(tmp_path, capsys):
    from cellsim.pretrained import get_model

    by_name, by_path = tmp_path / "name", tmp_path / "path"
    common = ["--size", "40", "--until", "4", "--frames", "2", "--seed", "1", "--no-progress"]
    assert main(["simulate", "lizard", "--out", str(by_name)] + common) == 0
    assert main(["simulate", str(get_model("lizard").genome_path), "--out", str(by_path)]
                + common) == 0
    assert (by_name / "metrics.csv").read_text() == (by_path / "metrics.csv").read_text()
    capsys.readouterr()
    code = main(["simulate", "no-such-model", "--out", str(tmp_path / "x")] + common)
    assert code == 2 and "cannot read genome no-such-model" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
