"""`cellsim view`'s web layer through aiohttp's test client (no browser): the
page and its files are served, a tab gets a hello and a stream of frames, bad
messages are answered and the stream goes on, other origins are refused, the tab
limit holds and a closed tab frees its grid; and the command's one-line errors."""
import asyncio
import json
import socket

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from cellsim.cli import main
from cellsim.view import frames
from cellsim.view.models import build_catalogue
from cellsim.view.server import is_loopback, make_app
from cellsim.view.session import SessionPool
from cli_helpers import fails_cleanly


@pytest.fixture(scope="module")
def catalogue():
    return build_catalogue(None)


def run(scenario, pool):
    async def go():
        async with TestClient(TestServer(make_app(pool))) as client:
            return await scenario(client)
    return asyncio.run(go())


def origin(client):
    return {"Origin": f"http://{client.host}:{client.port}"}


async def next_of(ws, kind, limit=400):
    """The next JSON message of `kind` (binary frames and others skipped)."""
    for _ in range(limit):
        msg = await ws.receive(timeout=180)  # a cold numba cache compiles first
        if msg.type == WSMsgType.TEXT and json.loads(msg.data)["kind"] == kind:
            return json.loads(msg.data)
        assert msg.type in (WSMsgType.TEXT, WSMsgType.BINARY), msg
    raise AssertionError(f"no {kind} message")


async def next_frame(ws):
    for _ in range(400):
        msg = await ws.receive(timeout=180)  # a cold numba cache compiles first
        if msg.type == WSMsgType.BINARY:
            return frames.decode(msg.data)
    raise AssertionError("no frame")


def test_page_and_static_files_are_served(catalogue):
    async def scenario(client):
        page = await client.get("/")
        js = await client.get("/static/view.js")
        missing = await client.get("/static/../session.py")
        return page.status, await page.text(), js.status, await js.text(), missing.status
    status, html, js_status, js, missing = run(scenario, SessionPool(catalogue, 16))
    assert status == 200 and '<canvas id="grid"' in html and "/static/view.js" in html
    assert js_status == 200 and "imageSmoothingEnabled = false" in js
    assert missing in (403, 404)


def test_a_tab_gets_frames_and_survives_bad_messages(catalogue):
    pool = SessionPool(catalogue, 16)

    async def scenario(client):
        async with client.ws_connect("/ws", headers=origin(client)) as ws:
            hello = await next_of(ws, "hello")
            first, _ = await next_frame(ws)
            await ws.send_str("{not json")
            await ws.send_bytes(b"\x00\x01")
            await ws.send_str('{"kind": "tool", "tool": "erase", "x": 99, "y": 0}')
            errors = [await next_of(ws, "error") for _ in range(3)]
            await ws.send_str('{"kind": "tool", "tool": "kill", "x": 3, "y": 4, "radius": 1}')
            fault = await next_of(ws, "fault")
            later, pixels = await next_frame(ws)
            sessions = len(pool.sessions)
        await asyncio.sleep(0.2)
        return hello, first, errors, fault, later, pixels, sessions

    hello, first, errors, fault, later, pixels, sessions = run(scenario, pool)
    assert hello["models"] == ["butterfly", "grinning", "lizard"] and hello["config"]["size"] == 16
    assert (first["width"], first["height"]) == (16, 16)
    assert [e["message"] for e in errors] == [
        "message is not valid JSON", "messages must be JSON text, not binary",
        "tool.x must be an integer in [0, 15], got 99"]
    assert fault["line"].startswith('{ kind = "kill", shape = "circle:3,4,1"')
    assert later["number"] > first["number"] and later["time"] > first["time"]
    assert tuple(pixels[4, 3, :3]) == (150, 150, 150)  # the killed cell shows grey
    assert sessions == 1 and pool.sessions == {}       # closing the tab freed its grid


def test_an_oversized_message_closes_only_its_tab(catalogue):
    pool = SessionPool(catalogue, 12)

    async def scenario(client):
        async with client.ws_connect("/ws", headers=origin(client)) as ws:
            await next_of(ws, "hello")
            await ws.send_str('{"kind": "reset", "x": "' + "a" * 20000 + '"}')
            for _ in range(400):
                msg = await ws.receive(timeout=180)  # a cold numba cache compiles first
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                    break
            closed = msg.type, ws.close_code
        async with client.ws_connect("/ws", headers=origin(client)) as ws:
            hello = await next_of(ws, "hello")
            frame, _ = await next_frame(ws)
        return closed, hello, frame

    (kind, code), hello, frame = run(scenario, pool)
    assert kind == WSMsgType.CLOSE and code == 1009  # message too big
    assert hello["kind"] == "hello" and frame["width"] == 12


def test_other_origins_are_refused(catalogue):
    async def scenario(client):
        refused = []
        for headers in ({"Origin": "http://evil.example"}, {},
                        {"Origin": f"http://{client.host}:{client.port}",
                         "Host": f"evil.example:{client.port}"}):
            response = await client.get("/ws", headers={
                **headers, "Connection": "Upgrade", "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
            refused.append(response.status)
        return refused
    assert run(scenario, SessionPool(catalogue, 16)) == [403, 403, 403]


def test_the_tab_limit_holds_and_a_closed_tab_frees_its_place(catalogue):
    pool = SessionPool(catalogue, 12, limit=2)

    async def scenario(client):
        a = await client.ws_connect("/ws", headers=origin(client))
        b = await client.ws_connect("/ws", headers=origin(client))
        await next_of(a, "hello")
        await next_of(b, "hello")
        c = await client.ws_connect("/ws", headers=origin(client))
        refusal = json.loads((await c.receive(timeout=60)).data)
        closing = await c.receive(timeout=60)
        await a.close()
        for _ in range(50):
            if len(pool.sessions) < 2:
                break
            await asyncio.sleep(0.05)
        d = await client.ws_connect("/ws", headers=origin(client))
        hello = await next_of(d, "hello")
        await b.close()
        await d.close()
        return refusal, closing, hello

    refusal, closing, hello = run(scenario, pool)
    assert refusal == {"kind": "error", "message": "2 tabs are open; close one first"}
    assert closing.type == WSMsgType.CLOSE and closing.data == 1013
    assert hello["session"] == 3


def test_loopback_names():
    assert all(map(is_loopback, ["127.0.0.1", "127.5.0.1", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.2", "example.org", "::"]))


def test_port_in_use_is_one_line_and_exit_2(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        fails_cleanly(capsys, ["view", "--no-browser", "--port", str(port)],
                      f"port {port} on 127.0.0.1 is already in use")


def test_a_public_host_warns(capsys):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["view", "--no-browser", "--host", "0.0.0.0", "--port", str(port)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("cellsim view: warning: --host 0.0.0.0 is not a loopback address")
    assert err[1].startswith("cellsim view: error: port") and len(err) == 2


@pytest.mark.parametrize("argv, message", [
    (["view", "nonesuch"], "neither a shipped model"),
    (["view", "--size", "4"], "--size must lie in [8, 256]"),
    (["view", "--port", "70000"], "--port must lie in [0, 65535]"),
    (["view", "--max-tabs", "0"], "--max-tabs"),
])
def test_bad_arguments_are_one_line_and_exit_2(capsys, argv, message):
    fails_cleanly(capsys, argv + ["--no-browser"], message)


def test_without_the_view_extra_the_command_names_it(capsys, monkeypatch):
    import importlib.metadata

    monkeypatch.setitem(__import__("sys").modules, "aiohttp", None)  # as if not installed

    def not_installed(name):  # read this checkout's pyproject.toml, not an older install's
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "requires", not_installed)
    fails_cleanly(capsys, ["view", "--no-browser"],
                  "needs aiohttp, which comes with the 'view' extra: pip install 'cellsim[view]'")


def test_a_bug_in_a_tab_closes_that_tab_and_the_server_goes_on(catalogue, monkeypatch):
    pool = SessionPool(catalogue, 12)

    async def scenario(client):
        async with client.ws_connect("/ws", headers=origin(client)) as ws:
            await next_of(ws, "hello")
            session = next(iter(pool.sessions.values()))
            monkeypatch.setattr(session, "tick", lambda *a: 1 / 0)
            for _ in range(400):
                msg = await ws.receive(timeout=180)  # a cold numba cache compiles first
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED):
                    break
            code = ws.close_code
        async with client.ws_connect("/ws", headers=origin(client)) as ws:
            frame, _ = await next_frame(ws)
        return code, frame

    code, frame = run(scenario, pool)
    assert code == 1011 and frame["width"] == 12


def test_a_corrupt_genome_is_one_line_and_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.genome"
    bad.write_bytes(b"NCAG" + b"\x00" * 40)
    fails_cleanly(capsys, ["view", str(bad), "--no-browser"], "bad.genome")


def test_the_command_serves_the_page_until_interrupted(tmp_path):
    """`cellsim view --port 0 --no-browser` in its own process: prints the address,
    serves the page there, and stops on Ctrl-C with the CLI's exit status 130."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "cellsim", "view", "--port", "0",
                             "--no-browser", "--size", "16"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("cellsim view: serving lizard at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and b'<canvas id="grid"' in page.read()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().endswith("cellsim view: interrupted"), err
