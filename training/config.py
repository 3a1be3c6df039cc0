"""Training configuration: the official notebook's recipe (docs/training.md), its three
experiments, size presets, and the checks that turn bad values into ConfigError.
A config is plain data; its dict form is what checkpoints store."""
import dataclasses
import math
from dataclasses import dataclass, field

from cellsim.errors import ConfigError
from cellsim.target_images import MIN_IMAGE_SIDE

EXPERIMENTS = {  # name -> (uses the sample pool, samples damaged per batch)
    "growing": (False, 0),
    "persistent": (True, 0),
    "regenerating": (True, 3),
}

# Damage applied to the pool's best samples: the paper's random discs, or discs
# plus one half of the grid erased (the demo's cut), which the paper's recipe
# never shows the model.
DAMAGE_KINDS = ("circle", "circle+half")

# Size presets; the experiment is chosen separately. "full" is the paper's
# recipe; "quick" is a small grid that shows regeneration within minutes on a CPU.
PRESETS = {
    "full": dict(target_size=40, padding=16, batch=8, pool_size=1024, iterations=8000),
    "quick": dict(target_size=24, padding=6, batch=8, pool_size=256, iterations=300),
}


@dataclass(frozen=True)
class ModelConfig:
    channels: int = 16
    hidden: int = 128
    fire_rate: float = 0.5
    angle: float = 0.0        # perception rotation in radians (experiment 4)
    torus: bool = False       # wrap-around padding instead of zeros


@dataclass(frozen=True)
class TrainConfig:
    target: str = "lizard"    # emoji name or image path
    experiment: str = "regenerating"
    target_size: int = 40
    padding: int = 16
    batch: int = 8
    pool_size: int = 1024
    iterations: int = 8000
    min_steps: int = 64       # steps per iteration: uniform integer in [min_steps, max_steps)
    max_steps: int = 96
    lr: float = 2e-3
    lr_drop_iteration: int = 2000
    lr_drop_factor: float = 0.1
    seed: int = 0
    checkpoint_every: int = 100
    damage: str = "circle"    # one of DAMAGE_KINDS
    model: ModelConfig = field(default_factory=ModelConfig)

    @property
    def grid_size(self) -> int:
        return self.target_size + 2 * self.padding

    @property
    def uses_pool(self) -> bool:
        return EXPERIMENTS[self.experiment][0]

    @property
    def damaged_per_batch(self) -> int:
        return EXPERIMENTS[self.experiment][1]

    def learning_rate(self, iteration: int) -> float:
        """The rate for the update that completes iteration `iteration + 1`."""
        return self.lr * (self.lr_drop_factor if iteration >= self.lr_drop_iteration else 1.0)

    def validate(self) -> "TrainConfig":
        def need(ok: bool, message: str):
            if not ok:
                raise ConfigError(message)

        need(self.experiment in EXPERIMENTS,
             f"unknown experiment {self.experiment!r}; choose one of {', '.join(EXPERIMENTS)}")
        need(self.iterations >= 1, f"--iterations must be at least 1, got {self.iterations}")
        need(self.target_size >= MIN_IMAGE_SIDE, f"--size must be at least {MIN_IMAGE_SIDE}, got {self.target_size}")
        need(self.padding >= 0, f"--padding must be >= 0, got {self.padding}")
        need(self.batch >= 1, f"--batch must be at least 1, got {self.batch}")
        need(1 <= self.min_steps < self.max_steps,
             f"steps per iteration must satisfy 1 <= min < max, got [{self.min_steps}, {self.max_steps})")
        need(self.lr > 0 and math.isfinite(self.lr), f"learning rate must be positive, got {self.lr}")
        need(self.damage in DAMAGE_KINDS,
             f"unknown damage {self.damage!r}; choose one of {', '.join(DAMAGE_KINDS)}")
        need(self.damage == "circle" or self.damaged_per_batch > 0,
             f"--damage {self.damage} applies to the regenerating experiment only")
        need(self.checkpoint_every >= 1, f"--checkpoint-every must be at least 1, got {self.checkpoint_every}")
        need(0 <= self.seed < 2 ** 63, f"--seed must lie in [0, 2^63), got {self.seed}")
        if self.uses_pool:
            need(self.pool_size >= self.batch,
                 f"--pool ({self.pool_size}) must hold at least one batch ({self.batch})")
            need(self.batch > self.damaged_per_batch,
                 f"the {self.experiment} experiment needs --batch > {self.damaged_per_batch}: "
                 "one sample is reseeded and the best are damaged")
        m = self.model
        need(m.channels >= 4 and m.hidden >= 1, "the model needs >= 4 channels and >= 1 hidden unit")
        need(0 < m.fire_rate <= 1, f"fire rate must lie in (0, 1], got {m.fire_rate}")
        need(math.isfinite(m.angle), "the rotation angle must be finite")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Inverse of to_dict; raises ConfigError on unknown or missing keys."""
        try:
            model = ModelConfig(**data["model"])
            return cls(**{**data, "model": model})
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"training configuration is incomplete or has unknown keys ({exc})") from None


def make_config(preset: str = "full", **overrides) -> TrainConfig:
    """A validated config: the preset's sizes, then every override that is not None.
    Model fields (fire_rate, angle, torus, ...) may be given at top level."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    model_names = {f.name for f in dataclasses.fields(ModelConfig)}
    model = ModelConfig(**{k: given.pop(k) for k in list(given) if k in model_names})
    unknown = set(given) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    return TrainConfig(**{**PRESETS[preset], **given, "model": model}).validate()
