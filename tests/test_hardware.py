"""Hardware-timed simulation (cellsim/hardware.py): parsing TARGET@FREQ and baud
rates, the time unit in seconds from the measured cost of an update, the link's
message time as a fixed latency on the simulator's wires, and the one-line
errors of the command line."""
import csv
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsim.cli import main
from cellsim.errors import ConfigError, HardwareError
from cellsim.hardware import (MAX_LINK_LOAD, McuClock, format_frequency, parse_baud,
                              parse_frequency, targets, timing_data)
from cli_helpers import fails_cleanly

PREFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "m": 1e6, "G": 1e9, "g": 1e9}


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 999_999), st.integers(0, 3), st.sampled_from(sorted(PREFIX)),
       st.sampled_from(["", "Hz", "hz", " Hz", "HZ"]), st.booleans())
def test_frequencies_parse_in_every_spelling(digits, decimals, prefix, unit, spaced):
    mantissa = digits / 10 ** decimals
    hz = mantissa * PREFIX[prefix]
    text = f"{mantissa:.{decimals}f}{' ' if spaced else ''}{prefix}{unit}"
    if not 1e3 <= hz <= 1e10:
        with pytest.raises(HardwareError, match="outside"):
            parse_frequency(text)
        return
    assert parse_frequency(text) == pytest.approx(hz, rel=1e-12)
    assert parse_frequency(f"{hz:e}") == pytest.approx(hz, rel=1e-6)
    assert parse_frequency(format_frequency(hz)) == pytest.approx(hz, rel=1e-5)


@given(st.integers(50, 10_000_000))
def test_baud_rates_parse(baud):
    assert parse_baud(str(baud)) == baud
    assert parse_baud(f"{baud / 1000:g}k") == pytest.approx(baud, rel=1e-5)
    assert parse_baud(f"{baud}baud") == baud


@pytest.mark.parametrize("text", ["fast", "80XHz", "80MHzz", "-80MHz", "0", "1e20",
                                  "", "nan", "inf", "80MHz80"])
def test_bad_frequencies_are_refused(text):
    with pytest.raises(HardwareError):
        parse_frequency(text)


@pytest.mark.parametrize("text", ["fast", "0", "10", "-9600", "9600Hz", "1e12", "nan"])
def test_bad_baud_rates_are_refused(text):
    with pytest.raises(HardwareError):
        parse_baud(text)


@pytest.mark.parametrize("text, message", [
    ("cortex-m4", "TARGET@FREQ"), ("@80MHz", "TARGET@FREQ"), ("z80@4MHz", "unknown MCU target"),
    ("cortex-m4@fast", "not a number"), ("cortex-m4@0.1Hz", "outside"),
])
def test_bad_mcu_specs_are_typed_errors(text, message):
    with pytest.raises(HardwareError, match=message):
        McuClock.parse(text)
    assert issubclass(HardwareError, ConfigError)


def test_bad_duty_and_link_are_typed_errors():
    with pytest.raises(HardwareError, match="duty"):
        McuClock.parse("cortex-m4@80MHz", duty=0)
    with pytest.raises(HardwareError, match="duty"):
        McuClock.parse("cortex-m4@80MHz", duty=1.5)
    with pytest.raises(HardwareError, match="link rate"):
        McuClock.parse("cortex-m4@80MHz", link="12")


def test_the_shipped_timing_data_covers_the_firmware_targets():
    from firmware_gen.toolchain import TARGETS

    data = timing_data()
    assert set(targets()) == set(TARGETS)
    assert data["command"] == "python -m benchmarks.mcu_timing"
    for name, row in data["targets"].items():
        assert row["count"] in ("instructions", "cycles") and row["bit_exact"]
        assert row["live_update"] >= row["live_update_typical"] > 10 * row["dead_update"] > 0
        assert row["command"] and row["method"]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(targets()), st.floats(1e6, 1e9), st.floats(0.05, 1.0),
       st.floats(0.05, 1.0), st.floats(0.0, 1000.0))
def test_seconds_are_units_times_updates_per_unit_times_cycles_over_frequency(
        target, hz, duty, fire_rate, units):
    mcu = McuClock(target, hz, duty)
    row = timing_data()["targets"][target]
    cycles = row["live_update"] * row["cycles_per_count"]
    assert mcu.seconds(units, fire_rate) == pytest.approx(units * fire_rate * cycles / hz / duty,
                                                          rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(targets()), st.floats(1e6, 1e9), st.integers(300, 4_000_000),
       st.floats(0.05, 1.0))
def test_the_link_delay_is_a_messages_bits_over_the_baud_rate_in_time_units(
        target, hz, baud, fire_rate):
    mcu = McuClock(target, hz, link_baud=baud)
    message = 16 * 10 / baud
    assert mcu.message_seconds == pytest.approx(message, rel=1e-12)
    assert mcu.link_latency_units(fire_rate) == pytest.approx(
        message / mcu.seconds_per_unit(fire_rate), rel=1e-12)
    # the timer is paced by whichever is slower: the update, or the link at MAX_LINK_LOAD
    assert mcu.period_seconds == pytest.approx(max(mcu.update_seconds, message / MAX_LINK_LOAD))
    (fault,) = mcu.link_faults(fire_rate)
    assert fault.kind == "latency" and fault.start == 0 and fault.end == math.inf
    assert fault.value == pytest.approx(max(mcu.link_latency_units(fire_rate), 2 ** -16))


def test_a_latency_holds_every_message_on_the_wire_and_queues_the_next():
    """links.message_arrival: a message takes exactly the latency; one sent while
    the previous is still on the wire waits for it (a UART sends one at a time)."""
    from cellsim.sim.links import message_arrival

    one = np.array([0], np.int64)
    never = np.array([2 ** 40], np.int64)
    latency = np.array([-300], np.int64)  # < 0: a fixed time on the wire, in ticks
    arrive = lambda tick, last: message_arrival(np.uint64(7), 5, 2, tick, 1, one - 1, never,
                                                np.zeros(1, np.int64), latency, last)
    assert arrive(1000, 0) == 1300
    assert arrive(1000, 1200) == 1500      # queued behind the message arriving at 1200
    assert message_arrival(np.uint64(7), 5, 2, 1000, 0, one - 1, never, np.zeros(1, np.int64),
                           latency, 0) == 1000  # a sender the fault does not cover


@pytest.fixture(scope="module")
def genome_file(small_genome_file):
    return small_genome_file


def test_simulate_gives_times_in_seconds_on_the_hardware(genome_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["simulate", str(genome_file), "--size", "20", "--until", "4", "--frames", "4",
                 "--damage", "half@2", "--mcu", "cortex-m4@80MHz", "--out", str(out),
                 "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    row = timing_data()["targets"]["cortex-m4"]
    per_unit = 0.5 * row["live_update"] * row["cycles_per_count"] / 80e6
    for r in rows:
        assert float(r["seconds"]) == pytest.approx(float(r["time"]) * per_unit, rel=1e-8)
    text = capsys.readouterr().out
    assert "hardware time: 1 time unit = " in text and "Cortex-M4 at 80 MHz" in text


def test_simulate_with_a_link_delivers_through_the_latency(genome_file, tmp_path, capsys):
    """Same run with and without a slow link: the messages are late, so the
    grids differ, and the summary says the link paces the timer."""
    runs = {}
    for name, extra in (("fast", []), ("uart", ["--link", "9600"])):
        out = tmp_path / name
        assert main(["simulate", str(genome_file), "--size", "16", "--until", "6", "--frames",
                     "2", "--scale", "1", "--mcu", "cortex-m4@80MHz", "--out", str(out),
                     "--no-progress", *extra]) == 0
        runs[name] = (list(csv.DictReader((out / "metrics.csv").open())),
                      capsys.readouterr().out)
    (fast, _), (uart, said) = runs["fast"], runs["uart"]
    assert "the timer paced by the link" in said and "9,600 baud" in said
    mcu = McuClock.parse("cortex-m4@80MHz", link="9600")
    assert float(uart[-1]["seconds"]) == pytest.approx(6 * mcu.seconds_per_unit(0.5), rel=1e-8)
    assert float(uart[-1]["seconds"]) > float(fast[-1]["seconds"])


def test_any_target_the_timing_data_lists_is_accepted(genome_file, tmp_path, monkeypatch,
                                                       capsys):
    """Adding a target (the AVR, say) is a row of the JSON, not code."""
    import cellsim.hardware as hardware

    data = timing_data()
    data = {**data, "targets": {**data["targets"], "avr": {
        "label": "AVR ATmega2560", "count": "cycles", "cycles_per_count": 1.0,
        "live_update": 2_000_000, "live_update_typical": 1_500_000, "dead_update": 400,
        "bit_exact": True, "method": "simavr cycle count", "command": "x"}}}
    path = tmp_path / "timing.json"
    path.write_text(json.dumps(data))
    monkeypatch.setattr(hardware, "TIMING_PATH", path)
    out = tmp_path / "run"
    assert main(["simulate", str(genome_file), "--size", "12", "--until", "2", "--frames", "2",
                 "--mcu", "avr@16MHz", "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert float(rows[-1]["seconds"]) == pytest.approx(2 * 0.5 * 2_000_000 / 16e6)
    assert "AVR ATmega2560 at 16 MHz" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--mcu", "z80@4MHz"], "unknown MCU target 'z80'"),
    (["--mcu", "cortex-m4@lots"], "clock frequency"),
    (["--mcu", "cortex-m4"], "TARGET@FREQ"),
    (["--mcu", "cortex-m4@80MHz", "--link", "fast"], "link rate"),
    (["--mcu", "cortex-m4@80MHz", "--duty", "2"], "duty"),
    (["--link", "9600"], "go with --mcu"),
    (["--mcu", "cortex-m4@80MHz", "--link", "9600", "--clock", "sync"], "asynchronous clock"),
])
def test_bad_hardware_options_are_one_line_and_exit_2(genome_file, tmp_path, capsys, extra,
                                                      message):
    out = tmp_path / "never"
    fails_cleanly(capsys, ["simulate", str(genome_file), "--size", "8", "--until", "2",
                           "--out", str(out), "--no-progress", *extra], message, out)
    fails_cleanly(capsys, ["demo", "--out", str(out), "--no-progress", *extra[:4]]
                  if "--clock" not in extra else ["demo", "--out", str(out), "--mcu", "x"],
                  "" if "--clock" in extra else message, out)


def test_the_lizard_regrows_in_seconds_on_a_cortex_m4_grid(tmp_path, capsys):
    """The issue's sentence, from `cellsim simulate`: the regrowth time read off
    metrics.csv, in seconds from its `seconds` column."""
    from cellsim.demo import regrowth_time
    from cellsim.pretrained import get_model

    out = tmp_path / "run"
    assert main(["simulate", str(get_model("lizard").genome_path), "--until", "300",
                 "--frames", "150", "--damage", "half@200", "--mcu", "cortex-m4@80MHz",
                 "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    times, losses = [float(r["time"]) for r in rows], [float(r["loss"]) for r in rows]
    units = regrowth_time(times, losses, 200.0)
    assert units is not None and 0 < units < 100
    seconds = dict(zip(times, (float(r["seconds"]) for r in rows)))
    expected = seconds[200.0 + units] - seconds[200.0]
    text = capsys.readouterr().out
    said = next(line for line in text.splitlines() if line.startswith("the lizard regrows in "))
    value, unit = said.split()[4:6]
    assert float(value) * {"s": 1, "ms": 1e-3, "us": 1e-6}[unit] == pytest.approx(expected,
                                                                                 rel=5e-3)
    assert said.endswith("on a grid of Cortex-M4 at 80 MHz")
    assert f"{units:g} time units after it" in text


def test_the_demo_on_hardware_runs_the_same_grid_and_times_it():
    """--mcu without a link changes no event of the run, only adds seconds."""
    from cellsim.demo import DemoPlan, run_demo, text_summary
    from cellsim.pretrained import get_model

    plan = DemoPlan(grow_until=60.0, regrow_for=60.0)
    plain = run_demo(get_model("lizard"), plan, progress=False).summary
    mcu = McuClock.parse("cortex-m0plus@48MHz")
    timed = run_demo(get_model("lizard"), plan, progress=False, mcu=mcu).summary
    assert timed["loss_curve"] == plain["loss_curve"]
    hw = timed["hardware"]
    row = timing_data()["targets"]["cortex-m0plus"]
    assert hw["seconds_per_unit"] == pytest.approx(
        0.5 * row["live_update"] * row["cycles_per_count"] / 48e6, rel=1e-12)
    assert hw["grow_seconds"] == pytest.approx(60 * hw["seconds_per_unit"])
    units = timed["regrowth_time"]
    assert hw["regrowth_seconds"] == (None if units is None else
                                      pytest.approx(units * hw["seconds_per_unit"]))
    assert "hardware time: " in text_summary(timed) and "Cortex-M0+ at 48 MHz" in \
        text_summary(timed)
