"""What the docs say about the README's commands is true of the README: a doc
once called `cellsim train --preset quick` the README's first command, long
after the README's first command had become `cellsim demo`."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_first_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(r"```\w*\n(.*?)```", text, re.S).group(1)


def test_what_a_doc_calls_the_readmes_first_command_is_in_its_first_block():
    first = readme_first_block()
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(r"README's first command", text):
            block = re.search(r"```\w*\n(.*?)```", text[match.end():], re.S)
            command = block.group(1).strip().splitlines()[0].split("#")[0].strip()
            assert command in first, f"{doc.name} calls {command!r} the README's first command"
    assert "cellsim demo" in first
