"""A study from spec to report: resolve the models, expand the runs and key
them, skip the ones already filed in the output directory, run the rest on
Dask, then rebuild the table, study.json, the plots and report.md from what is
on disk (so a resumed study reports every run, not only this command's)."""
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__, atomic
from ..errors import ConfigError
from . import cluster
from .models import resolve
from .run import sim_version
from .spec import StudySpec, expand
from .store import ResultStore, parameter_record, write_table

DEFAULT_MAX_RUNS = 5000


@dataclass
class StudyPlan:
    spec: StudySpec
    sources: dict              # model label -> ModelSource
    jobs: list                 # (Run, payload bytes, parameter record), in study order
    inapplicable: dict         # reason -> count of product combinations left out
    version: str


@dataclass
class StudyOutcome:
    plan: StudyPlan
    out: Path
    ran: int = 0
    skipped: int = 0
    failures: list = field(default_factory=list)
    records: list = field(default_factory=list)
    files: list = field(default_factory=list)
    wall_time_s: float = 0.0
    cluster_start_s: float = 0.0   # connecting, or starting the local cluster
    run_phase_s: float = 0.0       # first submission to last result


def plan_study(spec: StudySpec, max_runs: int | None = DEFAULT_MAX_RUNS) -> StudyPlan:
    """Everything checked and keyed before any run starts (ConfigError otherwise)."""
    sources = {label: resolve(label, spec.target) for label in spec.models}
    runs, inapplicable = expand(spec, sources)
    if not runs:
        raise ConfigError("the spec leaves no run to do: " + "; ".join(
            f"{n} x {reason}" for reason, n in inapplicable.items()))
    if max_runs is not None and len(runs) > max_runs:
        raise ConfigError(f"the spec makes {len(runs):,} runs, more than the limit of "
                          f"{max_runs:,}; pass --yes (or raise --max-runs) to run them")
    version = sim_version()
    jobs = []
    for run in runs:
        source = sources[run.model]
        digest = source.sha256(run.precision)
        jobs.append((run, source.payload(run.precision),
                     parameter_record(run, run.key(digest, version), digest, version)))
    return StudyPlan(spec, sources, jobs, inapplicable, version)


def _versions() -> dict:
    import importlib.metadata

    versions = {"cellsim": __version__, "simulator": sim_version(),
                "python": platform.python_version()}
    for name in ("numpy", "numba", "dask", "distributed", "matplotlib"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _machine() -> dict:
    from cellsim.machine import cpu_record, load_average

    return {"host": platform.node(), "platform": platform.platform(), "cpu": cpu_record(),
            "load_average": load_average()}


def run_study(plan: StudyPlan, out, *, scheduler: str | None = None, workers: int | None = None,
              progress: bool = True, plots: bool = True, log=print) -> StudyOutcome:
    """Run what is not yet filed in `out`, then write the table, study.json,
    plots and report.md. Failed runs are recorded, not raised: see outcome.failures."""
    started = time.perf_counter()
    begun = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = atomic.prepare_output_dir(out)
    store = ResultStore(out)
    todo = [job for job in plan.jobs if not store.finished(job[2]["key"])]
    outcome = StudyOutcome(plan, out, skipped=len(plan.jobs) - len(todo))
    for reason, n in plan.inapplicable.items():
        log(f"left out {n} combination{'s' * (n != 1)}: {reason}")
    if outcome.skipped:
        log(f"skipping {outcome.skipped} of {len(plan.jobs)} runs already done in {out}")
    cluster_info = {"kind": "none (nothing to run)"}
    if todo:
        from tqdm import tqdm

        connecting = time.perf_counter()
        with cluster.connect(scheduler, workers) as client:
            outcome.cluster_start_s = time.perf_counter() - connecting
            cluster_info = {"kind": "scheduler" if scheduler else "LocalCluster",
                            **cluster.describe(client)}
            log(f"running {len(todo)} runs on {cluster_info['workers']} Dask workers "
                f"({cluster_info['threads']} threads"
                + (f", scheduler {scheduler}" if scheduler else ", local") + ")")
            bar = tqdm(total=len(todo), unit="run", disable=not progress, mininterval=0.5,
                       desc=f"study {plan.spec.name}", file=sys.stderr)

            def tick(record, state):
                bar.update(1)
                bar.set_postfix(done=state.done, failed=state.failed, refresh=False)

            submitting = time.perf_counter()
            state = cluster.run_all(client, todo, store, plan.version, tick)
            outcome.run_phase_s = time.perf_counter() - submitting
            bar.close()
        outcome.ran = state.done
    outcome.records = [store.load(job[2]["key"]) or {**job[2], "status": "missing"}
                       for job in plan.jobs]
    outcome.failures = [r for r in outcome.records if r.get("status") != "ok"]
    outcome.wall_time_s = time.perf_counter() - started
    outcome.files.append(write_table(out, outcome.records))
    path = out / "study.json"
    command = {"argv": sys.argv, "started": begun, "cluster": cluster_info,
               "ran": outcome.ran, "skipped_already_done": outcome.skipped,
               "wall_time_s": outcome.wall_time_s, "cluster_start_s": outcome.cluster_start_s,
               "run_phase_s": outcome.run_phase_s}
    commands = _earlier_commands(path) + [command]
    summary = {
        "name": plan.spec.name,
        "spec": plan.spec.source,
        "models": [source.record() for source in plan.sources.values()],
        "versions": _versions(),
        "machine": _machine(),
        # Every command that worked on this directory, the last one last.
        "commands": commands,
        "totals": {
            "runs": len(plan.jobs),
            "failed": len(outcome.failures),
            "left_out": plan.inapplicable,
            "cell_updates": sum(int(r.get("cell_updates") or 0) for r in outcome.records),
            "run_wall_time_s": sum(float(r.get("wall_time_s") or 0.0) for r in outcome.records),
            "commands_wall_time_s": sum(c["wall_time_s"] for c in commands),
        },
    }
    atomic.write_text(path, json.dumps(summary, indent=2, default=_json_default) + "\n")
    outcome.files.append(path)
    if plots:
        from .report import write_report

        outcome.files.extend(write_report(out, plan.spec, outcome.records, summary))
    return outcome


def _earlier_commands(path: Path) -> list:
    """The command records of an earlier study.json in the same directory ([] if none
    or unreadable: it is a record, never an input to the results)."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
        commands = earlier["commands"]
        if isinstance(commands, list) and all(isinstance(c, dict) and "wall_time_s" in c
                                              for c in commands):
            return commands
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return []


def _json_default(value):
    if isinstance(value, float) and math.isinf(value):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
