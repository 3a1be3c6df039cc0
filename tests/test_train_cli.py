"""`cellsim train` on the command line: a good run writes every artefact; each
kind of bad input gives one line on stderr, exit status 2 and no files."""
import pytest
import torch
from PIL import Image

from cellsim.cli import main
from cli_helpers import fails_cleanly
from training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = ["--size", "8", "--padding", "2", "--batch", "4", "--pool", "8", "--device", "cpu", "--no-progress"]


def test_a_small_run_writes_every_artefact_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--target", "fish", "--experiment", "persistent", "--iterations", "3",
                 "--out", str(out), *SMALL]) == 0
    assert "done: loss" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert names == {"checkpoint.pt", "metrics.csv", "loss.png", "pool.png", "growth.gif", "pool-0000003.pt"}
    with Image.open(out / "growth.gif") as gif:
        assert gif.n_frames > 100
    assert main(["train", "--out", str(out), "--resume", "--iterations", "5", "--no-progress"]) == 0
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["iteration"] == 5 and ckpt["config"]["target"] == "fish"
    assert ckpt["config"]["experiment"] == "persistent"


def test_a_user_png_is_a_target(tmp_path):
    png = tmp_path / "square.png"
    img = Image.new("RGBA", (30, 20), (0, 0, 0, 0))
    img.paste((200, 40, 40, 255), (5, 5, 25, 15))
    img.save(png)
    assert main(["train", "--target", str(png), "--experiment", "growing", "--iterations", "2",
                 "--out", str(tmp_path / "run"), *SMALL]) == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"]["target"] == str(png)


@pytest.mark.parametrize("argv, message", [
    (["--target", "lizzard"], "unknown emoji 'lizzard'"),
    (["--target", "missing.png"], "does not exist"),
    (["--iterations", "0"], "--iterations must be at least 1"),
    (["--iterations", "-5"], "--iterations must be at least 1"),
    (["--size", "3"], "--size must be at least"),
    (["--batch", "3", "--experiment", "regenerating"], "needs --batch > 3"),
    (["--pool", "2"], "must hold at least one batch"),
    (["--device", "tpu"], "unknown device"),
    (["--rotation", "nan"], "--rotation must be a finite"),
    (["--fresh-pool"], "--fresh-pool goes with --resume"),
])
def test_bad_options_fail_in_one_line_without_writing(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    fails_cleanly(capsys, ["train", "--iterations", "2", *SMALL, "--out", str(out), *argv], message, out)


def test_unreadable_and_tiny_images_are_refused(tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    fails_cleanly(capsys, ["train", "--target", str(text), "--out", str(tmp_path / "a"), *SMALL],
                  "not a readable image", tmp_path / "a")
    tiny = tmp_path / "tiny.png"
    Image.new("RGBA", (4, 4), (255, 0, 0, 255)).save(tiny)
    fails_cleanly(capsys, ["train", "--target", str(tiny), "--out", str(tmp_path / "b"), *SMALL], "at least 8x8",
                  tmp_path / "b")


def test_an_out_that_cannot_be_a_directory_is_refused(tmp_path, capsys):
    # A regular file in the way, rather than a read-only parent: root (as in CI)
    # may write into read-only directories, but not below a file.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "run", blocker / "deeper" / "run"):
        fails_cleanly(capsys, ["train", "--iterations", "1", "--out", str(out), *SMALL], "cannot create")
    assert blocker.read_text() == "x" and list(tmp_path.iterdir()) == [blocker]


def test_checkpoints_from_another_version_or_not_at_all_are_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    fails_cleanly(capsys, ["train", "--out", str(run), "--resume"], "does not exist")
    torch.save({"format": "cellsim-checkpoint", "version": 0}, run / "checkpoint.pt")
    fails_cleanly(capsys, ["train", "--out", str(run), "--resume"], "format version 0")
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    fails_cleanly(capsys, ["train", "--out", str(run), "--resume"], "not readable")
    fails_cleanly(capsys, ["train", "--out", str(run), "--iterations", "1", *SMALL], "already holds a checkpoint")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]


def test_resume_with_different_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--iterations", "1", "--out", str(out), *SMALL]) == 0
    capsys.readouterr()
    fails_cleanly(capsys, ["train", "--out", str(out), "--resume", "--target", "boom"], "target is 'lizard'")
