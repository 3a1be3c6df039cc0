"""`cellsim view`'s messages: each bad message is rejected with a reason naming
it, and a fuzzed stream of messages never breaks a session (hypothesis)."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellsim.view import protocol
from cellsim.view.models import build_catalogue
from cellsim.view.protocol import MessageError, parse
from cellsim.view.session import GridConfig, Session


@pytest.mark.parametrize("text, reason", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('"tool"', "JSON object"),
    ("{}", "unknown message kind None"),
    ('{"kind": "explode"}', "unknown message kind 'explode'"),
    ('{"kind": 3}', "unknown message kind 3"),
    ('{"kind": "pause"}', "missing 'paused'"),
    ('{"kind": "pause", "paused": 1}', "true or false"),
    ('{"kind": "pause", "paused": true, "extra": 1}', "unknown key 'extra'"),
    ('{"kind": "tool", "tool": "erase", "x": 40, "y": 0}', "tool.x must be an integer in [0, 39]"),
    ('{"kind": "tool", "tool": "erase", "x": -1, "y": 0}', "tool.x must be an integer"),
    ('{"kind": "tool", "tool": "erase", "x": 0, "y": 1e9}', "tool.y must be an integer"),
    ('{"kind": "tool", "tool": "erase", "x": 1.5, "y": 0}', "tool.x must be an integer"),
    ('{"kind": "tool", "tool": "erase", "x": true, "y": 0}', "tool.x must be an integer"),
    ('{"kind": "tool", "tool": "nuke", "x": 0, "y": 0}', "tool.tool must be one of"),
    ('{"kind": "tool", "tool": "erase", "x": 0, "y": 0, "radius": 100000}', "tool.radius"),
    ('{"kind": "tool", "tool": "erase", "x": 0, "y": 0, "value": 0.5}', "takes no value"),
    ('{"kind": "tool", "tool": "ramflip", "x": 0, "y": 0, "value": 0.5}', "[0, 0.001]"),
    ('{"kind": "tool", "tool": "loss", "x": 0, "y": 0, "value": NaN}', "tool.value must be a number"),
    ('{"kind": "tool", "tool": "loss", "x": 0, "y": 0, "duration": 1e30}', "tool.duration"),
    ('{"kind": "speed", "units_per_s": Infinity}', "or null"),
    ('{"kind": "speed", "units_per_s": 0}', "speed.units_per_s"),
    ('{"kind": "step", "units": 1e6}', "step.units"),
    ('{"kind": "config", "size": 100000}', "config.size must be an integer in [8, 256]"),
    ('{"kind": "config", "size": 2}', "config.size"),
    ('{"kind": "config", "clock": "atomic"}', "config.clock must be one of"),
    ('{"kind": "config", "skew": 5}', "config.skew"),
    ('{"kind": "config", "model": ""}', "config.model"),
    ('{"kind": "config", "seed": -3}', "config.seed"),
    ('{"kind": "view", "mode": "xray"}', "view.mode"),
    ('{"kind": "inspect", "x": 3, "y": null}', "both x and y"),
    ('{"kind": "inspect", "x": 3}', "missing 'y'"),
    ('{"kind": "reset", "now": true}', "unknown key 'now'"),
    ('{"kind": "step", "units": ' + "[" * 5000 + "]" * 5000 + "}", "characters"),
    ("[" * 1000 + "]" * 1000, "not valid JSON"),  # deeper than the parser goes
    (b"\x00\x01", "not binary"),
])
def test_bad_messages_are_rejected_with_their_reason(text, reason):
    with pytest.raises(MessageError) as caught:
        parse(text, 40, 30)
    assert reason in str(caught.value)


def test_good_messages_parse_to_their_fields():
    assert parse('{"kind": "tool", "tool": "loss", "x": 39, "y": 29, "radius": 0, '
                 '"value": 0.25, "duration": 3}', 40, 30) == {
        "kind": "tool", "tool": "loss", "x": 39, "y": 29, "radius": 0, "value": 0.25,
        "duration": 3.0}
    assert parse('{"kind": "speed", "units_per_s": null}', 8, 8)["units_per_s"] is None
    assert parse('{"kind": "inspect", "x": null, "y": null}', 8, 8)["x"] is None
    assert parse('{"kind": "config", "size": 256, "clock": "sync"}', 8, 8)["size"] == 256


@pytest.fixture(scope="module")
def session():
    return Session(build_catalogue(None), GridConfig("lizard", 12))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) |
    st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) |
    st.sampled_from(protocol.TOOLS + protocol.MODES + protocol.CLOCKS + ("lizard", "grinning")),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6)
small_numbers = st.integers(-3, 20) | st.floats(-1, 30) | st.sampled_from([None, 1e-4, 0.5])
keys = sorted({k for fields in protocol.MESSAGES.values() for k in fields})
# Messages of a real kind with keys of any kind (mostly real ones) and values
# near the limits: they reach every check and, when valid, the grid.
shaped = st.builds(
    lambda kind, fields: {"kind": kind, **fields},
    st.sampled_from(sorted(protocol.MESSAGES)),
    st.dictionaries(st.sampled_from(keys) | st.text(max_size=4), small_numbers | json_values,
                    max_size=6))
texts = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=20),
    json_values.map(json.dumps),
    shaped.map(lambda m: json.dumps(m, allow_nan=True)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(texts, min_size=1, max_size=6))
def test_fuzzed_messages_never_break_a_session(session, messages):
    """Whatever arrives, each message is applied or answered with an error, and
    the grid keeps running and drawing."""
    session.outbox.clear()
    def settings_of(s):
        return (len(s.grid.faults), s.grid.time, s.config, s.paused, s.speed, s.mode,
                s.channel, s.inspected, len(s.lines))

    for text in messages:
        before, was = len(session.outbox), settings_of(session)
        session.handle_text(text)
        errors = [m for m in session.outbox[before:] if m["kind"] == "error"]
        assert len(errors) <= 1
        if errors:  # rejected: said why, changed nothing
            assert isinstance(errors[0]["message"], str) and errors[0]["message"]
            assert settings_of(session) == was
    if session.grid.width > 64 or len(session.grid.faults) > 50:  # keep the fuzz quick
        session.handle_text('{"kind": "config", "size": 12}')
        session.handle_text('{"kind": "reset"}')
    session.paused = False
    session.speed = 5.0
    time = session.grid.time
    replies, frame = session.tick([], 1e9)
    assert session.grid.time >= time
    assert len(frame) == 24 + session.grid.width * session.grid.height * 4
    json.dumps(replies)
