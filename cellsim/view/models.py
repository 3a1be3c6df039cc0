"""The genomes the page's model menu offers: the shipped models
(cellsim/data/models) and a genome file given on the command line."""
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError


@dataclass(frozen=True)
class ModelChoice:
    name: str        # what the page sends back
    path: Path       # the genome file, for the replay command
    genome: object   # the loaded cellsim.genome.Genome


class Catalogue:
    """Genomes by name, loaded once. `default` is the one a new tab starts with."""

    def __init__(self, choices, default: str):
        self.choices = {c.name: c for c in choices}
        if default not in self.choices:
            raise ConfigError(f"no model {default!r} in the catalogue")
        self.default = default

    def __getitem__(self, name: str) -> ModelChoice:
        try:
            return self.choices[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown model {name!r}; choose one of "
                              f"{', '.join(self.choices)}") from None

    def names(self) -> list:
        return list(self.choices)


def build_catalogue(model: str | None = None) -> Catalogue:
    """The shipped models plus `model`: a shipped name (the default then) or a
    genome file (listed as its file name). ConfigError or GenomeError if it is
    neither; a float .npz is refused (the page shows the int8 hardware)."""
    from ..genome import load_genome
    from ..pretrained import DEFAULT_MODEL, list_models

    choices = [ModelChoice(m.name, m.genome_path, m.load_genome()) for m in list_models()]
    shipped = {c.name for c in choices}
    if model is None:
        default = DEFAULT_MODEL if DEFAULT_MODEL in shipped else next(iter(shipped), None)
        if default is None:
            raise ConfigError("no shipped models in this installation; give a genome file")
    elif model in shipped:
        default = model
    else:
        path = Path(model)
        if path.suffix.lower() == ".npz":
            raise ConfigError(f"{model}: float weights; cellsim view runs int8 genomes "
                              "(cellsim quantize makes one)")
        if not path.is_file():
            raise ConfigError(f"{model!r} is neither a shipped model ({', '.join(sorted(shipped))})"
                              " nor a genome file")
        default = f"file:{path.name}"
        choices.append(ModelChoice(default, path, load_genome(path)))
    return Catalogue(choices, default)
