"""Shared helpers of the quantiser and ONNX tests (no tests of its own): a tiny
lizard model trained for a few dozen iterations, once per test process, and
crafted float models with random weights."""
import atexit
import functools
import math
import tempfile
from pathlib import Path

import torch

from training.model import CAModel

TINY_HORIZON = 24  # max_steps of the tiny model: plans scale with it


@functools.lru_cache(maxsize=None)
def tiny_checkpoint() -> Path:
    """checkpoint.pt of a 12x12 lizard on an 18x18 grid: the persistent recipe
    (a pool of 16, the worst sample reseeded) with 16-23 steps, 80 Adam iterations
    with per-variable gradient normalisation: a few seconds. Trained here with the plain model (not training/trainer.py), so
    these tests follow only the checkpoint format, not the trainer's internals."""
    from cellsim.target_images import load_target
    from training.checkpoint import save_checkpoint
    from training.config import make_config
    from training.model import make_seed
    from training.trainer import normalise_gradients

    torch.set_num_threads(1)  # the cores are shared; small tensors gain nothing from threads
    config = make_config("quick", target="lizard", target_size=12, padding=3, iterations=80, batch=4,
                         pool_size=16, min_steps=16, max_steps=TINY_HORIZON, experiment="regenerating")
    target = torch.as_tensor(load_target("lizard", 12, 3))
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = CAModel(**vars(config.model))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    seed = make_seed(1, *target.shape[1:])
    pool = seed.repeat(config.pool_size, 1, 1, 1)
    for _ in range(config.iterations):
        index = torch.randperm(config.pool_size, generator=generator)[:config.batch]
        x = pool[index]
        worst = (x[:, :4] - target).square().mean(dim=(1, 2, 3)).argmax()
        x[worst] = seed[0]
        for _ in range(int(torch.randint(config.min_steps, config.max_steps, (), generator=generator))):
            x = model(x, generator=generator)
        loss = (x[:, :4] - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        normalise_gradients(model)
        optimizer.step()
        pool[index] = x.detach()
    scratch = tempfile.TemporaryDirectory(prefix="cellsim-quantize-tests-")
    atexit.register(scratch.cleanup)
    path = Path(scratch.name) / "tiny" / "checkpoint.pt"
    path.parent.mkdir()
    save_checkpoint(path, {"config": config.to_dict(), "target": target.numpy(), "model": model.state_dict(),
                           "iteration": config.iterations, "optimizer": optimizer.state_dict(),
                           "rng": {}, "metrics": [], "elapsed": 0.0, "pool_file": None})
    return path


def tiny_model():
    from training.checkpoint import load_model

    return load_model(tiny_checkpoint())


@functools.lru_cache(maxsize=None)
def tiny_calibration():
    """Calibration of the tiny model with the plan `cellsim quantize` would use."""
    from training.quantize.calibrate import calibrate
    from training.quantize.pipeline import Plans

    model, ckpt = tiny_model()
    _, h, w = ckpt["target"].shape
    return calibrate(model, h, w, Plans.for_horizon(TINY_HORIZON).calibration)


def random_model(seed: int, channels: int = 16, hidden: int = 32, angle: float = 0.0,
                 torus: bool = False, output_scale: float = 0.05) -> CAModel:
    """A CAModel with random weights, the last layer included (not zero)."""
    generator = torch.Generator().manual_seed(seed)
    model = CAModel(channels, hidden, fire_rate=0.5, angle=angle, torus=torus)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(max(p[0].numel(), 1)))
        model.w2.weight.mul_(output_scale)
        model.w2.bias.mul_(output_scale)
    return model.eval()
