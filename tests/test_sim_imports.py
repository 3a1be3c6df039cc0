"""The simulator and its command never import torch or onnxruntime; a study's run
needs neither torch nor Dask."""
import ast
import subprocess
import sys

CODE = """
import sys
import numpy as np
import cellsim.sim, cellsim.sim.render, cellsim.sim.floatmodel, cellsim.commands.simulate
from cellsim.cli import build_parser
build_parser({"simulate"})
sys.path.insert(0, "tests")
from cellsim.intspec import IntParams
rng = np.random.default_rng(0)
p = IntParams(w1=rng.integers(-127, 128, (8, 48)), b1=np.zeros(8), m1=np.full(8, 1 << 30),
              shift1=np.full(8, -8), w2=rng.integers(-127, 128, (16, 8)), b2=np.zeros(16),
              m2=np.full(16, 1 << 30), shift2=np.full(16, -12), hidden_zero_point=-128,
              alive_threshold=10, state_scale=np.full(16, 0.01), hidden_scale=0.05)
grid = cellsim.sim.Grid(p, 5)
grid.plant_seed()
grid.run(until=2)
"""


def loaded_after(code: str, modules: tuple) -> list:
    """Which of `modules` a fresh interpreter has imported after running `code`."""
    check = f"\nprint(sorted(m for m in {modules!r} if m in sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", "import sys\n" + code + check],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def test_simulator_imports_no_torch_or_onnxruntime():
    assert loaded_after(CODE, ("torch", "onnxruntime", "onnx")) == []


STUDY = """
import sys
from importlib.resources import files
from cellsim.study import driver, parse_spec_text
from cellsim.study.run import execute
plan = driver.plan_study(parse_spec_text(files("cellsim.study").joinpath("example.toml").read_text()))
run, payload, _ = next(job for job in plan.jobs if job[0].precision == "float")
execute(run, payload)
"""


def test_a_study_plans_and_runs_float_rows_without_torch_and_a_run_without_dask():
    assert loaded_after(STUDY, ("torch", "onnxruntime", "onnx", "distributed")) == []
