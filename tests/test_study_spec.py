"""Study specs: the product they expand to, the keys results are filed under,
the recovery rule, and bad specs (under hypothesis: a ConfigError naming the
problem, never a traceback; on the command line: one line and exit 2, nothing run)."""
import copy
import math
import tomllib
from importlib.resources import files

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsim.errors import CellsimError, ConfigError
from cellsim.study import driver
from cellsim.study.models import ModelSource, resolve
from cellsim.study.run import recovery
from cellsim.study.spec import Run, expand, parse_spec, parse_spec_text
from cli_helpers import fails_cleanly

EXAMPLE = files("cellsim.study").joinpath("example.toml").read_text()
BASE = {"name": "t", "models": ["lizard"], "precisions": ["int8", "float"], "sizes": [40, 48],
        "seeds": 3, "damage_at": [20], "run_for": [10, 20], "sample_every": 5,
        "faults": [{"name": "control", "kind": "none"},
                   {"name": "disc", "kind": "erase", "shape": "circle:{cx},{cy},{value}",
                    "values": [2, 4]},
                   {"name": "flips", "kind": "ramflip", "values": [1e-5]},
                   {"name": "loss", "kind": "loss", "values": [0.1, 0.5], "duration": 5,
                    "also": ["erase:circle:{cx},{cy},3"]}]}


def sources(spec):
    return {m: resolve(m, spec.target) for m in spec.models}


def test_example_spec_parses_and_expands_to_its_product_plus_the_extra_run():
    spec = parse_spec_text(EXAMPLE)
    runs, skipped = expand(spec, sources(spec))
    families = sum(len(f.values) for f in spec.faults)
    assert len(runs) == 2 * families * len(spec.seeds) + 1 and skipped == {}
    extra = runs[-1]
    assert (extra.clock, extra.skew, extra.jitter, extra.seed, extra.fault_value) == \
        ("periodic", 0.1, 0.2, 7, 12)


def test_the_product_leaves_out_what_cannot_run_and_fills_the_fault_templates():
    spec = parse_spec(BASE)
    runs, skipped = expand(spec, sources(spec))
    per_precision = 2 * 2 * 3 * (1 + 2 + 1 + 2)   # sizes x run_for x seeds x conditions
    assert len(runs) == 2 * per_precision - 2 * 2 * 3 and \
        skipped == {"float x ramflip (no bits to flip)": 12}
    disc = next(r for r in runs if r.fault == "disc" and r.size == 48 and r.fault_value == 4)
    assert disc.faults == ("erase:circle:24,24,4@20",)
    loss = next(r for r in runs if r.fault == "loss" and r.run_for == 10)
    # The swept value is the fault's own; the rate fault lasts its duration (5)
    # from the damage time; `also` fills the grid's centre.
    assert loss.faults == ("loss=0.1:all@20-25", "erase:circle:20,20,3@20")
    assert all(r.target == "lizard" and r.until == r.damage_at + r.run_for for r in runs)
    assert len({r.key("g", "v") for r in runs}) == len(runs)


def test_also_faults_with_a_value_placeholder_must_name_a_shape_the_simulator_knows():
    bad = copy.deepcopy(BASE)
    bad["faults"][3]["also"] = ["erase:half:{value}"]
    with pytest.raises(ConfigError, match="half:0.1"):
        expand(parse_spec(bad), sources(parse_spec(bad)))


def test_sample_times_include_the_damage_time_and_the_end():
    run = Run("m", "int8", 40, "poisson", 0.0, 0.0, 0, 25.0, 12.0, "c", "none", None, (), 10.0,
              1.5, "lizard", None)
    assert run.sample_times() == [0, 10, 20, 25.0, 30, 37.0]


def test_a_run_key_changes_with_every_parameter_the_genome_and_the_simulator():
    spec = parse_spec({**BASE, "faults": BASE["faults"][:2]})
    runs, _ = expand(spec, sources(spec))
    run = runs[5]
    key = run.key("genome", "1.0")
    assert key == run.key("genome", "1.0")
    assert key != run.key("other genome", "1.0") and key != run.key("genome", "1.1")
    for name, value in [("seed", 99), ("size", 41), ("clock", "periodic"), ("damage_at", 21.0),
                        ("faults", ("erase:all@20",)), ("recover_factor", 2.0),
                        ("precision", "float"), ("target", "fish")]:
        changed = Run(**{**run.__dict__, name: value})
        assert changed.key("genome", "1.0") != key, name


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(1e-4, 1.0), min_size=2, max_size=12), st.integers(0, 11),
       st.floats(1.0, 3.0))
def test_recovery_is_the_start_of_the_last_stretch_within_the_factor(losses, at, factor):
    at = min(at, len(losses) - 1)
    times = [10.0 * k for k in range(len(losses))]
    before, when = recovery(times, losses, times[at], factor)
    assert before == losses[at]
    inside = [loss <= factor * before for loss in losses[at:]]
    if not inside[-1]:
        assert when is None
        return
    start = at + int(when / 10.0)
    assert all(inside[start - at:])
    assert start == at or not inside[start - at - 1]


# -- bad specs ---------------------------------------------------------------

BAD = [
    ({"colour": 1}, "unknown key 'colour'"),
    ({"models": []}, "models is empty"),
    ({"precisions": ["int4"]}, "int4"),
    ({"sizes": [16]}, "sizes = 16 is outside"),
    ({"sizes": [72.5]}, "must be an integer"),
    ({"seeds": 0}, "seeds = 0"),
    ({"damage_at": [-1]}, "damage_at"),
    ({"run_for": []}, "run_for is empty"),
    ({"clocks": ["quartz"]}, "unknown clock"),
    ({"clocks": [{"kind": "periodic", "skew": 2}]}, "skew"),
    ({"sample_every": 0.001}, "samples"),
    ({"recover_factor": 0.5}, "recover_factor"),
    ({"faults": [{"kind": "meteor"}]}, "unknown fault kind 'meteor'"),
    ({"faults": [{"kind": "kill", "shape": "random:{value}", "values": []}]}, "empty"),
    ({"faults": [{"kind": "loss"}]}, "needs values"),
    ({"faults": [{"kind": "loss", "values": [1.5]}]}, "outside"),
    ({"faults": [{"kind": "kill", "shape": "circle:{cx},{cy},{value}", "values": [-3]}]},
     "radius is negative"),
    ({"faults": [{"kind": "erase", "shape": "circle:{x},{cy},{value}", "values": [1]}]},
     "placeholder"),
    ({"faults": [{"kind": "erase", "shape": "circle:200,200,4"}]}, "selects no cell"),
    ({"faults": [{"kind": "erase", "shape": "all", "also": ["kill:all@5"]}]}, "no times"),
    ({"faults": [{"kind": "none"}, {"kind": "none"}]}, "twice"),
    ({"runs": [{"fault": "nothing"}]}, "no [[faults]] named"),
    ({"runs": [{"speed": 3}]}, "unknown key 'speed'"),
    ({"report": {"heatmap": ["seed", "seed"]}}, "heatmap"),
    ({"models": ["no-such-model"]}, "neither a shipped model nor a file"),
    ({"target": "unicorn-emoji"}, "unicorn"),
]


@pytest.mark.parametrize("change, message", BAD)
def test_bad_specs_name_the_problem(change, message):
    data = {**BASE, **change}
    with pytest.raises(CellsimError, match=None) as info:
        spec = parse_spec(data)
        driver.plan_study(spec)
    assert message in str(info.value), str(info.value)


def _mutations():
    leaf = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 20, 10 ** 20),
                     st.floats(allow_nan=True), st.text(max_size=12),
                     st.sampled_from(["lizard", "sync", "random:{value}", "half:{value}",
                                      "kill", "none", "loss", "circle:{cx},{cy},{value}",
                                      "int8", "float", "{", "}"]))
    value = st.recursive(leaf, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
        max_leaves=6)
    keys = st.sampled_from(sorted(BASE) + ["clocks", "runs", "report", "target", "torus",
                                           "recover_factor", "bogus"])
    return st.lists(st.tuples(keys, value, st.integers(0, 3)), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None)
@given(_mutations())
def test_mutated_specs_give_a_typed_error_or_a_plan_never_a_traceback(mutations):
    data = copy.deepcopy(BASE)
    data["seeds"] = 1
    for key, value, depth in mutations:
        families = data.get("faults")
        if depth and key == "faults" and isinstance(value, dict) and isinstance(families, list) \
                and families and all(isinstance(f, dict) for f in families):
            families[depth % len(families)].update(value)  # change inside one family
        else:
            data[key] = value
    try:
        plan = driver.plan_study(parse_spec(data), max_runs=500)
    except CellsimError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert plan.jobs and all(math.isfinite(job[0].until) for job in plan.jobs)


def test_the_command_refuses_bad_specs_in_one_line_before_any_run(tmp_path, capsys):
    out = tmp_path / "out"
    spec = tmp_path / "spec.toml"
    spec.write_text("models = ['lizard']\n[[faults]]\nkind = 'meteor'\n")
    fails_cleanly(capsys, ["study", str(spec), "--out", str(out)], "meteor", out=out)
    spec.write_text("models = ['lizard'\n")
    fails_cleanly(capsys, ["study", str(spec), "--out", str(out)], "not valid TOML", out=out)
    fails_cleanly(capsys, ["study", str(tmp_path / "missing.toml"), "--out", str(out)],
                  "cannot read", out=out)
    spec.write_text("models = ['lizard']\nseeds = 30\n")
    fails_cleanly(capsys, ["study", str(spec), "--out", str(out), "--max-runs", "10"],
                  "30 runs, more than the limit of 10; pass --yes", out=out)
    fails_cleanly(capsys, ["study", str(spec)], "--out DIR is required")
    fails_cleanly(capsys, ["study", str(spec), "--out", str(out), "--workers", "0"], "--workers")
    fails_cleanly(capsys, ["study", str(spec), "--out", str(out), "--scheduler", "nowhere"],
                  "not an address")


def test_the_example_is_printed_and_is_a_valid_spec(capsys):
    from cellsim.cli import main

    assert main(["study", "--example"]) == 0
    text = capsys.readouterr().out
    assert text == EXAMPLE and tomllib.loads(text)["models"] == ["lizard"]


def test_dry_run_lists_every_run_with_its_key(tmp_path, capsys):
    from cellsim.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(EXAMPLE)
    assert main(["study", str(spec), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    plan = driver.plan_study(parse_spec_text(EXAMPLE))
    assert lines[-1] == f"{len(plan.jobs)} runs"
    assert [line.split()[0] for line in lines[:-1]] == [job[2]["key"] for job in plan.jobs]


def test_model_sources_from_files(tmp_path):
    shipped = resolve("lizard")
    assert shipped.int8 is not None and shipped.float is not None and shipped.target == "lizard"
    genome = tmp_path / "g.genome"
    genome.write_bytes(shipped.int8)
    floats = tmp_path / "w.npz"
    floats.write_bytes(shipped.float)
    assert resolve(str(genome)) == ModelSource(str(genome), shipped.int8, None, "")
    assert resolve(str(floats), "lizard").float == shipped.float
    with pytest.raises(ConfigError, match="do not name their target"):
        resolve(str(floats))
    assert np.frombuffer(shipped.int8[:4], np.uint8).size == 4


def test_the_simulator_version_covers_files_that_exist():
    """A renamed module must not drop out of the hash that keys the results."""
    from cellsim.study.run import PACKAGE, VERSIONED, sim_version

    for pattern in VERSIONED:
        assert list(PACKAGE.glob(pattern)), pattern
    assert sim_version().startswith("0.") and len(sim_version().split("+")[1]) == 12


def test_a_training_checkpoint_gives_the_float_rows_of_its_model():
    """A .pt is read with torch on the submitting machine and sent as float
    weights: the same arrays `cellsim export --npz` ships beside it."""
    import io

    from cellsim.pretrained import get_model

    model = get_model("lizard")
    source = resolve(str(model.checkpoint_path))
    assert source.int8 is None and source.target == "lizard"
    with np.load(io.BytesIO(source.float)) as made, np.load(model.float_path) as shipped:
        assert sorted(made.files) == sorted(shipped.files)
        for name in made.files:
            assert np.array_equal(made[name], shipped[name]), name


def test_a_spec_times_its_runs_on_hardware_and_old_keys_stay_the_same():
    """mcu = 'TARGET@FREQ' (with duty and link) gives every run its hardware; a
    run without it keeps the record, and so the key, it had before."""
    plain = parse_spec({**BASE, "faults": BASE["faults"][:1]})
    timed = parse_spec({**BASE, "faults": BASE["faults"][:1], "clocks": ["poisson", "sync"],
                        "mcu": "cortex-m4@80MHz", "link": "115200"})
    old, _ = expand(plain, sources(plain))
    runs, skipped = expand(timed, sources(timed))
    assert set(old[0].record()) == set(Run.__dataclass_fields__) - {"mcu", "duty", "link"}
    assert skipped == {"sync x link (needs asynchronous clocks)": len(old)}
    assert all((r.mcu, r.duty, r.link) == ("cortex-m4@80MHz", 1.0, 115200.0) for r in runs)
    assert {r.key("g", "v") for r in runs}.isdisjoint({r.key("g", "v") for r in old})
    mcu = runs[0].hardware()
    assert mcu.label == "Cortex-M4 at 80 MHz" and mcu.link_baud == 115200


@pytest.mark.parametrize("change, message", [
    ({"mcu": "z80@4MHz"}, "unknown MCU target"),
    ({"mcu": "cortex-m4@fast"}, "clock frequency"),
    ({"mcu": 80}, "TARGET@FREQ"),
    ({"mcu": "cortex-m4@80MHz", "duty": 0}, "duty"),
    ({"mcu": "cortex-m4@80MHz", "link": "slow"}, "link rate"),
    ({"link": 9600}, "go with mcu"),
])
def test_bad_hardware_in_a_spec_names_the_problem(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_spec({**BASE, **change})


def test_a_timed_run_reports_its_recovery_in_seconds():
    from cellsim.study.run import execute

    spec = parse_spec({"models": ["lizard"], "sizes": [72], "damage_at": [150], "run_for": [150],
                       "sample_every": 10, "recover_factor": 6, "mcu": "rv32imc@160MHz",
                       "duty": 0.5,
                       "faults": [{"kind": "erase", "shape": "half"}]})
    (run,), _ = expand(spec, sources(spec))
    row = execute(run, sources(spec)["lizard"].payload("int8"))
    assert row["seconds_per_unit"] == run.hardware().seconds_per_unit(0.5) > 0
    assert row["recovery_time"] > 0
    assert row["recovery_seconds"] == pytest.approx(row["recovery_time"] * row["seconds_per_unit"])
