"""The simulator and its command never import torch or onnxruntime."""
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
bad = [m for m in ("torch", "onnxruntime", "onnx") if m in sys.modules]
print("loaded:", bad)
sys.exit(1 if bad else 0)
"""


def test_simulator_imports_no_torch_or_onnxruntime():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
