"""benchmarks/sim_speed.py: every engine in a process of its own, rounds taken
in turn, and bad options refused before any process starts."""
import subprocess
import sys
from pathlib import Path

from benchmarks.sim_speed import HORIZON_PIECES, PIECES, interleaved_rounds

ROOT = Path(__file__).resolve().parent.parent


def test_interleaved_rounds_give_every_engine_every_round():
    specs = {"async": ("async", None, 6, 2.0, 2, "poisson", True, 0.02),
             "onnx": ("onnx", 6, 1, 0.02),
             "stepping": ("stepping", None, 6, 2.0, 2, 0.02)}
    rates = interleaved_rounds(specs, repeats=2)
    assert set(rates) == set(specs)
    for name, runs in rates.items():
        assert len(runs) == 2, name
        for r in runs:  # the stepping process: whole runs, each piece length, with horizons
            assert all(x > 0 for x in (r if name == "stepping" else (r,))), name
            assert name != "stepping" or len(r) == 1 + len(PIECES) + len(HORIZON_PIECES)


def _run(*options):
    return subprocess.run([sys.executable, "benchmarks/sim_speed.py", *options], cwd=ROOT,
                          capture_output=True, text=True)


def test_bad_options_exit_2_with_one_line():
    for options in (["--genome", "no/such.genome"], ["--batches", "1,x"], ["--repeats", "0"]):
        done = _run(*options)
        assert done.returncode == 2, options
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("sim_speed.py: error:")
