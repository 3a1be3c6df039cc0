"""`cellsim view`: the interactive playground on the live asynchronous grid.

Plain modules do the work and are tested without a browser: models (which
genomes the page can choose), protocol (every message from the page validated),
session (one tab's grid, tools, fault plan and frames), frames (the pixels of a
view mode and their binary encoding). server is the thin aiohttp layer; static/
is the page. docs/view.md describes the page, the messages and the safety rules."""
