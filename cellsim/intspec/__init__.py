"""The integer specification of one cell update: the single source of truth.

Every engine (the numba simulator, the generated C firmware, the int8 ONNX model)
is tested against these plain numpy functions; docs/integer-spec.md explains them.
One small module per operation, every rounding spelled out, as in TFLM's
reference kernels."""
from .alive import is_alive
from .cell_update import update_cell, update_ram
from .fully_connected import fully_connected
from .sync_step import step_grid_sync
from .layout import RAM_BYTES
from .params import IntParams
from .perceive import perceive
from .requantize import quantize_multiplier, requantize

__all__ = ["IntParams", "RAM_BYTES", "fully_connected", "is_alive", "perceive",
           "quantize_multiplier", "requantize", "step_grid_sync", "update_cell", "update_ram"]
