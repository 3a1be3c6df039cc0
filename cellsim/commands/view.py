"""`cellsim view [MODEL|GENOME] [--size N] [--port P] [--host 127.0.0.1]
[--no-browser]`: the interactive playground on the live asynchronous grid, served
to the browser (cellsim/view, docs/view.md). Needs the `view` extra (aiohttp)."""
import sys

from ..errors import ConfigError

DEFAULT_PORT = 8765
REQUIRES = ("aiohttp",)  # the 'view' extra, checked by the CLI before run()


def add_arguments(parser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL|GENOME",
                        help="shipped model name (default lizard) or a genome file")
    parser.add_argument("--size", type=int, help="grid side, 8..256 (default: the genome's)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to listen on (default {DEFAULT_PORT}; 0: any free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--no-browser", action="store_true",
                        help="print the address without opening a browser")
    parser.add_argument("--max-tabs", type=int, default=8,
                        help="tabs served at once, each with its own grid (default 8)")


def run(args) -> int:
    from ..view import protocol

    if args.size is not None and not protocol.MIN_SIDE <= args.size <= protocol.MAX_SIDE:
        raise ConfigError(f"--size must lie in [{protocol.MIN_SIDE}, {protocol.MAX_SIDE}], "
                          f"got {args.size}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must lie in [0, 65535], got {args.port}")
    if not 1 <= args.max_tabs <= 64:
        raise ConfigError(f"--max-tabs must lie in [1, 64], got {args.max_tabs}")
    import logging

    from ..view.models import build_catalogue
    from ..view.server import is_loopback, serve
    from ..view.session import SessionPool

    catalogue = build_catalogue(args.model)
    if args.size is None:
        genome_side = catalogue[catalogue.default].genome.grid_size
        args.size = min(max(genome_side, protocol.MIN_SIDE), protocol.MAX_SIDE)
    from ..sim.precompile import jobs_for
    from . import compile_first

    compile_first(jobs_for())  # (a cold cache: before the page, not in its first frame)
    pool = SessionPool(catalogue, args.size, args.max_tabs)
    if not is_loopback(args.host):
        print(f"cellsim view: warning: --host {args.host} is not a loopback address: anyone "
              f"who can reach this machine on port {args.port} can use the page (there is no "
              "login)", file=sys.stderr)

    def ready(url):
        # Logging starts once the server listens: tabs opening and closing,
        # rejected messages.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("cellsim view: %(message)s"))
        log = logging.getLogger("cellsim.view")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        print(f"cellsim view: serving {catalogue.default} at {url} (Ctrl-C stops)", flush=True)
        if not args.no_browser:
            import webbrowser
            webbrowser.open(url)

    serve(pool, args.host, args.port, ready)
    return 0
