"""`cellsim genome info`: what it prints for a good genome, text and JSON, and the
one-line error with exit status 2 for every kind of bad file."""
import json
import subprocess
import sys

import pytest

from cellsim.cli import main
from cellsim.genome import save_genome
from cli_helpers import fails_cleanly
from strategies import random_genome


@pytest.fixture
def genome_file(tmp_path):
    genome = random_genome(11, name="lizard", target="lizard")
    path = tmp_path / "lizard.genome"
    save_genome(genome, path)
    return genome, path


def test_info_text(genome_file, capsys):
    genome, path = genome_file
    assert main(["genome", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "16 channels, 128 hidden units, 48 perception inputs" in out
    assert "8,336" in out
    assert "9,640 bytes, within the 10,240-byte ROM budget" in out
    assert f"0x{genome.crc32:08x}" in out
    assert genome.source_sha256.hex() in out
    assert "version 1" in out
    assert "lizard" in out


def test_info_json(genome_file, capsys):
    genome, path = genome_file
    assert main(["genome", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == info["target"] == "lizard"
    assert (info["channels"], info["hidden"], info["perception"]) == (16, 128, 48)
    assert info["parameter_count"] == 8336
    assert info["file_bytes"] == path.stat().st_size == 9640
    assert info["budget_bytes"] == 10240 and info["fits_budget"] is True
    assert info["crc32"] == f"0x{genome.crc32:08x}"
    assert info["source_sha256"] == genome.source_sha256.hex()
    assert info["format_version"] == 1
    assert info["state_scale"] == [float(s) for s in genome.params.state_scale]
    assert info["hidden_scale"] == genome.params.hidden_scale
    assert info["hidden_zero_point"] == genome.params.hidden_zero_point
    assert info["alive_threshold"] == genome.params.alive_threshold
    assert (info["grid_size"], info["fire_rate"], info["torus"]) == (
        genome.grid_size, genome.fire_rate, genome.torus)


def test_info_reports_a_model_over_budget(tmp_path, capsys):
    path = tmp_path / "big.genome"
    save_genome(random_genome(1, channels=16, hidden=160), path)
    assert main(["genome", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["file_bytes"] > 10240 and info["fits_budget"] is False
    main(["genome", "info", str(path)])
    assert "OVER the 10,240-byte ROM budget" in capsys.readouterr().out


@pytest.mark.parametrize("damage, message", [
    (lambda d: d[:100], "truncated: 100 bytes"),
    (lambda d: d[:10], "too short"),
    (lambda d: b"GIF8" + d[4:], "wrong magic"),
    (lambda d: d[:500] + bytes([d[500] ^ 0x40]) + d[501:], "CRC mismatch"),
    (lambda d: d + b"\0", "1 trailing bytes"),
    (lambda d: b"", "too short: 0 bytes"),
])
def test_bad_files_give_one_line_and_exit_2(genome_file, tmp_path, capsys, damage, message):
    _, path = genome_file
    bad = tmp_path / "bad.genome"
    bad.write_bytes(damage(path.read_bytes()))
    for extra in ([], ["--json"]):
        printed = fails_cleanly(capsys, ["genome", "info", str(bad), *extra], message)
        assert printed.out == "" and "bad.genome" in printed.err


def test_missing_file_and_directory(tmp_path, capsys):
    fails_cleanly(capsys, ["genome", "info", str(tmp_path / "none.genome")], "cannot read genome")
    fails_cleanly(capsys, ["genome", "info", str(tmp_path)], "cannot read genome")


def test_the_command_never_imports_torch(genome_file):
    _, path = genome_file
    code = ("import sys; from cellsim.cli import main; rc = main(['genome', 'info', sys.argv[1]]);"
            " assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert "9,640 bytes" in result.stdout


def test_info_and_header_give_both_sizes_and_say_what_each_counts(genome_file, tmp_path, capsys):
    """`genome info` and `cellsim header` once gave 9,640 and 9,488 bytes with no word
    on what either counts: both now print both figures from one function."""
    from cellsim.genome import GenomeBytes
    from firmware_gen.header import rom_arrays, rom_bytes

    genome, path = genome_file
    counts = genome.byte_counts
    # the ROM figure is the arrays the header defines, byte for byte
    assert counts.rom == rom_bytes(genome.params) == sum(
        array.nbytes for array in rom_arrays(genome.params).values()) == 9488
    assert counts.file == path.stat().st_size == 9640
    assert main(["genome", "info", str(path)]) == 0
    info = capsys.readouterr().out
    assert main(["header", str(path), "--out", str(tmp_path / "nca.h")]) == 0
    header = capsys.readouterr().out
    for text in (info, header):
        assert "9,488 bytes" in text and "9,640 bytes" in text
        assert GenomeBytes.ROM_COUNTS in text and GenomeBytes.FILE_COUNTS in text
    assert main(["genome", "info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rom_bytes"] == 9488
