"""Fault plans: parsing and validation, and what each fault does to the cells."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsim.errors import ConfigError
from cellsim.intspec import layout
from cellsim.sim import Fault, Grid, Shape, load_fault_plan, parse_damage, parse_fault
from cellsim.sim.faults import plan_from_mapping
from strategies import random_int_params

TICK = 1 / 65536


@pytest.mark.parametrize("text, expected", [
    ("erase:half@150", Fault("erase", Shape("half", ("right",)), 150.0)),
    ("kill:circle:36,36,10@200", Fault("kill", Shape("circle", (36.0, 36.0, 10.0)), 200.0)),
    ("loss=0.2@100-200", Fault("loss", Shape(), 100.0, 200.0, 0.2)),
    ("drift=1.5:rect:0,0,10,5@3", Fault("drift", Shape("rect", (0.0, 0.0, 10.0, 5.0)), 3.0,
                                        value=1.5)),
    ("ramflip=1e-6", Fault("ramflip", Shape(), 0.0, value=1e-6)),
    ("stuck:cell:3,4@10", Fault("stuck", Shape("cell", (3.0, 4.0)), 10.0)),
])
def test_fault_flags_parse(text, expected):
    assert parse_fault(text) == expected
    assert parse_fault(str(expected)) == expected  # str() writes the flag back


def test_damage_flag_is_an_erase():
    assert parse_damage("circle:36,36,10@200") == parse_fault("erase:circle:36,36,10@200")


@pytest.mark.parametrize("text, message", [
    ("erase:half", "needs a time"),
    ("melt@3", "unknown fault"),
    ("loss@1", "needs a value"),
    ("loss=2@1", "outside"),
    ("kill=3:half@1", "takes no value"),
    ("erase:circle:1,2@3", "takes 3 numbers"),
    ("erase:half:up@1", "side"),
    ("erase:blob@1", "unknown shape"),
    ("erase@soon", "not START"),
    ("drift=1@3", "changes nothing"),
    ("ramflip=1e-6@5-2", "not after"),
    ("erase:rect:5,5,2,8@1", "X0 < X1"),
    ("erase:half@-1", "not START"),
    ("erase:half@2e7", "start time"),
])
def test_bad_fault_flags_name_the_problem(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_fault(text)


def test_fault_plan_files(tmp_path):
    toml = tmp_path / "plan.toml"
    toml.write_text('[[fault]]\nkind = "erase"\nshape = "circle:5,5,2"\nat = 3\n\n'
                    '[[fault]]\nkind = "loss"\nfrom = 1\nuntil = 4\nvalue = 0.25\n')
    plan = load_fault_plan(toml)
    assert plan == (parse_fault("erase:circle:5,5,2@3"), parse_fault("loss=0.25@1-4"))
    js = tmp_path / "plan.json"
    js.write_text(json.dumps({"fault": [{"kind": "erase", "shape": "circle:5,5,2", "at": 3},
                                        {"kind": "loss", "from": 1, "until": 4, "value": 0.25}]}))
    assert load_fault_plan(js) == plan


@pytest.mark.parametrize("name, text, message", [
    ("a.toml", "[[fault]]\nkind = \"erase\"\n", "needs 'at'"),
    ("a.toml", "[[fault]\n", "not valid TOML"),
    ("a.json", "{\"fault\": [{\"kind\": \"erase\", \"at\": 1, \"colour\": 3}]}", "unknown key"),
    ("a.json", "{\"faults\": [{\"at\": 1}]}", "no 'kind'"),
    ("a.json", "[1, 2]", "expected a table"),
    ("a.json", "{\"fault\": [{\"kind\": \"loss\", \"from\": 1}]}", "needs 'value'"),
    ("a.yaml", "fault: []", "must end in"),
])
def test_bad_fault_plan_files_name_the_problem(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_fault_plan(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_fault_plan(tmp_path / "missing.toml")


def test_plan_from_mapping_names_the_entry():
    with pytest.raises(ConfigError, match="fault 2"):
        plan_from_mapping({"fault": [{"kind": "erase", "at": 1}, {"kind": "erase", "at": -4}]})


def test_shapes_select_the_documented_cells():
    assert Shape.parse("half").mask(4, 6).sum() == 12
    assert Shape.parse("half:top").mask(4, 6)[:2].all()
    circle = Shape.parse("circle:2,1,1").mask(4, 6)
    assert set(map(tuple, np.argwhere(circle))) == {(1, 2), (0, 2), (2, 2), (1, 1), (1, 3)}
    assert Shape.parse("rect:1,0,3,2").mask(4, 6).sum() == 4
    assert np.argwhere(Shape.parse("cell:5,3").mask(4, 6)).tolist() == [[3, 5]]
    with pytest.raises(ConfigError, match="selects no cell"):
        Shape.parse("circle:40,40,2").mask(4, 6)


def grown_grid(size=10, **kwargs):
    grid = Grid(random_int_params(8, 16, 16), size, seed=2, **kwargs)
    rng = np.random.default_rng(0)
    states = rng.integers(-100, 100, (size, size, 16)).astype(np.int8)
    states[..., 3] = 90
    grid.set_states(states)
    return grid


def counts(grid):
    return grid.ram[..., layout.COUNT:layout.COUNT + 4].copy().view("<u4")[..., 0]


def test_erase_clears_the_cells_and_their_neighbours_hear_zeros():
    grid = grown_grid()
    grid.run(until=2)
    grid.add_faults([parse_damage("rect:2,2,5,5@3")])
    grid.run(until=3 + TICK)  # the erase and nothing after it
    erased = Shape.parse("rect:2,2,5,5").mask(10, 10)
    assert not grid.states()[erased].any()
    assert not counts(grid)[erased].any()
    for y, x in np.argwhere(erased):
        for k, (dy, dx) in enumerate(layout.NEIGHBOUR_OFFSETS):
            heard_in = layout.mailbox(grid.ram[y + dy, x + dx])[7 - k]
            assert not heard_in.any()
    outside = grid.states()[~erased]
    assert outside.any()


def test_killed_cells_never_fire_and_their_neighbours_keep_the_last_message():
    grid = grown_grid()
    grid.run(until=2)
    grid.add_faults([parse_fault("kill:cell:4,4@2.5")])
    grid.run(until=2.5 + TICK)
    frozen = grid.ram[4, 4].copy()
    heard = layout.mailbox(grid.ram[4, 5])[3].copy()  # (4, 5) hears (4, 4) in slot 3
    assert frozen[layout.FLAGS] & layout.FLAG_DEAD and grid.dead()[4, 4]
    grid.run(until=20)
    assert np.array_equal(grid.ram[4, 4], frozen)
    assert np.array_equal(layout.mailbox(grid.ram[4, 5])[3], heard)
    assert heard.any()
    assert not grid.displayed_states()[4, 4].any()


def test_a_rebooted_cell_starts_counting_again():
    grid = grown_grid()
    grid.run(until=6)
    assert counts(grid)[1, 1] > 0
    grid.reboot("cell:1,1")
    grid.run(until=grid.time + TICK * 2)
    assert counts(grid)[1, 1] == 0
    grid.run(until=20)
    assert counts(grid)[1, 1] > 0


def test_stuck_and_drifting_clocks():
    grid = grown_grid(12)
    grid.add_faults([parse_fault("stuck:cell:0,0@1"), parse_fault("drift=3:half:right@1")])
    grid.run(until=1)
    before = counts(grid).astype(np.int64)
    grid.run(until=61)
    fired = counts(grid) - before
    assert fired[0, 0] == 0
    right, left = fired[:, 6:].mean(), fired[:, 1:6].mean()
    assert 2.6 < right / left < 3.4


def test_lost_messages_never_arrive_and_delayed_ones_arrive_late():
    grid = grown_grid()
    grid.add_faults([parse_fault("loss=1:cell:4,4@0.5-100")])
    grid.run(until=0.5)
    heard = layout.mailbox(grid.ram[4, 5])[3].copy()
    grid.run(until=30)
    assert np.array_equal(layout.mailbox(grid.ram[4, 5])[3], heard)  # nothing got through
    assert counts(grid)[4, 4] > 5
    delayed = grown_grid()
    delayed.add_faults([parse_fault("delay=2@0.5-10")])
    delayed.run(until=12)
    assert delayed.counts()["deliver"] > 0


def test_bit_flips_are_seeded_and_rom_flips_give_private_genomes():
    def flipped(seed):
        grid = Grid(random_int_params(8, 16, 16), 8, seed=seed)
        grid.plant_seed()
        grid.add_faults([parse_fault("ramflip=2e-4@0-10"), parse_fault("romflip=2e-5@0-10")])
        grid.run(until=10)
        return grid
    a, b, c = flipped(1), flipped(1), flipped(2)
    assert np.array_equal(a.ram, b.ram) and a.counts() == b.counts()
    assert not np.array_equal(a.ram, c.ram)
    assert a.counts()["romflip"] > 0 and len(a.state.genomes) > 1
    base = a.state.genomes[0]
    private = [a.state.genomes[g] for g in set(a.state.genome_of) if g != 0]
    for genome in private:
        assert not genome.equals(base) and genome.w1.shape == base.w1.shape


def test_faults_the_grid_cannot_take_are_refused():
    grid = grown_grid(6)
    grid.run(until=5)
    with pytest.raises(ConfigError, match="already at"):
        grid.add_faults([parse_damage("half@4")])
    with pytest.raises(ConfigError, match="selects no cell"):
        grid.add_faults([parse_damage("circle:50,50,3@9")])
    sync = grown_grid(6, clock="sync")
    with pytest.raises(ConfigError, match="asynchronous clock"):
        sync.add_faults([parse_fault("loss=0.5@1-2")])
    assert grid.faults == []


@settings(max_examples=30, deadline=None)
@given(p=st.floats(0.01, 1.0), seed=st.integers(0, 2 ** 32 - 1), side=st.integers(4, 30))
def test_random_shape_draws_each_cell_with_its_probability_from_the_seed(p, seed, side):
    shape = Shape.parse(f"random:{p!r}")
    assert str(shape) == f"random:{p:g}"
    mask = shape.mask(side, side, [seed, 11, 0])
    assert np.array_equal(mask, shape.mask(side, side, [seed, 11, 0]))
    # A binomial count: far outside six standard deviations would mean a wrong draw.
    n = side * side
    assert abs(mask.sum() - p * n) <= 6 * np.sqrt(n * p * (1 - p)) + 1


def test_random_kill_kills_the_drawn_cells_and_replays_from_the_seed():
    def killed(seed):
        grid = Grid(random_int_params(8, 16, 16), 12, seed=seed, workers=1)
        grid.add_faults([parse_fault("kill:random:0.3@1")])
        grid.run(until=2)
        return grid.dead()

    first = killed(5)
    expected = Shape.parse("random:0.3").mask(12, 12, [5, 11, 0])
    assert np.array_equal(first, expected) and 0 < first.sum() < 144
    assert np.array_equal(killed(5), first) and not np.array_equal(killed(6), first)
    for bad in ("random:0", "random:1.5", "random:a", "random"):
        with pytest.raises(ConfigError):
            Shape.parse(bad)


def test_a_schedule_extended_fault_by_fault_equals_one_built_whole():
    """Grid.add_faults reuses the cells of the plan it extends (cellsim view adds
    a fault at every click): the same cells, random shapes included."""
    from cellsim.sim.faults import FaultSchedule

    plan = [parse_fault(text) for text in ("erase:circle:5,5,3@1", "kill:random:0.3@2",
                                           "loss=0.5:rect:0,0,6,9@1-4", "ramflip=1e-4@1-3",
                                           "reboot:random:0.5@3", "stuck:cell:2,7@5")]
    whole = FaultSchedule(plan, 12, 10, 7, 1000)
    grown = None
    for n in range(1, len(plan) + 1):
        grown = FaultSchedule(plan[:n], 12, 10, 7, 1000, known=grown)
    assert all(np.array_equal(a, b) for a, b in zip(grown.cells, whole.cells))
    assert len(grown.cells) == len(plan) and np.array_equal(grown.link_mask, whole.link_mask)
    other = FaultSchedule(plan[:2], 12, 10, 8, 1000, known=whole)  # another seed: no reuse
    assert np.array_equal(other.cells[1], FaultSchedule(plan[:2], 12, 10, 8, 1000).cells[1])
