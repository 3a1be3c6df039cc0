"""Statistics, markdown tables and matplotlib charts of the benchmark records.
Charts need matplotlib (the [train] extra); without it they are skipped with a
printed note and the JSON and markdown are still written."""
import math
import textwrap

import numpy as np


def spread(values) -> dict:
    """Median, quartiles and extremes of repeated measurements."""
    v = np.asarray(values, np.float64)
    q1, median, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3),
            "min": float(v.min()), "max": float(v.max())}


def si(value: float, digits: int = 3) -> str:
    """1234567 -> '1.23 M'."""
    if value is None or not math.isfinite(value):
        return "n/a"
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}"
    return f"{value:.{digits}g}"


def markdown_table(header: list[str], rows: list[list], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pyplot():
    """matplotlib.pyplot with the file-only backend, or None (with a note)."""
    try:
        import matplotlib
    except ImportError:
        print("note: matplotlib is not installed (pip install 'cellsim[train]'): charts skipped")
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path) -> None:
    from cellsim.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)


# ---- speed --------------------------------------------------------------------------

def record_label(r: dict) -> str:
    batch = f", batch {r['batch']}" if r["batch"] > 1 else ""
    return (f"{r['engine']} {r['variant']} {r['precision']} {r['pass']}"
            f" ({r['device']}, {r['threads']} thr{batch})")


def speed_markdown(records: list[dict], machine: dict, meta: dict) -> str:
    from cellsim.machine import describe

    grids = sorted({f"{r['grid'][0]}x{r['grid'][1]}" for r in records})
    header = ["engine", "variant", "precision", "pass", "device", "threads", "batch",
              "cell updates/s", "IQR", "steps/s", "updates/step"]
    rows = [[r["engine"], r["variant"], r["precision"], r["pass"], r["device"], r["threads"], r["batch"],
             si(r["cell_updates_per_s"]), f"{si(r['cell_updates_per_s_iqr'][0])}-"
             f"{si(r['cell_updates_per_s_iqr'][1])}", f"{r['steps_per_s']:.4g}",
             f"{r['updates_per_step']:.0f}"] for r in records]
    plan = meta["plan"]
    return "\n".join([
        "# Speed", "",
        f"Grid {', '.join(grids)}; {meta['model']}; start state: {meta['workload']}.",
        f"Each setting: {plan['warmup']} warm-up call(s), then {plan['repetitions']} repetitions of at least "
        f"{plan['min_seconds']} s; the table gives the median and the interquartile range over repetitions.",
        "",
        "A *step* is one step of the training-time update rule on one grid (each cell fires with "
        "probability 0.5); steps/s counts grid steps summed over the batch. *Cell updates* are the "
        "per-cell network evaluations an engine actually runs: every cell for the dense engines "
        "(ONNX Runtime, training/model.py), only fired cells for the firmware, the simulator and the "
        "training engine (updates/step shows which).",
        "",
        f"Machine: {describe(machine)}",
        "",
        markdown_table(header, rows, "llllllrrrrr"),
        "",
    ])


def speed_chart(plt, records: list[dict], path) -> None:
    """Left: ONNX Runtime against batch size; right: every other engine, with
    the best ONNX Runtime settings for comparison. IQR as error bars."""
    from matplotlib.ticker import NullFormatter

    onnx = [r for r in records if r["engine"] == "onnxruntime"]
    others = [r for r in records if r["engine"] != "onnxruntime"]
    for precision in ("fp32", "int8"):
        chosen = [r for r in onnx if r["precision"] == precision]
        if chosen:
            others.append(max(chosen, key=lambda r: r["cell_updates_per_s"]))
    panels = 2 if onnx else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, max(3.5, 0.38 * len(others) + 1.5)),
                             squeeze=False)
    axes = axes[0]
    if onnx:
        ax = axes[0]
        for precision, colour in (("fp32", "tab:blue"), ("int8", "tab:orange")):
            for threads in sorted({r["threads"] for r in onnx}):
                rows = sorted((r for r in onnx if r["precision"] == precision and r["threads"] == threads),
                              key=lambda r: r["batch"])
                if not rows:
                    continue
                x = [r["batch"] for r in rows]
                y = np.array([r["cell_updates_per_s"] for r in rows])
                err = np.abs(np.array([r["cell_updates_per_s_iqr"] for r in rows]).T - y)
                ax.errorbar(x, y / 1e6, yerr=err / 1e6, marker="o", capsize=3, color=colour,
                            linestyle="-" if threads > 1 else "--", label=f"{precision}, {threads} thread{'s' if threads > 1 else ''}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch (grids per call)")
        ax.set_ylabel("million cell updates / s")
        ax.set_title(f"ONNX Runtime CPU, {onnx[0]['grid'][0]}x{onnx[0]['grid'][1]} grid")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[-1]
    labels = [textwrap.fill(record_label(r), 40) for r in others]  # long labels ran off the figure
    y = np.array([r["cell_updates_per_s"] for r in others])
    err = np.abs(np.array([r["cell_updates_per_s_iqr"] for r in others]).reshape(-1, 2).T - y)
    colours = ["tab:orange" if r["precision"] == "int8" else "tab:blue" for r in others]
    ax.barh(range(len(others)), y, xerr=err, color=colours, capsize=3)
    ax.set_yticks(range(len(others)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels on a log axis overlap
    ax.set_xlabel("cell updates / s (log; orange int8, blue fp32)")
    ax.set_title("every engine (median, IQR)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    save_figure(fig, path)


# ---- quantised against float --------------------------------------------------------------

MODEL_LABELS = {"float": "float32", "ptq": "int8 PTQ", "qat": "int8 QAT"}
MODEL_COLOURS = {"float": "tab:blue", "ptq": "tab:orange", "qat": "tab:green"}


def render_rgb(state: np.ndarray) -> np.ndarray:
    """(C, H, W) real state -> (H, W, 3) uint8 on white: 1 - alpha + rgb."""
    alpha = np.clip(state[3], 0, 1)
    rgb = np.clip(1 - alpha[None] + state[:3], 0, 1)
    return (rgb.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)


def filmstrip(frames: dict, target: np.ndarray, path, caption: str, scale: int = 0) -> None:
    """Rows: the target, then each model; columns: the recorded steps. frames:
    {model: {step: (C, H, W) real state}}. Written with Pillow (always present)."""
    from PIL import Image, ImageDraw

    from cellsim.atomic import atomic_path

    names = list(frames)
    steps = sorted(frames[names[0]])
    h, w = target.shape[1:]
    scale = scale or max(1, 144 // max(h, w))
    cell_h, cell_w, pad, left, top = h * scale, w * scale, 6, 80, 36
    image = Image.new("RGB", (max(left + len(steps) * (cell_w + pad), 8 * len(caption)),
                              top + (len(names) + 1) * (cell_h + pad)), "white")
    draw = ImageDraw.Draw(image)
    target_state = np.concatenate([np.asarray(target, np.float32), np.zeros((12, h, w), np.float32)])
    rows = [("target", {s: target_state for s in steps[:1]})] + [(MODEL_LABELS.get(n, n), frames[n]) for n in names]
    draw.text((4, 3), caption, fill="black")
    for j, step in enumerate(steps):
        draw.text((left + j * (cell_w + pad), 20), str(step), fill="black")
    for i, (label, row) in enumerate(rows):
        y = top + i * (cell_h + pad)
        draw.text((4, y + cell_h // 2 - 5), label, fill="black")
        for j, step in enumerate(steps):
            if step in row:
                tile = Image.fromarray(render_rgb(row[step])).resize((cell_w, cell_h), Image.NEAREST)
                image.paste(tile, (left + j * (cell_w + pad), y))
    with atomic_path(path) as tmp:
        image.save(tmp)


def _fmt(value, digits=4) -> str:
    if value is None:
        return "no"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(value)
    return f"{value:.{digits}g}"


def summary_table(result: dict) -> str:
    """float vs PTQ vs QAT: the README's table."""
    kinds = list(result["regrowth"]["results"])
    has_sim = bool(result.get("clocks"))
    header = ["model", f"loss at step {result['training_horizon']}",
              f"loss at step {result['long_run']['steps'][-1]}", "survives"]
    header += [f"regrowth steps, {k}" for k in kinds]
    if has_sim:
        header += ["sim sync final loss", "sim async final loss", "sim async regrowth (units)"]
    rows = []
    for name, row in result["summary"].items():
        cells = [MODEL_LABELS.get(name, name), _fmt(row["loss_at_horizon"]), _fmt(row["loss_final"]),
                 _fmt(row["survives"])]
        cells += [_fmt(row["regrowth_steps"][k]) for k in kinds]
        if has_sim:
            cells += [_fmt(row["sync_loss_final"]), _fmt(row["async_loss_final"]),
                      _fmt(row["async_regrowth_time"])] if "async_loss_final" in row else ["-"] * 3
        rows.append(cells)
    return markdown_table(header, rows)


def _damage_time(result: dict):
    first = next(iter(result["clocks"].values()))["sync"]
    return f"{first['damage_time']:g}"


def quant_markdown(result: dict) -> str:
    from cellsim.machine import describe

    d = result["definitions"]
    lines = [
        "# Quantised against float", "",
        f"Checkpoint `{result['checkpoint']}` (target {result['target']}, {result['grid'][1]}x{result['grid'][0]} "
        f"grid, training horizon {result['training_horizon']} steps), {result['plan']['batch']} rollouts per "
        f"model with shared fire masks and damage{'; quick run' if result['quick'] else ''}.",
        "",
        "Genomes: " + "; ".join(f"{MODEL_LABELS[k]} {v}" for k, v in result["genomes"].items()) + ".",
        "",
        summary_table(result), "",
        f"Empty-grid loss (nothing grown): {result['empty_grid_loss']:.4g}. Survives: {d['survives']}. "
        f"Regrowth time: {d['regrowth_steps']}; damage at step {result['regrowth']['damage_step']} "
        f"(half cut: a random half of the grid erased; circle: the paper's disc; cell deaths: {d['cell-deaths']}); "
        "\"no\" means not regrown within "
        f"{result['regrowth']['steps']} steps.", "",
        "## Regrowth", "",
    ]
    header = ["damage", "model", "loss before", "loss damaged", "loss at end", "undamaged at end",
              "regrowth steps"]
    rows = []
    for kind, per_model in result["regrowth"]["results"].items():
        for name, r in per_model.items():
            rows.append([kind, MODEL_LABELS.get(name, name), _fmt(r["loss_before"]), _fmt(r["loss_damaged"]),
                         _fmt(r["loss_final"]), _fmt(r["loss_final_undamaged"]), _fmt(r["regrowth_steps"])])
    lines += [markdown_table(header, rows, "llrrrrr"), ""]
    if result.get("clocks"):
        lines += ["## Synchronous against asynchronous clocks (grid simulator)", "",
                  f"The float model and each int8 genome on cellsim.sim's grid from the seed, the right "
                  f"half erased at time {_damage_time(result)}, "
                  f"{result['plan']['sim_seeds']} grid(s) per setting; {d['time_unit']}.", ""]
        header = ["model", "clock", "loss before damage", "loss damaged", "regrowth (units)", "final loss",
                  "final loss, undamaged", "cell updates (damaged runs)"]
        rows = []
        for name, per_clock in result["clocks"].items():
            for clock, r in per_clock.items():
                rows.append([MODEL_LABELS.get(name, name), clock, _fmt(r["loss_before_damage"]),
                             _fmt(r["loss_damaged"]), _fmt(r["regrowth_time"]), _fmt(r["loss_final"]),
                             _fmt(r["loss_final_undamaged"]), f"{r['updates']:,}"])
        lines += [markdown_table(header, rows, "llrrrrrr"), ""]
    lines += ["## Divergence from float, per channel", "", d["divergence"] + ".", ""]
    div = result["divergence"]
    names = [n for n in ("ptq", "qat") if n in div]
    if names:
        header = ["step"] + [f"{MODEL_LABELS[n]} ch {c}" for n in names for c in ("0-2 RGB", "3 alpha", "4-15")]
        picks = sorted({min(range(len(div["steps"])), key=lambda i: abs(div["steps"][i] - t))
                        for t in (result["training_horizon"], div["steps"][-1] // 2, div["steps"][-1])})
        rows = []
        for i in picks:
            row = [div["steps"][i]]
            for n in names:
                rel = np.asarray(div[n]["relative"][i])
                row += [_fmt(float(rel[:3].mean()), 3), _fmt(float(rel[3]), 3), _fmt(float(rel[4:].mean()), 3)]
            rows.append(row)
        lines += ["Relative divergence (mean over the channel group):", "", markdown_table(header, rows), ""]
    lines += ["Plots: " + ", ".join(f"`{f}`" for f in result.get("files", []) if f.endswith(".png")) + ".", "",
              f"Machine: {describe(result['machine'])}", ""]
    return "\n".join(lines)


def quant_plots(plt, result: dict, out) -> list[str]:
    """quant_loss.png (long run, regrowth, clocks) and quant_divergence.png."""
    from pathlib import Path

    out = Path(out)
    kinds = list(result["regrowth"]["results"])
    panels = 1 + len(kinds) + (1 if result.get("clocks") else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6), squeeze=False)
    axes = axes[0]
    ax = axes[0]
    long = result["long_run"]
    for name, curve in long["loss"].items():
        ax.plot(long["steps"], curve, label=MODEL_LABELS.get(name, name), color=MODEL_COLOURS.get(name))
    ax.axvline(result["training_horizon"], color="grey", linestyle=":", linewidth=1)
    ax.set_title("long run from the seed")
    ax.set_xlabel("step")
    ax.set_ylabel("loss vs target")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    for ax, kind in zip(axes[1:], kinds):
        for name, r in result["regrowth"]["results"][kind].items():
            ax.plot(r["curve_steps"], r["curve_loss"], color=MODEL_COLOURS.get(name),
                    label=MODEL_LABELS.get(name, name))
            ax.plot(r["curve_steps"], r["curve_loss_undamaged"], color=MODEL_COLOURS.get(name),
                    linestyle=":", linewidth=1)
        ax.set_title(f"regrowth after {kind} (dotted: undamaged)")
        ax.set_xlabel("steps after damage")
        ax.set_yscale("log")
    if result.get("clocks"):
        ax = axes[-1]
        for name, per_clock in result["clocks"].items():
            for clock, r in per_clock.items():
                ax.plot(r["time"], r["loss"], color=MODEL_COLOURS.get(name),
                        linestyle="-" if clock == "poisson" else "--",
                        label=f"{MODEL_LABELS.get(name, name)}, {clock}")
        ax.set_title("simulator: sync (--) vs async (-)")
        ax.set_xlabel("time units")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out / "quant_loss.png")
    files = ["quant_loss.png"]
    div = result["divergence"]
    names = [n for n in ("ptq", "qat") if n in div]
    if names:
        fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 3.8), squeeze=False, sharey=True)
        cmap = plt.get_cmap("viridis")
        for ax, name in zip(axes[0], names):
            rel = np.asarray(div[name]["relative"])
            for c in range(rel.shape[1]):
                style = {0: "red", 1: "green", 2: "blue", 3: "black"}.get(c)
                ax.plot(div["steps"], rel[:, c], color=style or cmap(c / rel.shape[1]),
                        linewidth=1.6 if style else 0.8, label=["R", "G", "B", "alpha"][c] if style else None)
            ax.set_title(f"{MODEL_LABELS[name]} - float, per channel")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("RMS difference / RMS of float")
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, out / "quant_divergence.png")
        files.append("quant_divergence.png")
    return files
