"""`cellsim bench speed|quant`: the benchmarks of benchmarks/speed.py (every engine's
throughput on one grid) and benchmarks/quant.py (int8 genomes against the float
model). Heavy modules are imported only inside run()."""
import importlib

BENCHMARKS = {
    "speed": "time every engine on the same model and grid (speed.json, speed.md, speed.png)",
    "quant": "compare the float model with its PTQ and QAT genomes (quant.json, quant.md, plots)",
}


def _module(name):
    return importlib.import_module(f"benchmarks.{name}")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, help_text in BENCHMARKS.items():
        _module(name).add_arguments(sub.add_parser(name, help=help_text, description=help_text))


def run(args) -> int:
    from ..threads import passive_openmp_waits

    passive_openmp_waits()
    return _module(args.benchmark).run(args)
