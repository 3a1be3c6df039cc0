"""The float32 mode: its sync step equals training.model.CAModel.forward with the
same fire mask (within 1e-5); FloatParams reads interface 3's .npz."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsim.errors import CheckpointError, ConfigError
from cellsim.intspec import layout
from cellsim.sim import Grid, parse_damage, parse_fault
from cellsim.sim.floatmodel import FloatParams
from training.model import CAModel


def float_params(model: CAModel) -> FloatParams:
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return FloatParams(w1=sd["w1.weight"][:, :, 0, 0], b1=sd["w1.bias"],
                       w2=sd["w2.weight"][:, :, 0, 0], b2=sd["w2.bias"], angle=model.angle,
                       fire_rate=model.fire_rate, torus=model.torus)


def trained_looking_model(seed, angle=0.0, torus=False, hidden=32):
    torch.manual_seed(seed)
    model = CAModel(hidden=hidden, angle=angle, torus=torus)
    torch.nn.init.normal_(model.w2.weight, std=0.05)
    torch.nn.init.normal_(model.w2.bias, std=0.02)
    return model


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 1000), st.floats(-3.2, 3.2), st.booleans(), st.integers(4, 12))
def test_float_sync_step_equals_the_torch_step(seed, angle, torus, side):
    model = trained_looking_model(seed, angle, torus)
    grid = Grid(float_params(model), side, clock="sync", seed=seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 16, side, side, generator=generator) * 2 - 0.5
    x[:, 3] = torch.rand(1, side, side, generator=generator) * 0.3
    grid.set_states(x[0].permute(1, 2, 0).numpy())
    for step in range(4):
        counted = grid.ram[..., layout.COUNT].copy()
        grid.run(until=step + 1)
        mask = torch.from_numpy(grid.ram[..., layout.COUNT] != counted)[None, None]
        with torch.no_grad():
            x = model(x, fire_mask=mask)
        assert np.abs(x[0].permute(1, 2, 0).numpy() - grid.states()).max() < 1e-5


def test_float_async_grid_runs_with_faults_and_is_reproducible():
    params = float_params(trained_looking_model(3))
    runs = []
    for _ in range(2):
        grid = Grid(params, 12, seed=5)
        grid.plant_seed()
        grid.add_faults([parse_damage("half@4"), parse_fault("delay=1@1-6"),
                         parse_fault("kill:cell:1,1@2")])
        grid.run(until=8)
        runs.append(grid)
    assert np.array_equal(runs[0].states(), runs[1].states())
    assert runs[0].counts()["deliver"] > 0 and runs[0].dead()[1, 1]
    with pytest.raises(ConfigError, match="float model"):
        runs[0].add_faults([parse_fault("ramflip=1e-6@9-10")])


def test_float_params_load(tmp_path):
    params = float_params(trained_looking_model(1, angle=0.5, torus=True))
    path = tmp_path / "w.npz"
    np.savez(path, w1=params.w1, b1=params.b1, w2=params.w2, b2=params.b2,
             angle=np.array(0.5), fire_rate=np.array(0.5), torus=np.array(True))
    loaded = FloatParams.load(path)
    assert np.array_equal(loaded.w1, params.w1) and loaded.torus and loaded.angle == 0.5
    np.savez(tmp_path / "short.npz", w1=params.w1)
    with pytest.raises(CheckpointError, match="lacks"):
        FloatParams.load(tmp_path / "short.npz")
    np.savez(tmp_path / "shape.npz", w1=params.w1[:, :40], b1=params.b1, w2=params.w2,
             b2=params.b2, angle=np.array(0.0), fire_rate=np.array(0.5), torus=np.array(False))
    with pytest.raises(CheckpointError, match="shape"):
        FloatParams.load(tmp_path / "shape.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="cannot read"):
        FloatParams.load(tmp_path / "junk.npz")
