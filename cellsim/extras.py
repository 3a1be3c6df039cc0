"""Which `pip install 'cellsim[EXTRA]'` brings a missing module: the command line
turns a ModuleNotFoundError of a third-party package into one line naming the
extra, read from the package's own requirements (the installed metadata, or
pyproject.toml in a source checkout), so the answer never drifts from them."""
import re
from pathlib import Path

# Our own top-level packages: a missing one is a broken install, not an extra.
OWN = ("cellsim", "training", "firmware_gen", "benchmarks")
# Import names that differ from their distribution's name.
DISTRIBUTION_OF = {"PIL": "pillow", "dask": "distributed", "yaml": "pyyaml",
                   "sklearn": "scikit-learn", "google": "protobuf"}
# Extras that only gather others.
GATHERING = ("all", "test")


def _requirements() -> list[str]:
    """The project's requirement strings, markers included ('torch==2.13.0; extra == "train"')."""
    try:
        from importlib.metadata import PackageNotFoundError, requires
        found = requires("cellsim")
        if found:
            return list(found)
    except PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        import tomllib
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    except (OSError, KeyError, ValueError):
        return []
    reqs = list(project.get("dependencies", []))
    for extra, items in project.get("optional-dependencies", {}).items():
        reqs += [f'{item}; extra == "{extra}"' for item in items]
    return reqs


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def extras_providing(module: str, requirements=None) -> list[str]:
    """The extras whose requirements bring the top-level package of `module`, in
    the order pyproject lists them (gathering extras such as `all` left out)."""
    top = module.split(".")[0]
    wanted = DISTRIBUTION_OF.get(top, top).lower().replace("_", "-")
    found = []
    for requirement in (_requirements() if requirements is None else requirements):
        marker = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
        if marker and _name(requirement) == wanted and marker.group(1) not in GATHERING \
                and marker.group(1) not in found:
            found.append(marker.group(1))
    return found


def missing_extra_message(exc: ModuleNotFoundError, command: str, requirements=None) -> str | None:
    """One line naming the extra to install for `command`, or None when the
    missing module is ours or comes with no extra (then it is a real bug)."""
    module = exc.name or ""
    if not module or module.split(".")[0] in OWN:
        return None
    extras = extras_providing(module, requirements)
    if not extras:
        return None
    extra = command if command in extras else extras[0]
    return (f"needs {module.split('.')[0]}, which comes with the '{extra}' extra: "
            f"pip install 'cellsim[{extra}]'")


def require(*modules: str) -> None:
    """Fail now, before any work, if one of `modules` is not installed: a command
    whose heavy imports come late (plots at the end of training) names its extra
    at once instead of after the run."""
    from importlib.util import find_spec

    for module in modules:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
