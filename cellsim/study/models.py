"""The models a study names, turned into bytes a worker on any machine can run:
a shipped name gives its int8 genome and its float weights, a .genome file the
int8 rows, a float .npz or a training checkpoint (.pt, read with torch on the
submitting machine only) the float rows. Files are read here, decoded on the workers."""
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError


@dataclass(frozen=True)
class ModelSource:
    label: str                 # as the spec names it
    int8: bytes | None         # genome file bytes
    float: bytes | None        # float weights .npz bytes
    target: str                # emoji name, or "" to take the genome's

    def payload(self, precision: str) -> bytes:
        return self.int8 if precision == "int8" else self.float

    def sha256(self, precision: str) -> str:
        return hashlib.sha256(self.payload(precision)).hexdigest()

    def record(self) -> dict:
        return {"model": self.label, "target": self.target,
                **{f"{p}_sha256": self.sha256(p) for p in ("int8", "float")
                   if self.payload(p) is not None}}


def _read(path: Path, label: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"model {label}: cannot read {path}: {exc.strerror or exc}") from None


def _checkpoint_to_npz(path: Path, label: str) -> tuple:
    """(float weights .npz bytes, the checkpoint's target name)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConfigError(f"model {label}: reading a .pt checkpoint needs torch "
                          "(pip install 'cellsim[train]'), or export it first with "
                          "`cellsim export CKPT --npz FILE`") from None
    import tempfile

    from training import export_onnx
    from training.checkpoint import load_model

    model, ckpt = load_model(path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "weights.npz"
        export_onnx.save_float_weights(model, out)
        return out.read_bytes(), str(ckpt.get("config", {}).get("target", ""))


def resolve(label: str, target: str = "") -> ModelSource:
    """A shipped model name or a file path -> ModelSource (ConfigError if neither)."""
    from ..pretrained import MODELS_DIR, get_model

    path = Path(label)
    if "/" not in label and "\\" not in label and (MODELS_DIR / label).is_dir():
        shipped = get_model(label)
        floats = shipped.float_path
        return ModelSource(label, _read(shipped.genome_path, label),
                           _read(floats, label) if floats is not None else None,
                           target or shipped.metadata["training"]["target"])
    if not path.is_file():
        raise ConfigError(f"model {label!r} is neither a shipped model nor a file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        if not target:
            raise ConfigError(f"model {label}: float weights do not name their target; set "
                              "target = 'EMOJI' in the spec")
        return ModelSource(label, None, _read(path, label), target)
    if suffix == ".pt":
        weights, trained_on = _checkpoint_to_npz(path, label)
        return ModelSource(label, None, weights, target or trained_on)
    return ModelSource(label, _read(path, label), None, target)


def decode(payload: bytes, precision: str):
    """Bytes -> the simulator's model (Genome or FloatParams); raises GenomeError /
    CheckpointError for bad bytes (on the worker: the run fails, the study goes on)."""
    if precision == "int8":
        from ..genome import Genome

        return Genome.from_bytes(payload)
    from ..sim.floatmodel import FloatParams

    return FloatParams.load(io.BytesIO(payload))
