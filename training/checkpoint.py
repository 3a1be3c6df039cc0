"""Checkpoint files: the trained weights with everything needed to use them
(config, target) or to resume training bit-identically (iteration, optimiser,
RNG states, metrics). The sample pool, hundreds of MB, lives in its own file."""
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from cellsim.atomic import atomic_path
from cellsim.errors import CheckpointError, ConfigError

from .config import TrainConfig
from .model import CAModel

FORMAT, VERSION = "cellsim-checkpoint", 1
POOL_FORMAT = "cellsim-pool"
CHECKPOINT_NAME = "checkpoint.pt"
REQUIRED = ("config", "target", "model", "iteration", "optimizer", "rng", "metrics", "elapsed", "pool_file")


def save_checkpoint(path, state: dict) -> None:
    """Write `state` (the keys of REQUIRED, torch tensors or plain data) atomically."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    payload["target"] = torch.as_tensor(np.asarray(state["target"], np.float32))
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read(path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError,
            ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{what} {path} is not readable ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{what} {path} is not a cellsim file")
    return data


def load_checkpoint(path) -> dict:
    """Read and check a checkpoint; ckpt["target"] comes back as float32 numpy
    (4, H, W). Raises CheckpointError on a missing, corrupt or foreign file."""
    data = _read(path, "checkpoint")
    if data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cellsim checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {data.get('version')!r}; "
                              f"this cellsim reads version {VERSION}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    try:
        TrainConfig.from_dict(data["config"]).validate()
    except (ConfigError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {path} holds a bad configuration: {exc}") from None
    if not isinstance(data["target"], torch.Tensor) or data["target"].ndim != 3:
        raise CheckpointError(f"checkpoint {path} holds no (4, H, W) target")
    data["target"] = data["target"].numpy().astype(np.float32)
    return data


def model_from_checkpoint(ckpt: dict) -> CAModel:
    config = TrainConfig.from_dict(ckpt["config"])
    model = CAModel(**vars(config.model))
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint weights do not fit the model it describes ({exc})") from None
    return model


def load_model(path) -> tuple[CAModel, dict]:
    """The trained float model (eval mode, CPU) and its checkpoint dict."""
    ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt).eval(), ckpt


POOL_GLOB = "pool-*.pt"


def pool_file_name(iteration: int) -> str:
    return f"pool-{iteration:07d}.pt"


def save_pool(path, pool: torch.Tensor, iteration: int) -> None:
    with atomic_path(path) as tmp:
        torch.save({"format": POOL_FORMAT, "version": VERSION, "iteration": iteration,
                    "pool": pool.detach().cpu()}, tmp)


def load_pool(path, iteration: int, shape: tuple) -> torch.Tensor:
    """The pool saved with the checkpoint of `iteration`; CheckpointError if it
    is missing, foreign, or from another iteration or grid."""
    if not Path(path).is_file():
        raise CheckpointError(f"pool file {path} does not exist (pass --fresh-pool to start the "
                              "pool over from seeds)")
    data = _read(path, "pool file")
    pool = data.get("pool")
    if data.get("format") != POOL_FORMAT or data.get("version") != VERSION or not isinstance(pool, torch.Tensor):
        raise CheckpointError(f"{path} is not a cellsim pool file of version {VERSION}")
    if data.get("iteration") != iteration or tuple(pool.shape) != tuple(shape):
        raise CheckpointError(f"pool file {path} does not belong to the checkpoint "
                              f"(iteration {data.get('iteration')}, shape {tuple(pool.shape)})")
    return pool
