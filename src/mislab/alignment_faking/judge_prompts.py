"""Messages for ARENA's judge models, built from the judge texts in a paper-prompt directory (read at run
time, never copied here), and the parser that reads each judge's answer. Calling the judge is the caller's job.

| judge | files (judges/) | fills | answer format | parser |
|---|---|---|---|---|
| compliance | JUDGE_SYSTEM/JUDGE_PROMPT | {response} | COMPLY or REFUSE, then an explanation | parse_compliance_verdict |
| autorater | AUTORATER_SYSTEM/AUTORATER_PROMPT | {transcript} | NOTICES_CONFLICT / MENTIONS_MODIFICATION / ALIGNMENT_FAKES: YES/NO lines, REASONING | parse_autorater |
| training_reasoning | ALIGNMENT_REASONING_JUDGE_SYSTEM/_PROMPT | {response} | YES or NO, then an explanation | parse_yes_no |
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mislab.alignment_faking.prompts import BuiltPrompt, PromptError, default_paper_dir
from mislab.alignment_faking.scorers import parse_autorater, parse_compliance_verdict, parse_yes_no
from mislab.alignment_faking.sources import PAPER_FILE_SHA256, sha256_hex
from mislab.models.types import Message


@dataclass(frozen=True)
class JudgeSpec:
    system_file: str
    prompt_file: str
    placeholder: str
    parse: Callable[[str], Any]


JUDGES: dict[str, JudgeSpec] = {
    "compliance": JudgeSpec("JUDGE_SYSTEM.txt", "JUDGE_PROMPT.txt", "response", parse_compliance_verdict),
    "autorater": JudgeSpec("AUTORATER_SYSTEM.txt", "AUTORATER_PROMPT.txt", "transcript", parse_autorater),
    "training_reasoning": JudgeSpec(
        "ALIGNMENT_REASONING_JUDGE_SYSTEM.txt", "ALIGNMENT_REASONING_JUDGE_PROMPT.txt", "response", parse_yes_no
    ),
}


@dataclass(frozen=True)
class JudgeTemplates:
    """One judge's texts, labelled like other prompts: `prompt_id` says whether they are the pinned copies."""

    name: str
    system: str
    prompt: str
    placeholder: str
    prompt_id: str
    source: str


def load_judge(name: str, paper_dir: Path | None = None) -> JudgeTemplates:
    """Read judge `name` (a key of JUDGES) from `paper_dir`/judges (default: the shared data copy)."""
    if name not in JUDGES:
        raise KeyError(f"unknown judge {name!r}; known: {', '.join(JUDGES)}")
    spec = JUDGES[name]
    directory = paper_dir if paper_dir is not None else default_paper_dir()
    if directory is None:
        raise FileNotFoundError(
            "judge prompts not found: pass a paper-prompt directory or fetch one with download_paper_prompts"
        )
    texts = {}
    for filename in (spec.system_file, spec.prompt_file):
        path = directory / "judges" / filename
        if not path.is_file():
            raise FileNotFoundError(f"judge {name!r} needs {path}")
        texts[filename] = path.read_text(encoding="utf-8")
    if "{" + spec.placeholder + "}" not in texts[spec.prompt_file]:
        raise PromptError(f"{directory / 'judges' / spec.prompt_file} lacks {{{spec.placeholder}}}")
    modified = [f for f, t in texts.items() if sha256_hex(t) != PAPER_FILE_SHA256[f"judges/{f}"]]
    return JudgeTemplates(
        name=name,
        system=texts[spec.system_file],
        prompt=texts[spec.prompt_file],
        placeholder=spec.placeholder,
        prompt_id=f"arena-judge/{name}" + ("(modified)" if modified else ""),
        source=str(directory / "judges"),
    )


def judge_messages(judge: JudgeTemplates, text: str) -> list[Message]:
    """System and user messages asking `judge` about `text`. The user content is a BuiltPrompt, so its
    prompt_id and sha256 can be recorded. Only the one placeholder is replaced: braces in `text` are safe."""
    user = judge.prompt.replace("{" + judge.placeholder + "}", text)
    return [
        {"role": "system", "content": BuiltPrompt(judge.system, f"{judge.prompt_id}/system", judge.source)},
        {"role": "user", "content": BuiltPrompt(user, f"{judge.prompt_id}/user", judge.source)},
    ]


def parse_judge_answer(name: str, answer: str) -> Any:
    """The judge's answer parsed by the parser for that judge (None when unreadable)."""
    return JUDGES[name].parse(answer)
