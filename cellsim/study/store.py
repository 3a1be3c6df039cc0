"""Where a study's results live: one small JSON file per finished run in
DIR/runs/, written atomically the moment the run comes back, so a killed command
loses only the runs still in flight; and the tidy table (one row per run) that
is rebuilt from those files, in the spec's order, at the end of every command.

The table is CSV: a few thousand rows of numbers and short strings, read by
`pandas.read_csv(path)` or any spreadsheet, diffable, and no Parquet engine
(pyarrow, >100 MB) to install on every worker and laptop."""
import csv
import io
import json
import math
from pathlib import Path

from .. import atomic
from ..errors import OutputError
from .spec import Run

RUNS_DIR = "runs"
TABLE = "results.csv"
# Parameter columns first (what was run), then what happened.
PARAMETERS = ("key", "model", "precision", "genome_sha256", "size", "clock", "skew", "jitter",
              "seed", "damage_at", "run_for", "fault", "fault_kind", "fault_value", "condition",
              "faults", "sample_every", "recover_factor", "target", "torus", "mcu", "duty", "link",
              "sim_version")
RESULTS = ("status", "error", "pre_damage_loss", "peak_loss", "final_loss", "final_ratio",
           "recovered", "recovery_time", "seconds_per_unit", "recovery_seconds", "alive_final",
           "dead_final", "cell_updates")
PROVENANCE = ("wall_time_s", "worker", "host")


def parameter_record(run: Run, key: str, genome_sha256: str, sim_version: str) -> dict:
    record = run.record()
    record.update(key=key, genome_sha256=genome_sha256, sim_version=sim_version,
                  condition=run.condition, faults=";".join(run.faults))
    return {name: record.get(name) for name in PARAMETERS}  # hardware fields only when set


class ResultStore:
    """The per-run files of one output directory."""

    def __init__(self, out):
        self.out = Path(out)
        self.runs = self.out / RUNS_DIR
        try:
            self.runs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {self.runs}: {exc.strerror or exc}") from None

    def path(self, key: str) -> Path:
        return self.runs / f"{key}.json"

    def load(self, key: str) -> dict | None:
        """The stored record of a run, or None. A file that does not parse (it
        cannot be half-written, but a user may have edited it) counts as absent."""
        try:
            record = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("key") == key else None

    def finished(self, key: str) -> bool:
        record = self.load(key)
        return record is not None and record.get("status") == "ok"

    def write(self, record: dict) -> None:
        atomic.write_text(self.path(record["key"]), json.dumps(record, allow_nan=True) + "\n")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def table_csv(records: list) -> str:
    """Rows in the given order; loss and alive columns in time order after the rest."""
    series = []
    for record in records:
        for name in record:
            if (name.startswith("loss_t") or name.startswith("alive_t")) and name not in series:
                series.append(name)
    series.sort(key=lambda name: (name.startswith("alive_t"), float(name.split("_t", 1)[1])))
    columns = [*PARAMETERS, *RESULTS, *series, *PROVENANCE]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([_cell(record.get(name)) for name in columns])
    return buffer.getvalue()


def write_table(out, records: list) -> Path:
    path = Path(out) / TABLE
    atomic.write_text(path, table_csv(records))
    return path
