"""ONNX export of the update rule, float and int8, and the float weights .npz.

float: the model's update dx = W2 relu(W1 perceive(x) + b1) + b2 as a fixed 3x3
conv 16->48 (the model's kernels, rotation included, interleaved order), 1x1
conv, ReLU, 1x1 conv; dynamic batch, height and width; opset 17.

int8: a genome's integers as a QDQ graph made by onnxruntime's quantize_static.
The graph it quantises is the genome's update written with floats: x / s_c, the
integer perception [q | Sobel/8 | Sobel/8], the dequantised first layer, ReLU,
the second layer in state steps, * s_c. Every activation scale and every weight
scale is pinned (TensorQuantOverrides) to the genome's, so the int8 weights and
biases are the genome's and each QuantizeLinear lands on the genome's integers;
what remains different is onnxruntime's float requantisation (round half to
even) against the genome's fixed-point multiplier (round half up)."""
import contextlib
import logging
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from cellsim.errors import OutputError
from cellsim.intspec.perceive import GRADIENT_FILTERS, GRADIENT_SHIFT

GRADIENT_DIVISOR = 1 << GRADIENT_SHIFT
# Gradient taps / D become the integers 2 * taps with this weight step, and a bias
# of one such step (1 / 2D) turns round-half-to-even into the genome's rounding.
GRADIENT_WEIGHT_STEP = 1 / (2 * GRADIENT_DIVISOR)

OPSET = 17
STATE, DX = "state", "dx"


def _initializer(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def _wrap_pad_nodes(source: str, out: str) -> list:
    """Circular padding by one cell on H and W (Pad's 'wrap' needs opset 19)."""
    nodes = []
    for axis, name in ((2, "rows"), (3, "cols")):
        first, last = f"{name}_first", f"{name}_last"
        nodes += [helper.make_node("Slice", [source, "zero_1d", "one_1d", f"axis{axis}"], [first]),
                  helper.make_node("Slice", [source, "minus_one_1d", "int_max_1d", f"axis{axis}"], [last])]
        target = out if axis == 3 else f"{out}_rows"
        nodes.append(helper.make_node("Concat", [last, source, first], [target], axis=axis))
        source = target
    return nodes


def _wrap_constants() -> list:
    ints = {"zero_1d": 0, "one_1d": 1, "minus_one_1d": -1, "int_max_1d": 2 ** 62, "axis2": 2, "axis3": 3}
    return [numpy_helper.from_array(np.array([v], np.int64), k) for k, v in ints.items()]


def _graph(name: str, perception_weight, perception_bias, w1, b1, w2, b2, torus: bool,
           input_scale=None, output_scale=None, doc: str = "") -> onnx.ModelProto:
    """x [-> x / input_scale] -> 3x3 conv -> 1x1 conv -> ReLU -> 1x1 conv
    [-> * output_scale] -> dx, with zero or circular padding."""
    channels = w2.shape[0]
    inits = [_initializer("perception_weight", perception_weight),
             _initializer("w1", np.asarray(w1)[:, :, None, None]), _initializer("b1", b1),
             _initializer("w2", np.asarray(w2)[:, :, None, None]), _initializer("b2", b2)]
    nodes, source = [], STATE
    if input_scale is not None:
        inits.append(_initializer("state_scale", np.asarray(input_scale).reshape(1, channels, 1, 1)))
        nodes.append(helper.make_node("Div", [STATE, "state_scale"], ["state_steps"]))
        source = "state_steps"
    conv_inputs = [source, "perception_weight"]
    if perception_bias is not None:
        inits.append(_initializer("perception_bias", perception_bias))
        conv_inputs.append("perception_bias")
    pads = [1, 1, 1, 1]
    if torus:
        inits += _wrap_constants()
        nodes += _wrap_pad_nodes(source, "padded")
        conv_inputs[0], pads = "padded", [0, 0, 0, 0]
    nodes += [helper.make_node("Conv", conv_inputs, ["perception"], kernel_shape=[3, 3], pads=pads),
              helper.make_node("Conv", ["perception", "w1", "b1"], ["hidden_pre"], kernel_shape=[1, 1]),
              helper.make_node("Relu", ["hidden_pre"], ["hidden"]),
              helper.make_node("Conv", ["hidden", "w2", "b2"],
                               ["delta_steps" if output_scale is not None else DX], kernel_shape=[1, 1])]
    if output_scale is not None:
        inits.append(_initializer("delta_scale", np.asarray(output_scale).reshape(1, channels, 1, 1)))
        nodes.append(helper.make_node("Mul", ["delta_steps", "delta_scale"], [DX]))
    dims = ["batch", channels, "height", "width"]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(STATE, TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info(DX, TensorProto.FLOAT, dims)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="cellsim", doc_string=doc)
    model.ir_version = min(model.ir_version, 8)  # readable by onnxruntime releases of the last years
    onnx.checker.check_model(model, full_check=True)
    return model


def float_update_model(model) -> onnx.ModelProto:
    """The float model's update (model.update) as an ONNX graph."""
    from training.quantize.fold import dense_perception_weight

    w1 = model.w1.weight.detach()[:, :, 0, 0].numpy()
    w2 = model.w2.weight.detach()[:, :, 0, 0].numpy()
    return _graph("cellsim_update_float", dense_perception_weight(model.channels, model.angle).numpy(),
                  None, w1, model.w1.bias.detach().numpy(), w2, model.w2.bias.detach().numpy(),
                  bool(model.torus), doc=f"NCA update dx; angle {model.angle} rad, torus {bool(model.torus)}")


def integer_perception_weight(channels: int) -> np.ndarray:
    """(3C, C, 3, 3): identity, then gradient filter x / D, then gradient filter
    y / D of every channel (cellsim.intspec.perceive's taps, D = 2^GRADIENT_SHIFT),
    in the genome's perception order [q | gx | gy]."""
    weight = np.zeros((3 * channels, channels, 3, 3), np.float32)
    for c in range(channels):
        weight[c, c, 1, 1] = 1.0
        weight[channels + c, c] = GRADIENT_FILTERS[0] / GRADIENT_DIVISOR
        weight[2 * channels + c, c] = GRADIENT_FILTERS[1] / GRADIENT_DIVISOR
    return weight


def _genome_layers(params) -> dict:
    """The genome's integer layers as float weights with their pinned scales.
    Every weight is an exact multiple of its scale, so quantize_static gives back
    the genome's int8 weights and int32 biases."""
    from training.quantize.intsim import requantize_ratio

    channels = params.channels
    s_h = np.float32(params.hidden_scale)
    tiny = np.float32(1e-30)  # a zero multiplier (the layer output is always 0) needs a positive scale
    w1_scale = np.maximum(requantize_ratio(params.m1, params.shift1) * s_h, tiny).astype(np.float32)
    w2_scale = np.maximum(requantize_ratio(params.m2, params.shift2) / s_h, tiny).astype(np.float32)
    grad_scale = np.float32(GRADIENT_WEIGHT_STEP)
    perception_scale = np.concatenate([np.ones(channels, np.float32), np.full(2 * channels, grad_scale)])
    # +1/(2D) on each gradient: onnxruntime rounds half to even, the genome
    # computes (S + D/2) >> log2(D); round((2S + 1) / 2D) equals it for every
    # integer S (an odd numerator is never a tie). QuantizeLinear then saturates
    # to [-128, 127] as the genome does.
    perception_bias = np.concatenate([np.zeros(channels), np.full(2 * channels, grad_scale)]).astype(np.float32)
    return {
        "perception_weight": (integer_perception_weight(channels), perception_scale),
        "perception_bias": perception_bias,
        "w1": (params.w1.astype(np.float32) * w1_scale[:, None], w1_scale),
        "b1": params.b1.astype(np.float64) * w1_scale,  # input step 1: bias step = weight step
        "w2": (params.w2.astype(np.float32) * w2_scale[:, None], w2_scale),
        "b2": params.b2.astype(np.float64) * w2_scale * s_h,
        "hidden": (float(s_h), int(params.hidden_zero_point)),
    }


def genome_float_model(params, torus: bool) -> onnx.ModelProto:
    """The genome's update written with floats (see the module doc), before quantisation."""
    layers = _genome_layers(params)
    return _graph("cellsim_update_genome", layers["perception_weight"][0], layers["perception_bias"],
                  layers["w1"][0], layers["b1"], layers["w2"][0], layers["b2"], torus,
                  input_scale=params.state_scale, output_scale=params.state_scale)


def _per_channel(scales) -> list:
    overrides = [{"scale": np.array(s, np.float32), "zero_point": np.array(0, np.int8)} for s in np.asarray(scales, np.float32)]
    overrides[0]["axis"] = 0
    return overrides


def quant_overrides(params, torus: bool) -> dict:
    """TensorQuantOverrides pinning every quantised tensor to the genome's scales."""
    layers = _genome_layers(params)
    hidden_scale, zero_point = layers["hidden"]
    # numpy scalars: onnxruntime calls .squeeze() on overridden values
    unit = [{"scale": np.array(1.0, np.float32), "zero_point": np.array(0, np.int8)}]
    hidden = [{"scale": np.array(hidden_scale, np.float32), "zero_point": np.array(zero_point, np.int8)}]
    # the first conv reads the state in steps, wrapped around first on a torus
    return {"padded" if torus else "state_steps": unit, "perception": unit, "hidden_pre": hidden,
            "hidden": hidden, "delta_steps": unit, "perception_weight": _per_channel(layers["perception_weight"][1]),
            "w1": _per_channel(layers["w1"][1]), "w2": _per_channel(layers["w2"][1])}


@contextlib.contextmanager
def _quiet_root_logger():
    """quantize_static logs advice (run pre-processing) on the root logger; the
    graph here is already in the form that advice aims at."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class TrajectoryReader:
    """onnxruntime CalibrationDataReader over whole grids of real trajectories."""

    def __init__(self, grids: np.ndarray):
        self.grids = np.asarray(grids, np.float32)
        self.index = 0

    def get_next(self):
        if self.index >= len(self.grids):
            return None
        self.index += 1
        return {STATE: self.grids[self.index - 1:self.index]}

    def rewind(self):
        self.index = 0


def int8_update_model(params, torus: bool, calibration_grids, path) -> None:
    """Write the genome as a QDQ int8 ONNX model (S8S8, per-channel weights) to `path`."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from cellsim.atomic import atomic_path

    float_graph = genome_float_model(params, torus)
    with tempfile.TemporaryDirectory() as scratch, atomic_path(path) as tmp, _quiet_root_logger():
        source = Path(scratch) / "genome_float.onnx"
        onnx.save(float_graph, source)
        quantize_static(str(source), str(tmp), TrajectoryReader(calibration_grids),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["Conv"],
                        extra_options={"TensorQuantOverrides": quant_overrides(params, torus),
                                       "QDQDisableWeightAdjustForInt32Bias": True,
                                       "ActivationSymmetric": False, "WeightSymmetric": True})
        onnx.checker.check_model(str(tmp), full_check=True)


def save_onnx(model: onnx.ModelProto, path) -> None:
    from cellsim.atomic import atomic_path

    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def save_float_weights(model, path) -> None:
    """Interface 3: the float weights for the simulator's float32 mode."""
    from cellsim.atomic import atomic_path

    arrays = {"w1": model.w1.weight.detach()[:, :, 0, 0].numpy().astype(np.float32),
              "b1": model.w1.bias.detach().numpy().astype(np.float32),
              "w2": model.w2.weight.detach()[:, :, 0, 0].numpy().astype(np.float32),
              "b2": model.w2.bias.detach().numpy().astype(np.float32),
              "angle": np.array(float(model.angle), np.float64),
              "fire_rate": np.array(float(model.fire_rate), np.float64),
              "torus": np.array(bool(model.torus))}
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
                np.savez(f, **arrays)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def session(path_or_model, threads: int = 1, high_precision_int8: bool = False):
    """An onnxruntime CPU session (a path or a ModelProto).

    high_precision_int8 sets session.x64quantprecision: on x86-64 without VNNI
    the default int8 kernels add pairs of u8 x s8 products in saturating 16-bit
    lanes, which can clip large accumulator terms; this option avoids that."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if high_precision_int8:
        options.add_session_config_entry("session.x64quantprecision", "1")
    source = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_update(sess, states: np.ndarray) -> np.ndarray:
    return sess.run([DX], {STATE: np.ascontiguousarray(states, np.float32)})[0]


def reference_deltas(params, grid_q: np.ndarray, torus: bool) -> np.ndarray:
    """cellsim.intspec's saturated int8 delta of every cell of an (H, W, C) int8 grid."""
    import importlib

    cell_update = importlib.import_module("cellsim.intspec.cell_update")
    grid_module = importlib.import_module("cellsim.intspec.sync_step")
    from cellsim.intspec import perceive, requantize
    from cellsim.intspec.requantize import saturate

    perception = perceive(grid_module.neighbourhoods(grid_q, torus))
    acc2 = cell_update.output_accumulators(params, cell_update.hidden_activations(params, perception))
    return saturate(requantize(acc2, params.m2, params.shift2))


def int8_agreement(sess, params, grids_q: np.ndarray, torus: bool) -> dict:
    """Feed dequantised int8 grids (B, C, H, W) -> compare dx / s_c with the
    reference delta in state steps. Reports the fraction of values within one
    step and exactly equal, over all cells and over cells with a live neighbour."""
    from cellsim.intspec.alive import is_alive

    grid_module = __import__("cellsim.intspec.sync_step", fromlist=["neighbourhoods"])
    scale = params.state_scale[None, :, None, None]
    dx = run_update(sess, np.asarray(grids_q, np.float32) * scale)
    got = dx / scale
    diffs, live_diffs = [], []
    for b, grid in enumerate(np.asarray(grids_q, np.int8)):
        cells = grid.transpose(1, 2, 0)
        expected = reference_deltas(params, cells, torus).astype(np.float64)
        diff = np.abs(got[b].transpose(1, 2, 0) - expected)
        alphas = grid_module.neighbourhoods(cells[..., 3:4], torus)[..., 0]
        live = is_alive(alphas.reshape(cells.shape[:2] + (9,)), params.alive_threshold)
        diffs.append(diff.reshape(-1))
        live_diffs.append(diff[live].reshape(-1))
    diff, live_diff = np.concatenate(diffs), np.concatenate(live_diffs)
    # 1e-3 of a step: the Mul by s_c and the division back are float32
    return {"values": int(diff.size), "within_one_step": float(np.mean(diff <= 1 + 1e-3)),
            "exact": float(np.mean(diff <= 1e-3)), "max_steps": float(diff.max()),
            "live_values": int(live_diff.size),
            "live_within_one_step": float(np.mean(live_diff <= 1 + 1e-3)) if live_diff.size else math.nan,
            "live_exact": float(np.mean(live_diff <= 1e-3)) if live_diff.size else math.nan}


def int8_trajectory_grids(params, height: int, width: int, fire_rate: float, torus: bool,
                          steps: int, count: int, seed: int = 0) -> np.ndarray:
    """(count, C, H, W) int8 grids the genome itself visits: growth from the seed,
    then regrowth after a circle cut halfway, sampled evenly over the run."""
    import torch

    from training.quantize import intsim
    from training.quantize.calibrate import circle_damage, fire_mask

    generator = torch.Generator().manual_seed(seed)
    torch_params = intsim.TorchIntParams.from_int_params(params)
    x = intsim.seed_states(params, 1, height, width, torch_params.dtype)
    keep = set(np.linspace(1, steps, count).round().astype(int).tolist())
    grids = []
    with torch.no_grad():
        for t in range(1, steps + 1):
            if t == steps // 2:
                x = circle_damage(x, generator)
            x = intsim.step(torch_params, x, fire_mask(generator, 1, height, width, fire_rate), torus)
            if t in keep:
                grids.append(x[0].numpy().astype(np.int8))
    return np.stack(grids)
