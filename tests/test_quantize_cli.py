"""`cellsim quantize` and `cellsim export` on the command line: outputs, printed
figures, and bad input turned into one line on stderr, exit 2, no file written."""
import hashlib
import json

import numpy as np
import pytest

from cellsim.cli import main
from cellsim.genome import MAX_GENOME_BYTES, load_genome
from cli_helpers import fails_cleanly
from test_quantize_support import tiny_checkpoint


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_quantize_writes_a_genome_and_prints_the_losses_side_by_side(tmp_path, capsys):
    ckpt = tiny_checkpoint()
    out, report = tmp_path / "lizard.genome", tmp_path / "report.json"
    code, text, _ = run_cli(capsys, "quantize", str(ckpt), "--out", str(out), "--qat-iterations", "2",
                            "--eval-batch", "2", "--no-progress", "--seed", "3",
                            "--report", str(report))
    assert code == 0
    data = json.loads(report.read_text())
    assert set(data["losses"]) == {"float", "ptq", "qat"} and data["chosen"] in ("ptq", "qat")
    assert data["genome_bytes"] == out.stat().st_size and data["qat_iterations"] == 2
    for name, losses in data["losses"].items():  # the printed table shows the same numbers
        row = next(line for line in text.splitlines() if line.startswith(
            {"float": "float32", "ptq": "int8 PTQ ", "qat": "int8 QAT ("}[name]))
        assert row.split()[-3:] == [f"{v:.6f}" for v in losses.values()]
    for row in ("float32", "int8 PTQ", "int8 QAT (2 it)", "int8 PTQ / float", "grown@24"):
        assert row in text
    genome = load_genome(out)
    assert genome.name == "lizard" and genome.target == "lizard"
    assert genome.grid_size == 18 and genome.fire_rate == 0.5 and not genome.torus
    assert genome.source_sha256 == hashlib.sha256(ckpt.read_bytes()).digest()
    assert out.stat().st_size == genome.size_bytes <= MAX_GENOME_BYTES
    assert f"{genome.size_bytes} bytes" in text
    # the training target's pixels are recorded beside the genome, exactly
    from cellsim.target_images import read_recorded_target
    from training.checkpoint import load_model

    recorded = tmp_path / "lizard.target.png"
    assert f"its training target in {recorded}" in text
    assert np.array_equal(read_recorded_target(recorded), load_model(ckpt)[1]["target"])
    assert main(["genome", "info", str(out)]) == 0
    assert f"lizard (pixels recorded in {recorded})" in capsys.readouterr().out


def test_quantize_is_reproducible_for_a_seed(tmp_path, capsys):
    ckpt = tiny_checkpoint()
    for name in ("a", "b"):
        code, _, _ = run_cli(capsys, "quantize", str(ckpt), "--out", str(tmp_path / name), "--eval-batch", "2",
                             "--no-progress", "--name", "my lizard")
        assert code == 0
    a, b = load_genome(tmp_path / "a"), load_genome(tmp_path / "b")
    assert a == b and a.name == "my lizard"


def test_genome_name_defaults_to_the_target():
    from cellsim.genome import genome_name

    assert genome_name(None, "lizard") == "lizard"
    assert genome_name(None, "/some/where/my_cat.png") == "my_cat"
    assert len(genome_name(None, "/x/" + "é" * 40 + ".png").encode("utf-8")) <= 64
    assert genome_name("Lizard v2", "lizard") == "Lizard v2"


@pytest.mark.parametrize("argv, message", [
    (["--qat-iterations", "-1"], "--qat-iterations"),
    (["--qat-lr", "nan"], "--qat-lr"),
    (["--eval-batch", "1"], "--eval-batch"),
    (["--qat-lr", "0"], "--qat-lr"),
    (["--name", "x" * 65], "--name"),
])
def test_quantize_rejects_bad_options(tmp_path, capsys, argv, message):
    out = tmp_path / "g.genome"
    fails_cleanly(capsys, ["quantize", str(tiny_checkpoint()), "--out", str(out), *argv], message, out)


def test_quantize_rejects_missing_corrupt_and_unwritable(tmp_path, capsys):
    out = tmp_path / "g.genome"
    fails_cleanly(capsys, ["quantize", str(tmp_path / "none.pt"), "--out", str(out)])
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(tiny_checkpoint().read_bytes()[:500])
    fails_cleanly(capsys, ["quantize", str(corrupt), "--out", str(out)], out=out)
    fails_cleanly(capsys, ["quantize", str(tiny_checkpoint()), "--out", str(tmp_path / "no" / "g")])
    assert list(tmp_path.iterdir()) == [corrupt]


def test_export_writes_float_int8_and_npz(tmp_path, capsys):
    ckpt = tiny_checkpoint()
    paths = {k: tmp_path / f"model.{k}" for k in ("onnx", "int8", "npz")}
    code, text, err = run_cli(capsys, "export", str(ckpt), "--onnx", str(paths["onnx"]), "--int8",
                              str(paths["int8"]), "--npz", str(paths["npz"]))
    assert code == 0 and all(p.exists() for p in paths.values())
    # it says what it is doing as each slow stage starts (it once ran 40 s in silence)
    lines = [line for line in text.splitlines() if line.startswith("[")]
    stages = [line.split("] ", 1)[1] for line in lines]
    assert [s.split()[0] for s in stages] == ["loading", "loading", "calibrating:", "writing",
                                              "post-training", "writing", "checking"]
    seconds = [float(line[1:].split(" s]")[0]) for line in lines]
    assert seconds == sorted(seconds) and err == ""
    quiet = run_cli(capsys, "export", str(ckpt), "--npz", str(paths["npz"]), "--no-progress")[1]
    assert quiet.startswith("wrote ") and "[" not in quiet
    assert "max |dx - model.update|" in text and "within one step" in text
    weights = np.load(paths["npz"])
    assert sorted(weights.files) == ["angle", "b1", "b2", "fire_rate", "torus", "w1", "w2"]
    assert weights["w1"].shape == (128, 48) and weights["w1"].dtype == np.float32
    assert weights["torus"].shape == () and not weights["torus"]


def test_export_int8_of_a_genome_checks_its_source(tmp_path, capsys):
    ckpt = tiny_checkpoint()
    genome = tmp_path / "g.genome"
    assert run_cli(capsys, "quantize", str(ckpt), "--out", str(genome), "--eval-batch", "2",
                   "--no-progress")[0] == 0
    code, text, _ = run_cli(capsys, "export", str(ckpt), "--int8", str(tmp_path / "g.onnx"),
                            "--genome", str(genome))
    assert code == 0 and f"genome {genome}" in text
    other = tmp_path / "other.pt"
    other.write_bytes(ckpt.read_bytes())
    with open(other, "ab") as f:  # same weights, another file: not the genome's source
        f.write(b"\0")
    fails_cleanly(capsys, ["export", str(other), "--int8", str(tmp_path / "h.onnx"), "--genome", str(genome)])


@pytest.mark.parametrize("argv", [[], ["--genome", "g.genome"], ["--onnx", "same", "--npz", "same"],
                                  ["--onnx", "m.onnx", "--threads", "0"]])
def test_export_rejects_bad_options(tmp_path, capsys, argv):
    fails_cleanly(capsys, ["export", str(tiny_checkpoint()), *argv])


def test_export_rejects_a_missing_checkpoint_and_writes_nothing(tmp_path, capsys):
    fails_cleanly(capsys, ["export", str(tmp_path / "none.pt"), "--onnx", str(tmp_path / "m.onnx")])
    assert not any(tmp_path.iterdir())
