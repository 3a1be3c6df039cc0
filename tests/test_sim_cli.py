"""`cellsim simulate`: the files it writes, and one-line errors with exit status 2
and no output for bad input."""
import csv

import pytest
from PIL import Image

from cellsim.cli import main
from cellsim.genome import save_genome
from cli_helpers import fails_cleanly
from strategies import random_genome


@pytest.fixture(scope="module")
def genome_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("genome") / "lizard.genome"
    save_genome(random_genome(4, hidden=16), path)
    return path


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
    assert float(rows[-1]["dead"]) == 9 / 100 and rows[-1]["loss"] == ""  # 10 < 40 pixels


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
