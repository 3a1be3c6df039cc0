"""Frames per second that `cellsim view` draws in a real browser (Debian's headless
chromium via Selenium and chromium-driver), at 72x72 and 256x256, with the grid
at the page's default speed (20 time units a second) and flat out; counted by the
page itself (frames drawn on its canvas), beside the engine's cell updates/s.

    python benchmarks/view_fps.py [--seconds 5] [--check]

Targets (issue 17): at least 30 frames/s at 72x72, and at 256x256 at least 10
(usable). --check exits 1 when one is not met."""
import argparse
import sys
import time

TARGETS = {72: 30.0, 256: 10.0}
SPEEDS = {"20 units/s": 20.0, "flat out": None}


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def measure(driver, server, size: int, speed, seconds: float) -> dict:
    driver.get(server.url)
    for _ in range(400):
        if driver.execute_script("return window.cellsimView && cellsimView.frames > 0"):
            break
        time.sleep(0.05)
    driver.execute_script(f"cellsimView.send({{kind: 'config', size: {size}}});")
    driver.execute_script(f"cellsimView.send({{kind: 'speed', units_per_s: "
                          f"{'null' if speed is None else speed}}});")
    while driver.execute_script("return cellsimView.frame && cellsimView.frame.width") != size:
        time.sleep(0.05)
    time.sleep(1.0)  # settle: the first runs from the seed are the cheapest
    read = "return [cellsimView.frames, cellsimView.stats.updates, cellsimView.stats.time];"
    frames0, updates0, time0 = driver.execute_script(read)
    start = time.perf_counter()
    time.sleep(seconds)
    frames1, updates1, time1 = driver.execute_script(read)
    wall = time.perf_counter() - start
    return {"fps": (frames1 - frames0) / wall, "updates_per_s": (updates1 - updates0) / wall,
            "units_per_s": (time1 - time0) / wall}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per row")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is not met")
    args = parser.parse_args(argv)

    from cellsim.view.models import build_catalogue
    from cellsim.view.server import BackgroundServer
    from cellsim.view.session import SessionPool

    server = BackgroundServer(SessionPool(build_catalogue(None), 72, limit=2))
    driver = browser()
    met = True
    try:
        print(f"{'grid':>8} {'speed':>11} {'frames/s':>9} {'M updates/s':>12} {'units/s':>8}  target")
        for size, target in TARGETS.items():
            for label, speed in SPEEDS.items():
                row = measure(driver, server, size, speed, args.seconds)
                ok = row["fps"] >= target
                met &= ok
                print(f"{size:>4}x{size:<3} {label:>11} {row['fps']:9.1f} "
                      f"{row['updates_per_s'] / 1e6:12.2f} {row['units_per_s']:8.1f}  "
                      f">= {target:g} frames/s: {'met' if ok else 'NOT met'}", flush=True)
    finally:
        driver.quit()
        server.stop()
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
