"""The `cellsim` command: one sub-command per pipeline stage.

Each sub-command lives in cellsim/commands/NAME.py, which defines `add_arguments`
and `run`; those modules import nothing heavy at load time, so `cellsim header`
or `cellsim simulate` never pull in torch."""
import argparse
import importlib
import sys

from .errors import CellsimError

# (name, one-line help); the module cellsim.commands.<name> implements it.
COMMANDS = [
    ("train", "train a neural cellular automaton in PyTorch"),
    ("quantize", "turn a float checkpoint into an int8 genome"),
    ("export", "export a checkpoint to ONNX (float and int8)"),
    ("genome", "inspect a genome file"),
    ("simulate", "run a genome on the asynchronous grid of cell computers"),
    ("compile", "compile the simulator's kernels ahead of time (numba's cache)"),
    ("header", "generate C headers and the cell firmware from a genome"),
    ("bench", "measure speed and quantised-vs-float behaviour"),
    ("demo", "grow and regrow a shipped model on the asynchronous int8 grid"),
    ("study", "many seeded runs under swept faults and clocks, on Dask"),
    ("view", "the interactive playground in the browser, on the live asynchronous grid"),
]


def build_parser(names=None):
    parser = argparse.ArgumentParser(
        prog="cellsim",
        description="Growing Neural Cellular Automata on simulated microcontroller grids.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"cellsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = {}
    for name, help_text in COMMANDS:
        if names is not None and name not in names:
            continue
        try:
            module = importlib.import_module(f"cellsim.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cellsim.commands.{name}":
                continue  # stage not built yet
            raise
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        modules[name] = module
    return parser, modules


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Only the chosen sub-command's module is imported (keeps torch out of the
    # simulator and header paths); --help with no command lists all of them.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    names = {chosen} if chosen in dict(COMMANDS) else None
    try:
        parser, modules = build_parser(names)
    except ModuleNotFoundError as exc:
        return _missing_extra(exc, chosen or "cellsim")
    args = parser.parse_args(argv)
    try:
        from .extras import require

        # Third-party modules the command imports only inside run(): checked
        # first, so a missing extra is named before any work, not after it.
        require(*getattr(modules[args.command], "REQUIRES", ()))
        return int(modules[args.command].run(args) or 0)
    except ModuleNotFoundError as exc:
        return _missing_extra(exc, args.command)
    except CellsimError as exc:
        print(f"cellsim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"cellsim {args.command}: interrupted", file=sys.stderr)
        return 130


def _missing_extra(exc: ModuleNotFoundError, command: str) -> int:
    """A package of an optional extra is not installed: say which extra, exit 2
    (a missing module of our own is a bug and keeps its traceback)."""
    from .extras import missing_extra_message

    message = missing_extra_message(exc, command)
    if message is None:
        raise exc
    print(f"cellsim {command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
