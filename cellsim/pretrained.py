"""The models cellsim ships, trained with its own pipeline on a CPU
(scripts/train-pretrained, then scripts/package-pretrained). Each lives in
cellsim/data/models/NAME/: float checkpoint, QAT int8 genome, C header, the float
weights as .npz (the simulator's float rows, no torch needed), model.json."""
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, GenomeError

MODELS_DIR = Path(__file__).parent / "data" / "models"
METADATA_NAME = "model.json"
DEFAULT_MODEL = "lizard"

# What each of the paper's three experiments trains a model to do, and so whether
# its regrowth after a cut means anything.
EXPERIMENT_PURPOSE = {
    "growing": "trained to grow from a seed (the paper's experiment 1), never to hold its "
               "shape or regrow",
    "persistent": "trained to grow and hold its shape (experiment 2), never shown damage",
    "regenerating": "trained to grow, hold its shape and regrow after damage (experiment 3)",
}
REGROWS = ("regenerating",)


@dataclass(frozen=True)
class ShippedModel:
    name: str
    directory: Path
    metadata: dict

    def _file(self, role: str) -> Path:
        return self.directory / self.metadata["files"][role]

    @property
    def genome_path(self) -> Path:
        return self._file("genome")

    @property
    def checkpoint_path(self) -> Path:
        return self._file("checkpoint")

    @property
    def float_path(self) -> Path | None:
        """Float weights for the simulator's float32 mode (`cellsim export --npz`)."""
        return self._file("float") if "float" in self.metadata["files"] else None

    @property
    def header_path(self) -> Path:
        return self._file("header")

    @property
    def experiment(self) -> str:
        return self.metadata["training"]["experiment"]

    @property
    def purpose(self) -> str:
        return EXPERIMENT_PURPOSE.get(self.experiment, f"trained for {self.experiment}")

    @property
    def trained_to_regrow(self) -> bool:
        return self.experiment in REGROWS

    @property
    def summary(self) -> str:
        """Two lines for `cellsim demo --list`: the model, then what it was trained for."""
        t, q = self.metadata["training"], self.metadata["quantisation"]
        regrowth = "" if self.trained_to_regrow else \
            "; a regrowth figure of the demo is not what it was trained for"
        return (f"{self.name:<10} {t['target']} {t['experiment']}, {t['iterations']} iterations "
                f"({t['wall_time_s'] / 3600:.1f} h on {t['device']}); int8 {q['chosen'].upper()} "
                f"loss {q['int8_loss']:.3g} vs float {q['float_loss']:.3g}\n"
                f"{'':<10} {self.purpose}{regrowth}")

    def load_genome(self):
        from .genome import load_genome

        return load_genome(self.genome_path)


def _read(directory: Path) -> ShippedModel:
    path = directory / METADATA_NAME
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
        files = metadata["files"]
        missing = [f for f in ("genome", "checkpoint", "header", "float")
                   if f in files and not (directory / files[f]).is_file()]
        missing += [f for f in ("genome", "checkpoint", "header") if f not in files]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GenomeError(f"shipped model {directory.name}: unreadable {path} ({exc})") from None
    if missing:
        raise GenomeError(f"shipped model {directory.name}: {missing[0]} file is missing")
    return ShippedModel(directory.name, directory, metadata)


def list_models() -> list[ShippedModel]:
    """Every shipped model, by name."""
    if not MODELS_DIR.is_dir():
        return []
    return [_read(d) for d in sorted(MODELS_DIR.iterdir()) if (d / METADATA_NAME).is_file()]


def get_model(name: str = DEFAULT_MODEL) -> ShippedModel:
    directory = MODELS_DIR / name
    if not name or "/" in name or "\\" in name or not (directory / METADATA_NAME).is_file():
        known = ", ".join(m.name for m in list_models()) or "none"
        raise ConfigError(f"no shipped model {name!r}; shipped: {known}")
    return _read(directory)
