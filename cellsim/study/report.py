"""The pictures and the page of a study, drawn from its table: survival curves
(the fraction of seeds back within the recovery factor, against each fault's
size or rate), a heatmap of the median final loss over two chosen dimensions,
recovery-time distributions, and report.md embedding them with a summary table."""
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from .. import atomic

# Dimensions besides the fault that, when swept, give each curve its own line.
LINE_DIMENSIONS = ("model", "precision", "size", "clock", "damage_at", "run_for")
COLOURS = {"int8": "tab:blue", "float": "tab:orange"}


def _ok(records):
    return [r for r in records if r.get("status") == "ok"]


def _swept(records, dims):
    return [d for d in dims if len({str(r.get(d)) for r in records}) > 1]


def _line_label(record, dims) -> str:
    return ", ".join(str(record[d]) for d in dims) or str(record["precision"])


def _families(records) -> list:
    order = []
    for r in records:
        if r["fault"] not in order:
            order.append(r["fault"])
    return order


def _value_key(value):
    """Sort numbers by size, strings after them, no value first."""
    if value is None or value == "":
        return (0, 0.0, "")
    if isinstance(value, (int, float)):
        return (1, float(value), "")
    return (2, 0.0, str(value))


def summarise(records) -> list:
    """One row per (fault, value, line): runs, recovered fraction, medians."""
    ok = _ok(records)
    dims = _swept(ok, LINE_DIMENSIONS) or ["precision"]
    groups = defaultdict(list)
    for r in ok:
        groups[(r["fault"], r["fault_value"], _line_label(r, dims))].append(r)
    families = _families(records)
    rows = []
    for (fault, value, line), members in sorted(
            groups.items(), key=lambda kv: (families.index(kv[0][0]), _value_key(kv[0][1]),
                                            kv[0][2])):
        times = [r["recovery_time"] for r in members if r["recovered"]]
        rows.append({"fault": fault, "value": value, "line": line, "runs": len(members),
                     "recovered": sum(bool(r["recovered"]) for r in members) / len(members),
                     "median_final_ratio": float(np.median([r["final_ratio"] for r in members])),
                     "median_final_loss": float(np.median([r["final_loss"] for r in members])),
                     "median_recovery_time": float(np.median(times)) if times else None})
    return rows


def _axis(ax, values):
    """Numeric x (log when the values span more than a decade) or categories."""
    if all(isinstance(v, (int, float)) for v in values):
        xs = [float(v) for v in values]
        positive = [x for x in xs if x > 0]
        if len(positive) == len(xs) and len(xs) > 1 and max(xs) / min(xs) > 10:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:g}" for x in xs], rotation=30)
        return xs
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(["-" if v is None else str(v) for v in values], rotation=30)
    return list(range(len(values)))


def _grid_of_panels(n):
    import matplotlib.pyplot as plt

    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def survival_plot(records, path, factor: float):
    rows = summarise(records)
    families = [f for f in _families(records) if any(r["fault"] == f for r in rows)]
    fig, axes = _grid_of_panels(len(families))
    for ax, family in zip(axes, families):
        mine = [r for r in rows if r["fault"] == family]
        values = sorted({r["value"] for r in mine}, key=_value_key)
        xs = dict(zip(values, _axis(ax, values)))
        for line in sorted({r["line"] for r in mine}):
            pts = sorted(((xs[r["value"]], r["recovered"]) for r in mine if r["line"] == line))
            colour = COLOURS.get(line)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=line, color=colour)
        kind = next(r["fault_kind"] for r in records if r["fault"] == family)
        ax.set_title(f"{family} ({kind})", fontsize=10)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("recovered", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(f"fraction of seeds recovered: the loss back within {factor:g}x of the "
                 "pre-damage loss, and staying there to the end")
    fig.tight_layout()
    _save(fig, path)


def heatmap_plot(records, path, dims):
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    ok = _ok(records)
    ydim, xdim = dims
    label = {d: (lambda r, d=d: str(r[d]) if d != "fault_value" else
                 ("-" if r[d] is None else str(r[d]))) for d in dims}

    def ordered(dim):
        seen = []
        for r in ok:
            if label[dim](r) not in seen:
                seen.append(label[dim](r))
        return seen

    ys, xs = ordered(ydim), ordered(xdim)
    cells = defaultdict(list)
    for r in ok:
        cells[(label[ydim](r), label[xdim](r))].append(r["final_loss"])
    grid = np.full((len(ys), len(xs)), np.nan)
    for (y, x), losses in cells.items():
        grid[ys.index(y), xs.index(x)] = np.median(losses)
    positive = grid[np.isfinite(grid) & (grid > 0)]
    fig, ax = plt.subplots(figsize=(max(5.5, 2.5 + 1.0 * len(xs)), 1.4 + 0.28 * len(ys)))
    norm = LogNorm(positive.min(), positive.max()) if positive.size and \
        positive.max() > positive.min() else None
    image = ax.imshow(grid, aspect="auto", cmap="viridis", norm=norm)
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels(xs, rotation=30, fontsize=8)
    ax.set_yticks(range(len(ys)))
    ax.set_yticklabels(ys, fontsize=7)
    ax.set_xlabel(xdim)
    ax.set_ylabel(ydim)
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=6, color="white")
    fig.colorbar(image, ax=ax, label="median final loss")
    ax.set_title("median final loss against the target", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def recovery_plot(records, path):
    ok = [r for r in _ok(records) if r["fault_kind"] != "none"]
    dims = _swept(_ok(records), LINE_DIMENSIONS) or ["precision"]
    families = _families(ok)
    fig, axes = _grid_of_panels(max(1, len(families)))
    for ax, family in zip(axes, families):
        mine = [r for r in ok if r["fault"] == family]
        values = sorted({r["fault_value"] for r in mine}, key=_value_key)
        lines = sorted({_line_label(r, dims) for r in mine})
        width = 0.8 / len(lines)
        for k, line in enumerate(lines):
            data = [[r["recovery_time"] for r in mine if r["fault_value"] == v and r["recovered"]
                     and _line_label(r, dims) == line] for v in values]
            positions = [i - 0.4 + width * (k + 0.5) for i in range(len(values))]
            shown = [(p, d) for p, d in zip(positions, data) if d]
            if shown:
                parts = ax.boxplot([d for _, d in shown], positions=[p for p, _ in shown],
                                   widths=width * 0.9, patch_artist=True, manage_ticks=False)
                for box in parts["boxes"]:
                    box.set_facecolor(COLOURS.get(line, f"C{k}"))
                    box.set_alpha(0.6)
            ax.plot([], [], "s", color=COLOURS.get(line, f"C{k}"), label=line)
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(["-" if v is None else f"{v:g}" if isinstance(v, (int, float))
                            else str(v) for v in values], rotation=30, fontsize=8)
        if not any(r["recovered"] for r in mine):
            ax.text(0.5, 0.5, "no run recovered", transform=ax.transAxes, ha="center",
                    va="center", color="grey")
        ax.set_title(family, fontsize=10)
        ax.set_ylabel("time to recover", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle("time after the damage until the loss stays within the recovery factor "
                 "(recovered runs)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path):
    import matplotlib.pyplot as plt

    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _fmt(value, digits=3):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "never"
    return f"{value:.{digits}g}"


def report_markdown(spec, records, summary) -> str:
    totals = summary["totals"]
    ok = _ok(records)
    commands = summary["commands"]
    worked = [c for c in commands if c["ran"]]
    ran = "; ".join(f"{c['ran']} runs on {c['cluster'].get('workers', 0)} workers in "
                    f"{c['wall_time_s']:.0f} s" for c in worked) or "nothing"
    lines = [f"# Study `{spec.name}`", "",
             f"{totals['runs']} runs ({len(ok)} finished, {totals['failed']} failed), "
             f"{totals['cell_updates']:,} cell updates, {totals['run_wall_time_s']:.0f} s of run "
             f"time. {len(commands)} command{'s' * (len(commands) != 1)} worked on it: {ran}. "
             f"cellsim {summary['versions']['simulator']}.", "",
             f"A run *recovers* when, from some time after the damage to the end, its loss "
             f"against the target stays within {spec.recover_factor:g}x of the loss at the "
             "damage time; the recovery time is when that stretch begins.", "",
             "![survival](survival.png)", "", "![final loss](heatmap.png)", "",
             "![recovery times](recovery.png)", "",
             "| fault | value | line | runs | recovered | median final / pre-damage loss "
             "| median recovery time |", "|---|---:|---|---:|---:|---:|---:|"]
    for row in summarise(records):
        value = "-" if row["value"] is None else row["value"]
        lines.append(f"| {row['fault']} | {value} | {row['line']} | {row['runs']} | "
                     f"{row['recovered']:.0%} | {_fmt(row['median_final_ratio'])} | "
                     f"{_fmt(row['median_recovery_time'])} |")
    failed = [r for r in records if r.get("status") != "ok"]
    if failed:
        lines += ["", f"## {len(failed)} failed runs", ""]
        lines += [f"- {r['model']} {r['precision']} {r['condition']} seed {r['seed']}: "
                  f"{r.get('error', r.get('status'))}" for r in failed[:50]]
    return "\n".join(lines) + "\n"


def write_report(out, spec, records, summary) -> list:
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    files = []
    if _ok(records):
        for name, draw in (("survival.png", lambda p: survival_plot(records, p,
                                                                    spec.recover_factor)),
                           ("heatmap.png", lambda p: heatmap_plot(records, p, spec.heatmap)),
                           ("recovery.png", lambda p: recovery_plot(records, p))):
            draw(out / name)
            files.append(out / name)
    path = out / "report.md"
    atomic.write_text(path, report_markdown(spec, records, summary))
    files.append(path)
    return files
