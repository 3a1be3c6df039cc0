"""`cellsim view` in a real browser: Debian's headless chromium driven by Selenium
through Debian's chromium-driver (scripts/test installs both; nothing downloads
a browser). The page loads, frames arrive and change, an erase click zeroes the
cells under it in the server's grid, a double-click plants a seed that grows, a
fault tool changes the RAM the inspector shows, and a screenshot is not blank.
Each test loads the page afresh, so it gets a grid of its own."""
import io
import time
import tomllib

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from cellsim.intspec import layout
from cellsim.sim import plan_from_mapping, render
from cellsim.view.models import build_catalogue
from cellsim.view.server import BackgroundServer
from cellsim.view.session import SessionPool

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SIZE = 72


@pytest.fixture(scope="module")
def server():
    srv = BackgroundServer(SessionPool(build_catalogue(None), SIZE, limit=4))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(condition, timeout=20.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def js(driver, expression):
    return driver.execute_script(f"return {expression};")


class Page:
    """The page in the browser and its session on the server."""

    def __init__(self, server, driver):
        self.server, self.driver = server, driver
        driver.get(server.url)
        # generous: on a fresh clone the first grid may wait for numba to compile
        sid = wait_for(lambda: js(driver, "window.cellsimView && cellsimView.frames > 0 && "
                                          "cellsimView.session"), 180, what="first frame")
        self.session = wait_for(lambda: server.pool.sessions.get(sid), what="session")
        self.canvas = driver.find_element(By.ID, "grid")

    def grid(self, fn):
        """fn(grid) on the server's grid worker (no run happens meanwhile)."""
        return self.server.call(lambda: fn(self.session.grid))

    def run_flat_out(self):
        self.driver.execute_script(
            "const s = document.getElementById('speed'); s.value = '100';"
            "s.dispatchEvent(new Event('input'));")

    def pause(self):
        self.driver.find_element(By.ID, "pause").click()
        wait_for(lambda: self.session.paused and js(self.driver, "cellsimView.paused"),
                 what="pause")

    def choose(self, tool, radius=None):
        self.driver.find_element(By.ID, f"tool-{tool}").click()
        if radius is not None:
            self.driver.execute_script(f"document.getElementById('radius').value = '{radius}';")

    def at_cell(self, x, y):
        """Actions with the pointer over the centre of cell (x, y)."""
        rect = js(self.driver, "(() => { const c = document.getElementById('grid'), "
                               "r = c.getBoundingClientRect(); "
                               "return [r.width, r.height, c.clientLeft, c.clientTop]; })()")
        scale = js(self.driver, "cellsimView.scale")
        dx = rect[2] + (x + 0.5) * scale - rect[0] / 2
        dy = rect[3] + (y + 0.5) * scale - rect[1] / 2
        return ActionChains(self.driver).move_to_element_with_offset(self.canvas, int(dx), int(dy))


def disc(x, y, r):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return (xx - x) ** 2 + (yy - y) ** 2 <= r * r


def test_page_loads_and_frames_arrive_and_change(server, browser):
    page = Page(server, browser)
    assert browser.title == "cellsim view"
    first = js(browser, "document.getElementById('grid').toDataURL()")
    frames = js(browser, "cellsimView.frames")
    wait_for(lambda: js(browser, "cellsimView.frames") > frames + 20, what="20 more frames")
    assert js(browser, "document.getElementById('grid').toDataURL()") != first  # it grows
    header = js(browser, "cellsimView.frame")
    assert (header["width"], header["height"]) == (SIZE, SIZE) and header["time"] > 0
    assert js(browser, "cellsimView.scale") == 8 and page.canvas.size["width"] == SIZE * 8 + 2
    assert "frames/s" in browser.find_element(By.ID, "stats").text


def test_an_erase_click_zeroes_those_cells_in_the_servers_grid(server, browser):
    page = Page(server, browser)
    page.run_flat_out()
    wait_for(lambda: page.session.grid.time > 60, what="the lizard to grow")
    page.pause()
    assert page.grid(lambda g: np.abs(g.states()[disc(36, 36, 4)]).sum()) > 0
    page.choose("erase", radius=4)
    page.at_cell(36, 36).click().perform()
    wait_for(lambda: len(page.session.grid.faults) == 1, what="the erase")
    fault = page.session.grid.faults[0]
    assert (fault.kind, str(fault.shape)) == ("erase", "circle:36,36,4")
    states = page.grid(lambda g: g.states())
    assert not states[disc(36, 36, 4)].any() and states[~disc(36, 36, 4)].any()
    # the plan on the page is the grid's plan
    text = wait_for(lambda: "erase" in js(browser, "cellsimView.planText()") and
                    js(browser, "cellsimView.planText()"), what="the plan line")
    assert plan_from_mapping(tomllib.loads(text)) == tuple(page.session.grid.faults)


def test_a_drag_applies_the_tool_along_the_way(server, browser):
    page = Page(server, browser)
    page.pause()
    page.choose("kill", radius=1)
    scale = js(browser, "cellsimView.scale")
    drag = page.at_cell(10, 60).click_and_hold()
    for _ in range(10):
        drag = drag.move_by_offset(4 * scale, 0).pause(0.04)
    drag.release().perform()
    wait_for(lambda: len(page.session.grid.faults) >= 5, what="faults along the drag")
    time.sleep(0.3)
    centres = [f.shape.args[:2] for f in page.session.grid.faults]
    assert all(f.kind == "kill" for f in page.session.grid.faults)
    assert centres[0] == (10, 60) and all(y == 60 for _, y in centres)
    assert [x for x, _ in centres] == sorted(x for x, _ in centres) and centres[-1][0] >= 40
    dead = page.grid(lambda g: g.dead())
    assert dead[60, 10] and dead[60, int(centres[-1][0])] and not dead[50].any()


def test_a_double_click_plants_a_seed_that_grows(server, browser):
    page = Page(server, browser)
    page.run_flat_out()
    corner = (slice(1, 16), slice(1, 16))
    page.at_cell(8, 8).double_click().perform()
    wait_for(lambda: any("seed planted at x=8, y=8" in line for line in page.session.lines),
             what="the seed")
    wait_for(lambda: page.grid(lambda g: render.alive_mask(g)[corner].sum()) > 40, 30,
             what="growth from the seed")


def test_a_fault_tool_changes_the_ram_the_inspector_shows(server, browser):
    page = Page(server, browser)
    page.pause()
    flags = "document.querySelector('#cell td[data-field=flags]')"
    page.at_cell(50, 40).perform()
    wait_for(lambda: js(browser, f"cellsimView.cell && cellsimView.cell.x === 50 && "
                                 f"cellsimView.cell.y === 40 && {flags}.textContent === '0'"),
             what="the inspector on (50, 40)")
    page.choose("kill", radius=0)
    page.at_cell(50, 40).click().perform()
    wait_for(lambda: js(browser, f"{flags}.textContent") == str(layout.FLAG_DEAD),
             what="the dead flag in the inspector")
    assert "dead" in browser.find_element(By.ID, "cell-where").text.lower()
    assert page.grid(lambda g: g.dead().sum()) == 1 and page.grid(lambda g: g.dead()[40, 50])


def colours(rgb) -> int:
    """How many distinct colours an (H, W, 3) picture has."""
    packed = rgb.astype(np.uint32)
    return len(np.unique((packed[..., 0] << 16) | (packed[..., 1] << 8) | packed[..., 2]))


def test_a_screenshot_is_not_blank(server, browser):
    page = Page(server, browser)
    page.run_flat_out()
    wait_for(lambda: page.session.grid.time > 40, what="growth")
    time.sleep(0.2)
    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB"))
    left, top = (int(v) for v in js(browser, "(() => { const r = document.getElementById('grid')"
                                             ".getBoundingClientRect(); return [r.left, r.top];"
                                             " })()"))
    canvas = shot[top + 1:top + 1 + SIZE * 8, left + 1:left + 1 + SIZE * 8]
    assert canvas.shape == (SIZE * 8, SIZE * 8, 3)
    not_white = (canvas < 250).any(axis=2).mean()
    assert 0.02 < not_white < 0.6  # a lizard on white, not an empty or a filled square
    assert colours(canvas) > 20
    assert colours(shot) > 50  # the page around it too
