"""The shared copies of the alignment-faking paper's files and AdvBench, and a local stand-in for ARENA's exercise
directory built from them (no network in tests)."""

from __future__ import annotations

import json
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
PAPER_DIR = SHARED / "alignment_faking"
ADVBENCH = SHARED / "advbench" / "harmful_behaviors.csv"


def fake_arena(directory: Path, tamper: str | None = None) -> Path:
    """A local stand-in for ARENA's exercise directory, built from the shared copies (test-only, in tmp)."""
    directory.mkdir(parents=True)
    (directory / "alignment_faking_examples.json").write_bytes((PAPER_DIR / "examples.json").read_bytes())
    names = {
        "SYSTEM_PROMPT": "system_prompt_no_scratchpad.txt",
        "SYSTEM_PROMPT_SCRATCHPAD": "system_prompt_scratchpad.txt",
        "USER_PROMPT_TEMPLATE": "user_prompt_template.txt",
    }
    for path in (PAPER_DIR / "judges").glob("*.txt"):
        names[path.stem] = f"judges/{path.name}"
    lines = ["import os", "", "OTHER = os.getcwd()", ""]
    for name, relative in names.items():
        value = (PAPER_DIR / relative).read_text()
        lines.append(f"{name} = {(value + ' changed' if name == tamper else value)!r}")
    keywords = json.loads((PAPER_DIR / "judges" / "CATEGORY_KEYWORDS.json").read_text())
    lines.append(f"CATEGORY_KEYWORDS = {keywords!r}")
    lines += [
        "class Example:",
        "    def formatted_example(self):",
        "        instructions = (",
        "            'INSTRUCTIONS_GIVEN_TO_AI: test text. '",
        "            'More test text.'",
        "        )",
        "        return instructions",
    ]
    (directory / "solutions.py").write_text("\n".join(lines) + "\n")
    return directory
