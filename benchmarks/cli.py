"""The `python -m benchmarks.<name>` entry of the benchmarks that `cellsim bench`
also runs: the same arguments, and a bad input as one line on stderr with exit
status 2, named after the module rather than the cellsim command."""
import argparse
import sys

from cellsim.errors import CellsimError

from cellsim.threads import passive_openmp_waits


def run_main(name: str, doc: str, add_arguments, run, argv=None) -> int:
    """Parse `argv` with `add_arguments`, then `run(args)`; a CellsimError
    becomes `benchmarks.<name>: error: ...` and exit status 2."""
    passive_openmp_waits()
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except CellsimError as exc:
        print(f"benchmarks.{name}: error: {exc}", file=sys.stderr)
        return 2
