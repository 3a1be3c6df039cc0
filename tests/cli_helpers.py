"""The check the command-line tests make of bad input: `cellsim <command>` exits
with status 2, says why in one line on stderr without a traceback, and writes
nothing."""
from pathlib import Path

from cellsim.cli import main


def fails_cleanly(capsys, argv, message: str = "", out=None):
    """`cellsim` with `argv` (the command first) exits 2 with one line on stderr,
    `cellsim <command>: error: ...`, that contains `message`; `out`, when given,
    does not exist afterwards. Returns what was printed (.out, .err)."""
    assert main(list(argv)) == 2
    printed = capsys.readouterr()
    err = printed.err
    assert err.count("\n") == 1 and err.startswith(f"cellsim {argv[0]}: error: "), err
    assert "Traceback" not in err and message in err, err
    if out is not None:
        assert not Path(out).exists()
    return printed
