"""The asynchronous grid of per-cell microcomputers (issue 4): every cell owns
256 bytes of RAM (cellsim.intspec.layout) and a genome in ROM, fires on its own
clock and tells its state to its 8 neighbours. Two engines give the same bytes:
a sequential reference and a batched, parallel numba engine. docs/simulator.md.

Never imports torch or onnxruntime."""
from . import cache  # noqa: F401  (first: the kernels' cache checks the whole package)
from .clocks import TICKS_PER_UNIT, ClockSpec
from .faults import Fault, Shape, load_fault_plan, parse_damage, parse_fault, plan_from_mapping
from .grid import Grid

__all__ = ["ClockSpec", "Fault", "Grid", "Shape", "TICKS_PER_UNIT", "load_fault_plan",
           "parse_damage", "parse_fault", "plan_from_mapping"]
