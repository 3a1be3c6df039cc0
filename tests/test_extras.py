"""A command whose optional extra is not installed says which extra in one line,
exits 2 and prints no traceback. The missing package is simulated in a fresh
interpreter: sys.modules[NAME] = None makes every `import NAME` fail as if it
were not installed."""
import subprocess
import sys

import pytest

from cellsim.extras import extras_providing, missing_extra_message
from cellsim.pretrained import get_model

LIZARD_CKPT = str(get_model("lizard").checkpoint_path)


def run_without(blocked, argv):
    code = ("import sys\n"
            f"for name in {list(blocked)!r}:\n"
            "    sys.modules[name] = None\n"
            "from cellsim.cli import main\n"
            f"sys.exit(main({list(argv)!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("blocked, argv, extra", [
    (["torch"], ["train", "--preset", "quick", "--out", "{tmp}/t", "--no-progress"], "train"),
    (["matplotlib"], ["train", "--preset", "quick", "--out", "{tmp}/t", "--no-progress"],
     "train"),
    (["torch"], ["quantize", LIZARD_CKPT, "--out", "{tmp}/q.genome"], "train"),
    (["onnx"], ["export", LIZARD_CKPT, "--onnx", "{tmp}/m.onnx"], "onnx"),
    (["onnxruntime"], ["export", LIZARD_CKPT, "--onnx", "{tmp}/m.onnx"], "onnx"),
    (["distributed", "dask"], ["study", "{tmp}/spec.toml", "--out", "{tmp}/s"], "study"),
    (["matplotlib"], ["study", "{tmp}/spec.toml", "--out", "{tmp}/s"], "study"),
])
def test_a_missing_extra_is_one_line_naming_it(tmp_path, blocked, argv, extra):
    (tmp_path / "spec.toml").write_text('models = ["lizard"]\nseeds = 1\n')
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    result = run_without(blocked, argv)
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"cellsim {argv[0]}: error: needs {blocked[0]}"), err
    assert f"pip install 'cellsim[{extra}]'" in err
    assert not any(p.name in ("t", "s", "q.genome", "m.onnx") for p in tmp_path.iterdir())


def test_study_dry_run_and_example_need_no_dask(tmp_path):
    (tmp_path / "spec.toml").write_text('models = ["lizard"]\nseeds = 1\n')
    result = run_without(["distributed", "dask", "matplotlib"],
                         ["study", str(tmp_path / "spec.toml"), "--dry-run"])
    assert result.returncode == 0, result.stderr
    assert "1 runs" in result.stdout


def test_the_extra_comes_from_the_requirements_whatever_they_list():
    requirements = ['numpy>=1.26', 'starlette>=0.37; extra == "view"',
                    'matplotlib>=3.8; extra == "train"', 'matplotlib>=3.8; extra == "study"',
                    'cellsim[train,view]; extra == "all"', 'Pillow>=10; extra == "view"']
    assert extras_providing("starlette.routing", requirements) == ["view"]
    assert extras_providing("matplotlib.pyplot", requirements) == ["train", "study"]
    assert extras_providing("PIL", requirements) == ["view"]
    assert extras_providing("numpy", requirements) == []
    missing = ModuleNotFoundError("No module named 'starlette'", name="starlette")
    assert missing_extra_message(missing, "view", requirements) == (
        "needs starlette, which comes with the 'view' extra: pip install 'cellsim[view]'")
    # matplotlib is in two extras: the one named like the command wins
    plots = ModuleNotFoundError("x", name="matplotlib")
    assert "'study' extra" in missing_extra_message(plots, "study", requirements)
    assert "'train' extra" in missing_extra_message(plots, "bench", requirements)


def test_a_missing_module_of_our_own_is_a_bug_not_an_extra():
    ours = ModuleNotFoundError("x", name="training.trainer")
    assert missing_extra_message(ours, "train") is None
    unknown = ModuleNotFoundError("x", name="nosuchpackage")
    assert missing_extra_message(unknown, "train") is None


def test_the_installed_requirements_name_every_extra_the_commands_need():
    for module, extra in (("torch", "train"), ("onnxruntime", "onnx"), ("distributed", "study")):
        assert extra in extras_providing(module)
