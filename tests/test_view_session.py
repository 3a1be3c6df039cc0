"""`cellsim view` without a browser: the tools change the grid as the simulator's
faults do, every fault the page applies is a line of a fault plan that
`cellsim simulate --faults` replays to the same bytes, the view modes, the RAM
inspector, and one grid per tab up to a limit."""
import json
import math
import tomllib

import numpy as np
import pytest
from PIL import Image

from cellsim.cli import main
from cellsim.errors import ConfigError
from cellsim.intspec import layout
from cellsim.sim import Grid, load_fault_plan, render
from cellsim.view import frames, protocol
from cellsim.view.models import build_catalogue
from cellsim.view.session import MAX_FAULTS, GridConfig, PoolFull, Session, SessionPool


@pytest.fixture(scope="module")
def catalogue():
    return build_catalogue(None)


def grown(catalogue, size=40, until=40.0, **config):
    session = Session(catalogue, GridConfig("lizard", size, **config))
    session.run_for(until)
    session.outbox.clear()
    return session


def tool(session, name, x, y, **extra):
    session.handle_text(json.dumps({"kind": "tool", "tool": name, "x": x, "y": y, **extra}))
    errors = [m for m in session.outbox if m["kind"] == "error"]
    assert not errors, errors


def disc(size, x, y, r):
    yy, xx = np.mgrid[0:size, 0:size]
    return (xx - x) ** 2 + (yy - y) ** 2 <= r * r


def test_erase_zeroes_the_circle_at_once_even_when_paused(catalogue):
    s = grown(catalogue)
    s.handle_text('{"kind": "pause", "paused": true}')
    assert np.abs(s.grid.states()[disc(40, 20, 20, 4)]).sum() > 0
    before = s.grid.time
    tool(s, "erase", 20, 20, radius=4)
    states = s.grid.states()
    assert not states[disc(40, 20, 20, 4)].any()
    assert states[~disc(40, 20, 20, 4)].any()
    assert s.grid.time - before <= 1 / 64 + 1e-9  # paused: only to the fault's tick
    s.tick([], 1.0)
    s.tick([], 2.0)
    assert not s.grid.states()[disc(40, 20, 20, 4)].any()  # paused: no regrowth


def test_kill_stuck_reboot_and_loss_act_on_their_circle(catalogue):
    s = grown(catalogue)
    tool(s, "kill", 10, 30, radius=2)
    assert np.array_equal(s.grid.dead(), disc(40, 10, 30, 2))
    counts = layout.u32(s.grid.ram, layout.COUNT)[..., 0].copy()
    tool(s, "stuck", 30, 10, radius=1)
    stuck = disc(40, 30, 10, 1)
    after_stuck = layout.u32(s.grid.ram, layout.COUNT)[..., 0].copy()
    s.run_for(10)
    now = layout.u32(s.grid.ram, layout.COUNT)[..., 0]
    assert np.array_equal(now[stuck], after_stuck[stuck])      # stuck clocks never fire
    assert (now[~stuck & ~s.grid.dead()] > counts[~stuck & ~s.grid.dead()]).mean() > 0.9
    tool(s, "reboot", 20, 20, radius=3)
    assert not layout.u32(s.grid.ram, layout.COUNT)[..., 0][disc(40, 20, 20, 3)].any()
    tool(s, "loss", 20, 20, radius=3, value=0.5, duration=5)
    tool(s, "ramflip", 5, 5, radius=2, value=1e-3, duration=3)
    kinds = [f.kind for f in s.grid.faults]
    assert kinds == ["kill", "stuck", "reboot", "loss", "ramflip"]
    loss = s.grid.faults[3]
    assert loss.value == 0.5 and loss.end - loss.start == 5 and str(loss.shape) == "circle:20,20,3"


def test_ramflip_changes_the_ram_the_inspector_shows(catalogue):
    s = grown(catalogue, until=10)
    s.handle_text('{"kind": "inspect", "x": 3, "y": 3}')
    before = s.outbox[-1]
    assert before["kind"] == "cell" and (before["x"], before["y"]) == (3, 3)
    tool(s, "ramflip", 3, 3, radius=0, value=1e-3, duration=50)
    s.run_for(50)  # ~100 flips expected in the cell's 2048 bits
    s.handle_text('{"kind": "inspect", "x": 3, "y": 3}')
    after = s.outbox[-1]
    assert after["fields"] != before["fields"]


def test_the_inspector_decodes_every_field_from_the_layout_table(catalogue):
    s = grown(catalogue)
    tool(s, "kill", 7, 9, radius=0)
    info = s.cell_info(7, 9)
    assert [f["name"] for f in info["fields"]] == [f[0] for f in layout.FIELDS]
    ram = s.grid.ram[9, 7]
    value = {f["name"]: f["value"] for f in info["fields"]}
    assert value["flags"] == layout.FLAG_DEAD and info["dead"]
    assert value["state"] == ram[128:144].view(np.int8).tolist()
    assert np.array_equal(np.array(value["mailbox"], np.int8), layout.mailbox(ram))
    assert value["count"] == int(ram[248:252].view("<u4")[0])
    assert value["acc"] == ram[176:240].view("<i4").tolist()
    json.dumps(info)  # all plain JSON


def test_seed_plants_the_papers_seed_and_it_grows(catalogue):
    s = Session(catalogue, GridConfig("lizard", 40))
    tool(s, "seed", 6, 6)
    assert s.grid.states()[6, 6, layout.ALPHA:].min() > 0 and "seed planted" in s.lines[-1]
    s.run_for(20)
    alive = render.alive_mask(s.grid)
    assert alive[1:12, 1:12].sum() > 20


@pytest.mark.parametrize("config", [dict(clock="poisson", seed=3),
                                    dict(clock="periodic", skew=0.2, jitter=0.3, seed=5)])
def test_a_recorded_plan_replays_to_the_same_bytes(catalogue, config, tmp_path):
    s = grown(catalogue, until=20, **config)
    tool(s, "erase", 20, 20, radius=6)
    s.run_for(3.3)
    tool(s, "kill", 12, 25, radius=1)
    tool(s, "loss", 25, 15, radius=4, value=0.7, duration=4)
    s.run_for(1.7)
    tool(s, "stuck", 28, 28, radius=2)
    tool(s, "ramflip", 15, 15, radius=3, value=5e-4, duration=2)
    tool(s, "reboot", 22, 22, radius=2)
    s.run_for(6)
    plan = tmp_path / "plan.toml"
    plan.write_text(s.plan_text())
    faults = load_fault_plan(plan)
    assert faults == tuple(s.grid.faults)

    replay = Grid(catalogue["lizard"].genome, 40, clock=s.config.clock_spec(0.5), seed=s.config.seed)
    replay.plant_seed()
    replay.add_faults(faults)
    replay.run(until=s.grid.time)
    assert np.array_equal(replay.ram, s.grid.ram)

    # The same through the command line: its final picture is the session's grid.
    head = s.plan_head().splitlines()[1]
    assert f"--size 40 --clock {config['clock']}" in head and f"--seed {config['seed']}" in head
    out = tmp_path / "replay"
    argv = head.lstrip("# ").split()[1:]
    argv = [a for a in argv if a not in ("TIME",)]
    argv[argv.index("plan.toml")] = str(plan)
    argv[argv.index("--until") + 1:argv.index("--until") + 1] = [repr(s.grid.time)]
    argv[argv.index("replay/")] = str(out)
    assert main(argv + ["--frames", "1", "--scale", "1", "--no-progress"]) == 0
    final = np.asarray(Image.open(out / "final.png"))
    assert np.array_equal(final, render.frame_rgb(s.grid))


def test_plan_lines_are_exact_and_seeds_are_comments(catalogue):
    s = grown(catalogue, until=5)
    tool(s, "erase", 3, 4, radius=2)
    tool(s, "seed", 30, 30)
    data = tomllib.loads(s.plan_text())
    assert len(data["fault"]) == 1 and data["fault"][0]["shape"] == "circle:3,4,2"
    at = data["fault"][0]["at"]
    assert at * 64 == math.floor(at * 64) and 5 <= at < 5 + 1 / 64  # the next 1/64 unit
    assert [m["line"] for m in s.outbox if m["kind"] == "fault"] == s.lines


def test_the_plan_is_bounded(catalogue, monkeypatch):
    monkeypatch.setattr("cellsim.view.session.MAX_FAULTS", 3)
    s = grown(catalogue, until=2)
    for x in range(3):
        tool(s, "erase", x, 0, radius=0)
    s.handle_text('{"kind": "tool", "tool": "erase", "x": 5, "y": 5, "radius": 0}')
    assert s.outbox[-1]["kind"] == "error" and "3 faults" in s.outbox[-1]["message"]
    assert len(s.grid.faults) == 3 and MAX_FAULTS >= 100


def test_sync_clock_refuses_message_loss_and_keeps_running(catalogue):
    s = grown(catalogue, until=4, clock="sync")
    s.handle_text('{"kind": "tool", "tool": "loss", "x": 5, "y": 5, "radius": 2}')
    assert s.outbox[-1]["kind"] == "error" and "asynchronous clock" in s.outbox[-1]["message"]
    assert s.grid.faults == [] and s.lines == []
    time = s.grid.time
    s.run_for(2)
    assert s.grid.time == time + 2


def test_view_modes(catalogue):
    s = grown(catalogue)
    tool(s, "kill", 5, 5, radius=1)
    tool(s, "stuck", 30, 30, radius=1)
    s.run_for(8)
    for mode, index in zip(protocol.MODES, range(5)):
        s.handle_text(json.dumps({"kind": "view", "mode": mode, "channel": 6}))
        header, pixels = frames.decode(s.frame())
        assert (header["width"], header["height"], header["mode"]) == (40, 40, index)
        assert header["time"] == s.grid.time
        assert (pixels[s.grid.dead(), :3] == render.DEAD_RGB).all() and (pixels[..., 3] == 255).all()
        if mode == "colour":
            assert np.array_equal(pixels[..., :3], render.frame_rgb(s.grid))
        if mode == "alive":
            assert np.array_equal(pixels[..., 0] == 0, render.alive_mask(s.grid) & ~s.grid.dead())
        if mode == "channel":
            values = s.grid.float_states()[..., 6]
            hot, cold = np.unravel_index(values.argmax(), values.shape), \
                np.unravel_index(values.argmin(), values.shape)
            assert s.heat_range == (-np.abs(values).max(), np.abs(values).max())
            assert pixels[hot][0] > pixels[hot][2] or pixels[cold][2] > pixels[cold][0]
        if mode == "age":
            # the stuck cells have not updated since the fault: the oldest ages
            ages = s.grid.time - s.last_update
            live = ~s.grid.dead() & ~disc(40, 30, 30, 1)
            assert ages[30, 30] >= 8 and s.heat_range[1] == ages.max()
            assert np.median(ages[live]) < 4  # the others fire every 2 units on average
            assert np.array_equal(pixels[30, 30, :3], frames.SEQUENTIAL[::-1][
                int(np.clip(ages[30, 30] * 255 / s.heat_range[1] + 0.5, 0, 255))])
    s.handle_text('{"kind": "view", "mode": "channel", "channel": 16}')
    assert s.outbox[-1]["kind"] == "error"


def test_speed_pause_step_reset_and_config(catalogue):
    s = Session(catalogue, GridConfig("lizard", 24))
    s.handle_text('{"kind": "speed", "units_per_s": 10}')
    s.tick([], 0.0)
    s.tick([], 0.05)
    assert s.grid.time == pytest.approx(0.5)
    s.tick(['{"kind": "pause", "paused": true}'], 0.2)
    assert s.grid.time == pytest.approx(0.5)
    s.tick(['{"kind": "step", "units": 2.5}'], 0.3)
    assert s.grid.time == pytest.approx(3.0)
    s.tick(['{"kind": "config", "model": "grinning", "clock": "periodic", "size": 16}'], 0.4)
    assert (s.grid.width, s.grid.time, s.config.model, s.grid.clock.kind) == (16, 0, "grinning",
                                                                               "periodic")
    replies, frame = s.tick(['{"kind": "reset"}'], 0.5)
    assert any(r["kind"] == "plan" and r["lines"] == [] for r in replies)
    assert frames.decode(frame)[0]["width"] == 16
    s.tick(['{"kind": "config", "model": "nonesuch"}'], 0.6)
    assert s.config.model == "grinning"


def test_pool_gives_each_tab_its_own_grid_up_to_a_limit(catalogue):
    pool = SessionPool(catalogue, 16, limit=2)
    a, b = pool.open(), pool.open()
    with pytest.raises(PoolFull):
        pool.open()
    tool(a, "kill", 3, 3, radius=2)
    assert a.grid.dead().any() and not b.grid.dead().any()
    pool.close(a)
    c = pool.open()
    assert len(pool.sessions) == 2 and c.sid not in (a.sid, b.sid)


def test_catalogue_takes_a_genome_file_and_refuses_the_rest(tmp_path, catalogue):
    path = tmp_path / "mine.genome"
    path.write_bytes(catalogue["lizard"].path.read_bytes())
    mine = build_catalogue(str(path))
    assert mine.default == "file:mine.genome" and "lizard" in mine.names()
    with pytest.raises(ConfigError, match="neither a shipped model"):
        build_catalogue(str(tmp_path / "missing.genome"))
    with pytest.raises(ConfigError, match="int8 genomes"):
        build_catalogue(str(tmp_path / "w.npz"))


def test_the_view_imports_no_torch():
    from test_sim_imports import loaded_after

    code = ("import cellsim.view.server, cellsim.commands.view\n"
            "from cellsim.view.models import build_catalogue\n"
            "from cellsim.view.session import SessionPool\n"
            "SessionPool(build_catalogue(None), 16).open().tick([], 0.0)\n")
    assert loaded_after(code, ("torch", "onnxruntime")) == []
