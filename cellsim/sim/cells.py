"""Where an engine keeps the cells' states, behind one small interface the Grid
uses: the int8 engines keep them in each cell's 256 bytes of RAM (this mixin);
the float engine overrides it with float32 arrays beside the control RAM."""
import numpy as np

from ..errors import ConfigError
from ..intspec import layout
from .frame_kernels import dequantised


class RamCells:
    """The int8 cell store: own state and mailbox are views of the RAM."""
    refused_faults = ()  # fault kinds this engine's cells cannot have

    def dead_flags(self):
        """(cells,) non-zero where a cell is dead, if the engine keeps such a copy
        of the RAM's flags current, else None (read them from the RAM)."""
        return None

    def own_states(self) -> np.ndarray:
        """(cells, C) view of every cell's own state."""
        return layout.state(self.state.ram)

    def heard_states(self) -> np.ndarray:
        """(cells, 8, C) view of every cell's mailbox."""
        return layout.mailbox(self.state.ram)

    def seed_state(self, cell: int) -> np.ndarray:
        return self.state.genomes[self.state.genome_of[cell]].seed_state()

    def stored(self, flat: np.ndarray) -> np.ndarray:
        """(cells, C) states as this store holds them; ConfigError if they cannot be."""
        if not np.issubdtype(flat.dtype, np.integer) or flat.min(initial=0) < -128 or \
                flat.max(initial=0) > 127:
            raise ConfigError("int8 states must be integers in [-128, 127]")
        return flat.astype(np.int8)

    def real_states(self, channels=None) -> np.ndarray:
        """(cells, C) float32 real values, each cell at its own genome's scales;
        the first `channels` only, when given (a frame needs RGBA: a quarter of
        the work on a large grid)."""
        channels = channels or layout.CHANNELS
        genomes = self.state.genomes
        if len(genomes) == 1:  # one genome: its scales broadcast, no per-cell table
            scales = np.asarray(genomes[0].state_scale, np.float32)[:channels]
            return dequantised(self.state.ram.view(np.int8), layout.STATE, channels, scales)
        else:
            scales = np.stack([p.state_scale[:channels] for p in genomes])[self.state.genome_of]
        return (self.own_states()[:, :channels] * scales).astype(np.float32, copy=False)

    def saved_cells(self):
        """What a snapshot must keep beyond the RAM (nothing: the RAM is the cell)."""
        return None

    def restore_cells(self, saved) -> None:
        pass

    def settle(self, keep=True) -> None:
        """Bring the state's clocks up to the last cut (engines that plan ahead)."""

    def forget(self) -> None:
        """Drop what the engine planned from a state that was just replaced."""
