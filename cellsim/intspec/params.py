"""The integer parameters of a genome: what one cell's ROM holds for the update.

w1 columns follow the perception order [state | gradient x | gradient y]; the
float model's interleaved layout and any rotation angle are folded in by the
quantiser. state_scale and hidden_scale are real-valued metadata for reading
states in and out; the update itself uses integers only."""
from dataclasses import dataclass, fields

import numpy as np

from ..errors import GenomeError


@dataclass(frozen=True, eq=False)
class IntParams:
    w1: np.ndarray        # int8 (hidden, 3*channels), [out][in], in [-127, 127]
    b1: np.ndarray        # int32 (hidden,), scale w1_scale[o] * input scale
    m1: np.ndarray        # int32 (hidden,), requantisation multiplier in [2^30, 2^31) or 0
    shift1: np.ndarray    # int32 (hidden,), exponent, <= 30
    w2: np.ndarray        # int8 (channels, hidden), [out][in], in [-127, 127]
    b2: np.ndarray        # int32 (channels,)
    m2: np.ndarray        # int32 (channels,)
    shift2: np.ndarray    # int32 (channels,)
    hidden_zero_point: int   # zero point of the ReLU output (usually -128)
    alive_threshold: int     # a cell lives while some neighbour's alpha q > this
    state_scale: np.ndarray  # float32 (channels,): real = q * state_scale[c]
    hidden_scale: float      # real value of one hidden-activation step

    _DTYPES = {"w1": np.int8, "b1": np.int32, "m1": np.int32, "shift1": np.int32,
               "w2": np.int8, "b2": np.int32, "m2": np.int32, "shift2": np.int32,
               "state_scale": np.float32}

    def __post_init__(self):
        for name, dtype in self._DTYPES.items():
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype))
        self.validate()

    @property
    def channels(self) -> int:
        return self.w2.shape[0]

    @property
    def hidden(self) -> int:
        return self.w1.shape[0]

    def validate(self) -> None:
        """Raise GenomeError naming the first inconsistency."""
        h, c = self.w1.shape[0], self.w2.shape[0]
        expect = {"w1": (h, 3 * c), "b1": (h,), "m1": (h,), "shift1": (h,),
                  "w2": (c, h), "b2": (c,), "m2": (c,), "shift2": (c,), "state_scale": (c,)}
        for name, shape in expect.items():
            if getattr(self, name).shape != shape:
                raise GenomeError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")
        for name in ("w1", "w2"):
            if (getattr(self, name) == -128).any():
                raise GenomeError(f"{name} holds -128; weights must lie in [-127, 127]")
        for m, s in (("m1", "shift1"), ("m2", "shift2")):
            mult, shift = getattr(self, m), getattr(self, s)
            if ((mult != 0) & (mult < (1 << 30))).any() or (mult < 0).any():
                raise GenomeError(f"{m} must be 0 or lie in [2^30, 2^31)")
            if (shift > 30).any() or (shift < -31).any():
                raise GenomeError(f"{s} must lie in [-31, 30]")
        if not -128 <= self.hidden_zero_point <= 127:
            raise GenomeError(f"hidden zero point {self.hidden_zero_point} is not an int8")
        if not -128 <= self.alive_threshold <= 127:
            raise GenomeError(f"alive threshold {self.alive_threshold} is not an int8")
        if not (np.isfinite(self.state_scale).all() and (self.state_scale > 0).all()):
            raise GenomeError("state scales must be positive and finite")
        if not (np.isfinite(self.hidden_scale) and self.hidden_scale > 0):
            raise GenomeError("hidden scale must be positive and finite")

    def quantize_state(self, x) -> np.ndarray:
        """Real states (..., channels) -> int8, round half away from zero, saturated."""
        q = np.round(np.asarray(x, np.float64) / self.state_scale)
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize_state(self, q) -> np.ndarray:
        return np.asarray(q, np.float32) * self.state_scale

    def seed_state(self) -> np.ndarray:
        """The seed cell: channels 3.. equal 1.0, RGB 0 (the paper's seed)."""
        x = np.zeros(self.channels, np.float32)
        x[3:] = 1.0
        return self.quantize_state(x)

    def products_reach(self) -> tuple:
        """Per output row of each layer, the largest |sum of products| any input
        can give (biases not included): layer 1 reads int8 perception values,
        |x| <= 128; layer 2 reads hidden activations less their zero point,
        0 <= h - zp <= 127 - zp. The one definition of the accumulator bound that
        the genome format, the simulator's packed kernels and QAT all check."""
        reach1 = np.abs(self.w1.astype(np.int64)).sum(axis=1) * 128
        reach2 = np.abs(self.w2.astype(np.int64)).sum(axis=1) * (127 - int(self.hidden_zero_point))
        return reach1, reach2

    def equals(self, other: "IntParams") -> bool:
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))
