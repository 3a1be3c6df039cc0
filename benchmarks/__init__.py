"""cellsim's benchmarks: speed of every engine (speed.py), int8 genomes against the
float model (quant.py), firmware size (firmware_size.py), training and simulator
speed (train_speed.py, sim_speed.py), studies on Dask (study_speed.py). Shared
here: the output-directory check."""
import os
from pathlib import Path

from cellsim.errors import OutputError


def check_output_dir(path) -> Path:
    """Fail before any work (and without creating anything) if `path` cannot
    become a writable directory; it is created only when results are written."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path {out} exists and is not a directory")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"output directory {out} cannot be created or written ({probe} is not writable)")
    return out
