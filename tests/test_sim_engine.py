"""The fast engine gives exactly the reference engine's grid: all 256 bytes of
every cell, every event count and every cell's genome, on random small grids,
clocks, seeds and fault plans (hypothesis), and on a grid big enough for the
levels to be shared by two worker threads."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cellsim.sim import ClockSpec, Fault, Grid, Shape, sync
from strategies import random_int_params

CLOCKS = st.one_of(
    st.builds(ClockSpec, st.just("poisson"), st.sampled_from([0.25, 0.5, 1.0]),
              st.sampled_from([0.0, 0.3])),
    st.builds(ClockSpec, st.just("periodic"), st.sampled_from([0.5, 0.8]),
              st.sampled_from([0.0, 0.2]), st.sampled_from([0.0, 0.4])),
    st.just(ClockSpec("sync", 0.5)))


@st.composite
def shapes(draw, height, width):
    kind = draw(st.sampled_from(["all", "half", "circle", "rect", "cell"]))
    x, y = draw(st.integers(0, width - 1)), draw(st.integers(0, height - 1))
    if kind == "half":
        return Shape("half", (draw(st.sampled_from(["left", "right", "top", "bottom"])),))
    if kind == "circle":
        return Shape("circle", (float(x), float(y), float(draw(st.integers(0, 3)))))
    if kind == "rect":
        return Shape("rect", (float(x), float(y), float(x + draw(st.integers(1, 4))),
                              float(y + draw(st.integers(1, 4)))))
    if kind == "cell":
        return Shape("cell", (float(x), float(y)))
    return Shape()


@st.composite
def fault_plans(draw, height, width, synchronous):
    kinds = ["erase", "kill", "reboot", "stuck", "ramflip", "romflip"]
    if not synchronous:
        kinds += ["drift", "loss", "delay", "latency"]
    plan = []
    for kind in draw(st.lists(st.sampled_from(kinds), max_size=4)):
        shape = draw(shapes(height, width))
        start = draw(st.sampled_from([0.0, 0.5, 1.0, 2.25, 3.0, 4.5]))
        if kind in ("erase", "kill", "reboot", "stuck"):
            plan.append(Fault(kind, shape, start))
        elif kind == "drift":
            plan.append(Fault(kind, shape, start, value=draw(st.sampled_from([0.4, 2.5]))))
        else:
            end = start + draw(st.sampled_from([1.0, 3.0, 10.0]))
            value = {"ramflip": 5e-4, "romflip": 3e-5, "loss": draw(st.sampled_from([0.2, 1.0])),
                     "delay": draw(st.sampled_from([0.1, 1.5])),
                     "latency": draw(st.sampled_from([0.05, 0.7]))}[kind]
            plan.append(Fault(kind, shape, start, end, value))
    return plan


def run(params, size, clock, seed, torus, plan, engine, pieces, seeds, **options):
    grid = Grid(params, size, clock=clock, seed=seed, torus=torus, engine=engine, **options)
    for x, y in seeds:
        grid.plant_seed(x, y)
    grid.add_faults(plan)
    for kind, amount in pieces:
        if kind == "until":
            grid.run(until=max(amount, grid.time))
        else:
            grid.run(updates=amount)
    return grid


def assert_same(a, b):
    assert a.counts() == b.counts()
    diff = np.argwhere(a.ram != b.ram)
    assert diff.size == 0, f"first differing (y, x, byte): {diff[:3].tolist()}"
    for ga, gb in zip(a.state.genome_of, b.state.genome_of):
        assert a.state.genomes[ga].equals(b.state.genomes[gb])
    assert a.time == b.time


@st.composite
def scenarios(draw):
    height, width = draw(st.integers(3, 8)), draw(st.integers(3, 8))
    clock = draw(CLOCKS)
    seeds = draw(st.lists(st.tuples(st.integers(0, width - 1), st.integers(0, height - 1)),
                          min_size=1, max_size=3))
    pieces = draw(st.lists(st.one_of(st.tuples(st.just("until"), st.sampled_from([1.5, 3, 6])),
                                     st.tuples(st.just("updates"), st.integers(1, 60))),
                           min_size=1, max_size=3)) + [("until", 7)]
    return dict(params=random_int_params(draw(st.integers(0, 2 ** 32 - 1)), 16,
                                         draw(st.integers(2, 12)), extreme=draw(st.booleans())),
                size=(height, width), clock=clock, seed=draw(st.integers(0, 2 ** 40)),
                torus=draw(st.booleans()), plan=draw(fault_plans(height, width, clock.synchronous)),
                pieces=pieces, seeds=seeds)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_fast_engine_equals_reference(scenario):
    reference = run(**scenario, engine="reference")
    fast = run(**scenario, engine="fast")
    assert_same(reference, fast)


@settings(max_examples=8, deadline=None)
@given(scenarios(), st.integers(1, 20))
def test_window_splits_do_not_change_the_result(scenario, updates):
    """One long run equals the same run cut anywhere (windows, update limits)."""
    whole = run(**{**scenario, "pieces": [("until", 7)]}, engine="fast")
    cut = run(**{**scenario, "pieces": [("until", 2.5), ("updates", updates)]}, engine="fast")
    assume(cut.time < 4.125)
    cut.run(until=4.125)
    cut.run(until=7)
    assert_same(whole, cut)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenarios())
def test_one_unit_windows_equal_the_reference(monkeypatch, scenario):
    """A run the engine plans in many windows (messages in flight, faults and
    clocks carried from one window to the next) equals the reference."""
    from cellsim.sim import engine as fast_engine

    monkeypatch.setattr(fast_engine, "WINDOW_UNITS", 1)
    assert_same(run(**scenario, engine="reference"), run(**scenario, engine="fast"))


def live_grid_states(rng, height, width):
    states = rng.integers(-128, 128, (height, width, 16)).astype(np.int8)
    states[..., 3] = rng.integers(20, 128, (height, width))
    return states


@pytest.mark.parametrize("clock", ["poisson", "sync"])
def test_two_workers_on_a_grown_grid_equal_the_reference(clock):
    """Two workers, each running the events of its band of rows and waiting for
    the other at the rows where the bands meet; the bytes still equal
    one-at-a-time updates."""
    rng = np.random.default_rng(7)
    params = random_int_params(rng, 16, 32)
    plan = [Fault("erase", Shape("circle", (20.0, 12.0, 6.0)), 1.5),
            Fault("ramflip", Shape(), 0.0, 3.0, 2e-4)]
    grids = []
    for engine, workers in (("reference", None), ("fast", 2)):
        grid = Grid(params, (24, 40), clock=clock, seed=11, engine=engine, workers=workers)
        grid.set_states(live_grid_states(np.random.default_rng(99), 24, 40))
        grid.add_faults(plan)
        grid.run(until=3)
        grids.append(grid)
    engine = grids[1].engine
    assert clock == "sync" or (engine.band_events.min() > 0 and engine.waits > 0)
    assert_same(*grids)


@pytest.mark.parametrize("torus", [False, True])
def test_two_workers_with_delayed_messages_across_the_band_edge(torus):
    """A band's planner emits the deliveries of its cells' delayed messages,
    also those landing in the other band (and, on a torus, across the wrapped
    edge): each worker must run exactly the events at its own cells."""
    rng = np.random.default_rng(3)
    params = random_int_params(rng, 16, 32)
    plan = [Fault("delay", Shape(), 0.0, 6.0, 1.5), Fault("loss", Shape("half", ("top",)), 1.0,
                                                        4.0, 0.2)]
    grids = []
    for engine, workers in (("reference", None), ("fast", 2)):
        grid = Grid(params, (12, 16), clock="poisson", seed=5, torus=torus, engine=engine,
                    workers=workers)
        grid.set_states(live_grid_states(np.random.default_rng(4), 12, 16))
        grid.add_faults(plan)
        grid.run(until=6)
        grids.append(grid)
    assert grids[0].counts()["deliver"] > 0
    assert_same(*grids)


def test_integer_path_equals_the_reference():
    """A genome whose first-layer accumulator can leave int32 (a ROM flip can make
    one) takes the int64 path and still gives the reference bytes."""
    rng = np.random.default_rng(3)
    wide = random_int_params(rng, 16, 40)
    wide.b1[:] = 2 ** 31 - 1
    from cellsim.sim.rom import batchable
    assert not batchable(wide)
    grids = [run(wide, (6, 7), ClockSpec("poisson"), 5, False, [], engine, [("until", 4)],
                 [(3, 3)]) for engine in ("reference", "fast")]
    assert grids[0].updates > 0
    assert_same(*grids)


def test_mixed_genomes_equal_the_reference():
    rng = np.random.default_rng(5)
    genomes = [random_int_params(rng, 16, 12) for _ in range(3)]
    index = rng.integers(0, 3, (6, 6))
    grids = []
    for engine in ("reference", "fast"):
        grid = Grid(genomes=genomes, genome_index=index, size=6, engine=engine, seed=2)
        grid.set_states(live_grid_states(np.random.default_rng(1), 6, 6))
        grid.run(until=5)
        grids.append(grid)
    assert_same(*grids)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_a_restored_snapshot_replays_exactly(engine):
    grid = Grid(random_int_params(4, 16, 12), 8, seed=3, engine=engine)
    grid.plant_seed()
    grid.add_faults([Fault("delay", Shape(), 1.0, 9.0, 1.0), Fault("erase", Shape("half"), 6.0)])
    grid.run(until=5)
    snap = grid.snapshot()
    grid.run(until=10)
    first = (grid.ram.copy(), grid.counts(), grid.time)
    for _ in range(2):  # restoring leaves the snapshot as it was
        grid.restore(snap)
        assert grid.time == 5
        grid.run(until=10)
        assert np.array_equal(grid.ram, first[0]) and (grid.counts(), grid.time) == first[1:]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sampled_from([1, 5, 64]))
def test_two_workers_equal_the_reference(scenario, block):
    """Two workers (the sync clock's in interleaved blocks of `block` cells,
    small enough here to split a small grid) give the reference's bytes."""
    reference = run(**scenario, engine="reference")
    shipped, sync.BLOCK = sync.BLOCK, block
    try:
        fast = run(**scenario, engine="fast", workers=2)
    finally:
        sync.BLOCK = shipped
    assert_same(reference, fast)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([0.05, 0.5, 1.0, 2.0, 7.5]), min_size=1, max_size=12),
       st.sampled_from(["none", "snapshot", "fault", "ram", "updates"]), st.integers(0, 11),
       st.sampled_from([1, 2]))
def test_a_window_run_in_pieces_equals_one_run(steps, interruption, at, workers):
    """Short runs take pieces of one planned window (FastEngine._open_window);
    whatever comes between the pieces (a snapshot, a new fault, the RAM handed
    out, an update-limited run) leaves the grid as one run to the same times
    makes it, and as the reference engine makes it."""
    params = random_int_params(np.random.default_rng(8), 16, 16)
    states = live_grid_states(np.random.default_rng(2), 14, 11)

    def grid_for(engine):
        grid = Grid(params, (14, 11), seed=4, engine=engine, workers=workers)
        grid.set_states(states)
        return grid

    def interrupt(grid, snaps):
        if interruption == "snapshot":
            snaps.append(grid.snapshot())
        elif interruption == "fault":
            grid.erase(Shape("circle", (5.0, 6.0, 3.0)))
        elif interruption == "ram":
            grid.ram[2, 3, 240] ^= 0x5A  # the rng word: the cell's later waits change
        elif interruption == "updates":
            grid.run(updates=7)

    def outcome(grid):
        return grid.ram.copy(), grid.counts(), grid.time

    outcomes = {}
    for engine in ("fast", "reference"):
        grid, snaps = grid_for(engine), []
        for i, step in enumerate(steps):
            grid.run(until=grid.time + step)
            if i == at:
                interrupt(grid, snaps)
        grid.run(until=grid.time + 3)
        outcomes[engine] = [outcome(grid)]
        if snaps:  # a snapshot taken mid-window replays the same future
            grid.restore(snaps[0])
            grid.run(until=grid.time + 4)
            outcomes[engine].append(outcome(grid))
    assert outcomes["fast"][0][1]["fire"] > 0
    assert len(outcomes["fast"]) == len(outcomes["reference"])
    for (ram, counts, time), (ram_ref, counts_ref, time_ref) in zip(outcomes["fast"],
                                                                     outcomes["reference"]):
        assert np.array_equal(ram, ram_ref) and counts == counts_ref and time == time_ref


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2 ** 20), pieces=st.integers(2, 12))
def test_reading_ram_between_short_runs_changes_nothing_and_keeps_the_plan(seed, pieces):
    """grid.read_ram() (what cellsim view reads every frame) is the RAM that
    grid.ram gives, cannot be written, and runs interleaved with it end where
    one run ends, byte for byte."""
    params = random_int_params(seed, hidden=12)
    looked, whole = (Grid(params, size=12, seed=seed) for _ in range(2))
    for grid in (looked, whole):
        grid.plant_seed()
    for k in range(1, pieces + 1):
        looked.run(until=4.0 * k / pieces)
        view = looked.read_ram()
        assert not view.flags.writeable
        with pytest.raises(ValueError):
            view[0, 0, 0] = 1
    whole.run(until=4.0)
    np.testing.assert_array_equal(looked.read_ram(), whole.ram)
    assert looked.updates == whole.updates
    np.testing.assert_array_equal(looked.read_ram(), looked.ram)


def test_two_grids_stepped_in_turn_with_two_workers_each_equal_their_single_runs():
    """Each grid's helper stays in its kernel between short runs (team.Crew) on
    a thread of its own: grids stepped in turn neither wait for each other's
    helper nor change each other's results."""
    params = random_int_params(np.random.default_rng(3), 16, 16)
    states = live_grid_states(np.random.default_rng(5), 20, 18)

    def grid(seed):
        g = Grid(params, (20, 18), seed=seed, workers=2)
        g.set_states(states)
        return g

    stepped = [grid(1), grid(2)]
    for i in range(1, 25):
        for g in stepped:
            g.run(until=0.25 * i)
    for seed, g in zip((1, 2), stepped):
        alone = grid(seed)
        alone.run(until=6.0)
        assert np.array_equal(g.ram, alone.ram) and g.counts() == alone.counts()
    assert not np.array_equal(stepped[0].ram, stepped[1].ram)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([0.05, 0.5, 1.0, 2.0, 7.5]), min_size=1, max_size=10),
       st.floats(-3.0, 30.0), st.sampled_from([1, 2]), st.booleans())
def test_a_horizon_plans_no_further_and_changes_nothing(steps, beyond, workers, fault):
    """run(horizon=) and frames() say where short runs end: the windows planned
    for them stop there (or at the run's end, if later), and the grid is byte
    for byte the grid of the same runs without it."""
    from cellsim.sim.faults import ticks

    params = random_int_params(np.random.default_rng(4), 16, 16)
    states = live_grid_states(np.random.default_rng(6), 12, 13)
    times = np.cumsum(steps).tolist()
    horizon = times[-1] + beyond
    grids = []
    for told in (True, False):
        grid = Grid(params, (12, 13), seed=2, workers=workers)
        grid.set_states(states)
        if fault:
            grid.add_faults([Fault("erase", Shape("half", ("left",)), 0.7 * times[-1])])
        for t in times:
            grid.run(until=t, horizon=horizon if told else None)
            window = grid.engine._window
            if told and window is not None:
                assert window["plan"]["bound"][0] <= max(ticks(horizon), ticks(t)) - 1
        grids.append(grid)
    told, plain = grids
    assert np.array_equal(told.ram, plain.ram) and told.counts() == plain.counts()
    assert told.counts()["fire"] > 0
    framed = Grid(params, (12, 13), seed=2, workers=workers)
    framed.set_states(states)
    for g in framed.frames(times[-1], steps[0]):
        pass
    by_runs = Grid(params, (12, 13), seed=2, workers=workers)
    by_runs.set_states(states)
    by_runs.run(until=framed.time)
    assert np.array_equal(framed.ram, by_runs.ram) and framed.counts() == by_runs.counts()


def test_a_bad_horizon_is_refused():
    from cellsim.errors import ConfigError

    grid = Grid(random_int_params(np.random.default_rng(1), 16, 16), 6, seed=1)
    for bad in (float("nan"), float("inf"), "10", True):
        with pytest.raises(ConfigError, match="horizon must be a finite time"):
            grid.run(until=1, horizon=bad)
    grid.run(until=1, horizon=0.5)  # (earlier than until: until is the horizon)
    assert grid.time == 1


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.lists(st.sampled_from([0.25, 1.0, 2.5]), min_size=1, max_size=6),
       st.sampled_from([1, 2]))
def test_the_dead_cells_shown_are_the_dead_flags_in_ram(scenario, steps, workers):
    """grid.dead() reads the engine's copy of the dead flags when it keeps one
    (FastEngine.dead_flags): after every short run, under every fault, it is
    the flags byte of every cell's RAM."""
    from cellsim.intspec import layout

    grid = run(**scenario, engine="fast", workers=workers)
    for step in steps:
        grid.run(until=grid.time + step)
        in_ram = (grid.read_ram()[..., layout.FLAGS] & layout.FLAG_DEAD) != 0
        np.testing.assert_array_equal(grid.dead(), in_ram)
    grid.ram[0, 0, layout.FLAGS] |= layout.FLAG_DEAD  # written by the caller: read afresh
    assert grid.dead()[0, 0]
