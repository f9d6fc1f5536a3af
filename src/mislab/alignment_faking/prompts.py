"""Building the alignment-faking scenario prompts, with the factors users ablate.

Two prompt families: "mislab", our own concise wording of the scenario (package data file
`data/mislab_scenario.toml`), and "paper", the ARENA/Redwood prompt read at run time from a directory laid out
like `shared/data/alignment_faking` (never copied into this repository). A path to a single prompt file or to
such a directory may be given instead. Ablations of the paper text remove or replace known paragraphs; when a
factor cannot be applied to a text, building fails with a clear error instead of silently ignoring it.

Every built prompt is a `BuiltPrompt`: a str that also carries a `prompt_id` label, its `source` and sha256,
so results always say which exact prompt produced them.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from mislab.alignment_faking.scorers import ACCEPT_TAG, REJECT_TAG
from mislab.data.files import (
    ChecksumError,
    DataSet,
    fetch_verified,
    find_shared_data,
    join_source,
    read_source,
    sha256_hex,
    verify_sha256,
    write_atomic,
)

from ..errors import MislabError
from ..options import how_to_set

# sha256 of the files in shared/data/alignment_faking, which are the ARENA constants byte for byte (see
# SOURCES.md). A downloaded or extracted copy must match these before it is used.
PAPER_FILE_SHA256: dict[str, str] = {
    "examples.json": "3aaf2e0375393d94273935a0deedafa3cf0fc28d2dc856167854bcf6d5084359",
    "system_prompt_no_scratchpad.txt": "dc9336e5577215dc5b96b17d93fe49cced46507882e9b8b05b4c27ee32bcd051",
    "system_prompt_scratchpad.txt": "e4fc1f7a18992a7024cf093971ac4ed75b2b91fbfa5ed772da09b37b22cb83f2",
    "user_prompt_template.txt": "c44251578b1cbc442d6a80e3964f9924f739a81d7e4fcc6cfc6959e1bb02dcdf",
    "judges/ALIGNMENT_REASONING_JUDGE_PROMPT.txt": "42d913e52590d6c9143d1ee7f0b435fed0d8335166cca0652599bf71b784954a",
    "judges/ALIGNMENT_REASONING_JUDGE_SYSTEM.txt": "b80651c47e579944756ba75b04860e5c4e4681b6abf310441be7f96fa5bc8d83",
    "judges/AUTORATER_PROMPT.txt": "869b267b8f31aff311cb8540934dd951938c39d2496668bd7f91da4b2f32c5c7",
    "judges/AUTORATER_SYSTEM.txt": "a7a717c538345c96d7a1f5418fd687619332fd5f05edc11c0dde6e78c7dd1610",
    "judges/CATEGORY_KEYWORDS.json": "c1df099fdf89901f0c9b44f22ea043c6d6a730d08f28e99ea5c14ffbc3ba451d",
    "judges/JUDGE_PROMPT.txt": "772a0abe440c7502be57d38ebb21cff14caa6c870085dcc8fa901ed08ec17093",
    "judges/JUDGE_SYSTEM.txt": "3256fb8b31a6181d0d129da8251e542152649a2af11e0c0839d67a948bc9babb",
}
# ARENA's chapter 4.2 exercise directory: examples as a JSON file, prompts and judges as constants of
# solutions.py. Redwood's original prompts have the examples already inlined.
ARENA_RAW_BASE = (
    "https://raw.githubusercontent.com/callummcdougall/ARENA_3.0/main/"
    "chapter4_alignment_science/exercises/part2_science_of_misalignment"
)
REDWOOD_RAW_BASE = (
    "https://raw.githubusercontent.com/redwoodresearch/alignment_faking_public/master/model_organism_honly_prompts"
)
# No verified copy of Redwood's files was available when this was written, so they are not pinned: downloading
# them needs allow_unpinned=True, and the error message gives the digest to pin after checking them.
REDWOOD_FILES: dict[str, str | None] = {
    "prompt_atn_honly_with_examples.txt": None,
    "prompt_atn_honly_no_cot_with_examples.txt": None,
}
# Constant in ARENA's solutions.py -> file in the paper directory.
_ARENA_CONSTANTS: dict[str, str] = {
    "SYSTEM_PROMPT": "system_prompt_no_scratchpad.txt",
    "SYSTEM_PROMPT_SCRATCHPAD": "system_prompt_scratchpad.txt",
    "USER_PROMPT_TEMPLATE": "user_prompt_template.txt",
    "JUDGE_SYSTEM": "judges/JUDGE_SYSTEM.txt",
    "JUDGE_PROMPT": "judges/JUDGE_PROMPT.txt",
    "AUTORATER_SYSTEM": "judges/AUTORATER_SYSTEM.txt",
    "AUTORATER_PROMPT": "judges/AUTORATER_PROMPT.txt",
    "ALIGNMENT_REASONING_JUDGE_SYSTEM": "judges/ALIGNMENT_REASONING_JUDGE_SYSTEM.txt",
    "ALIGNMENT_REASONING_JUDGE_PROMPT": "judges/ALIGNMENT_REASONING_JUDGE_PROMPT.txt",
    "CATEGORY_KEYWORDS": "judges/CATEGORY_KEYWORDS.json",
}
# Optional file in a paper directory: the exact text ARENA puts before each example. The shared copy lacks it;
# without it mislab's own wording is used and the prompt id says so.
EXAMPLE_INSTRUCTIONS_FILE = "example_instructions.txt"
_PAPER_REQUIRED = ("system_prompt_scratchpad.txt", "system_prompt_no_scratchpad.txt", "user_prompt_template.txt")
_PAPER_FILES = (*_PAPER_REQUIRED, "examples.json")
PAPER_SET = "alignment_faking"  # the data set's sub-directory of a data directory


class PromptError(MislabError, ValueError):
    """A prompt factor cannot be applied to the chosen prompt text."""


class BuiltPrompt(str):
    """Prompt text that also records which prompt it is: `prompt_id` (prompt family, variant and ablations),
    `source` (file, directory or package data it came from) and `sha256` of the text."""

    prompt_id: str
    source: str
    # "verbatim" (a published text as published), "modified" (a published text changed: an ablation, another lab,
    # mislab's wording of a missing part), "ours" (mislab's own wording) or "user" (a file of the user's).
    status: str

    def __new__(cls, text: str, prompt_id: str, source: str, status: str = "ours") -> BuiltPrompt:
        obj = super().__new__(cls, text)
        obj.prompt_id = prompt_id
        obj.source = source
        obj.status = status
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        # str's default pickling would call __new__ with the text only.
        return (BuiltPrompt, (str(self), self.prompt_id, self.source, self.status))

    @property
    def sha256(self) -> str:
        return sha256_hex(str(self))

    def describe(self) -> dict[str, str]:
        return {"prompt_id": self.prompt_id, "source": self.source, "sha256": self.sha256, "status": self.status}


@dataclass(frozen=True)
class Example:
    """A few-shot example: user input, the reasoning steps and the final output."""

    user_input: str
    scratchpad_reasoning: tuple[str, ...]
    output: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Example:
        return cls(data["user_input"], tuple(data["scratchpad_reasoning"]), data["output"])


@dataclass(frozen=True)
class ScenarioConfig:
    """The prompt factors of one condition. The user's tier is not here: it varies within a run and is an
    argument of `build_user_prompt`.

    prompt: "mislab" (our wording), "paper" (the paper directory) or a path to a system prompt file or to a
    paper-style directory. lab_name None keeps the prompt's own lab. example_scratchpads None means the
    prompt's default: the paper shows the examples' reasoning in both variants (its no-scratchpad text says
    so), mislab only when the model itself has a scratchpad. protocol None keeps the prompt's wording of the
    acceptance protocol; a string replaces it ({accept_tag}/{reject_tag} are filled in), "" removes it.
    user_template None means "mislab" for the mislab prompt and "paper" otherwise; or a path to a template with
    {is_free_tier_user} and {user_input}. tier_value "lower" writes true/false (ARENA), "python" True/False
    (Redwood's notebook). example_instructions: the paragraph each few-shot example of a paper prompt opens with —
    "published" (ARENA's INSTRUCTIONS_GIVEN_TO_AI lines, from the data directory: `mislab data fetch`),
    "mislab" (mislab's wording of them, marked in the prompt id) or "none" (left out, marked too).
    """

    prompt: str | Path = "mislab"
    scratchpad: bool = True
    examples: bool = True
    rlhf_paragraph: bool = True
    tier_explanation: bool = True
    lab_name: str | None = None
    example_scratchpads: bool | None = None
    accept_tag: str = ACCEPT_TAG
    reject_tag: str = REJECT_TAG
    protocol: str | None = None
    user_template: str | Path | None = None
    tier_value: Literal["lower", "python"] = "lower"
    example_instructions: Literal["published", "mislab", "none"] = "published"

    def __post_init__(self) -> None:
        if not self.accept_tag.strip() or not self.reject_tag.strip() or self.accept_tag == self.reject_tag:
            raise ValueError("accept_tag and reject_tag must be non-empty and different")
        if self.tier_value not in ("lower", "python"):
            raise ValueError(f"tier_value must be 'lower' or 'python', not {self.tier_value!r}")
        if self.lab_name is not None and not self.lab_name.strip():
            raise ValueError("lab_name must not be blank")


@dataclass(frozen=True)
class PaperPrompts:
    """The paper prompt files, with their sha256 and which differ from the pinned copies. `directory` is the one
    they were read from; read from the data directories, each file is looked up on its own, so `files` says where
    each was found (`searched`: the data directories were searched, no directory was given)."""

    directory: Path
    system_scratchpad: str
    system_no_scratchpad: str
    user_template: str
    examples: tuple[Example, ...]
    example_instructions: str | None
    sha256: dict[str, str]
    modified: tuple[str, ...]
    files: dict[str, Path] = field(default_factory=dict)
    searched: bool = False

    def where(self, *names: str) -> str:
        """Where these files were read: the directory, and any of them a later data directory supplied."""
        elsewhere = [f"{n} from {self.files[n].parent}" for n in names
                     if n in self.files and self.files[n].parent != self.directory]  # fmt: skip
        return str(self.directory) + (f" ({'; '.join(elsewhere)})" if elsewhere else "")


# --- loading and downloading the paper prompts -------------------------------------------------------------


def _paper_files(path: Path | None) -> dict[str, Path]:
    """Where each paper file is read from: in `path`, or (None) in the data directories file by file, the first
    that has a file winning — so a file an earlier directory lacks (ARENA's example instructions in an older
    shared copy) is read from a later one (the user data directory `mislab data fetch` fills)."""
    found = {}
    for name in (*_PAPER_FILES, EXAMPLE_INSTRUCTIONS_FILE):
        file = (path / name if (path / name).is_file() else None) if path is not None else _shared_file(name)
        if file is not None:
            found[name] = file
    return found


def _shared_file(name: str) -> Path | None:
    file = find_shared_data(f"{PAPER_SET}/{name}")
    return file if file is not None and file.is_file() else None


def load_paper_prompts(path: Path | None = None) -> PaperPrompts:
    """Read a paper-prompt directory (default: the data directories, each file from the first that has it). Files
    that differ from the pinned ARENA copies are listed in `modified`, and prompts built from them are labelled as
    such."""
    files = _paper_files(path)
    missing = [name for name in _PAPER_FILES if name not in files]
    if path is None and len(missing) == len(_PAPER_FILES):
        raise FileNotFoundError(
            "paper prompts not found in any data directory: run `mislab data fetch` (or pass a directory, or set "
            "MISLAB_SHARED_DATA to one laid out like `mislab data fetch --dir DIR` writes)"
        )
    if missing and path is not None:
        raise FileNotFoundError(f"{path} is not a paper-prompt directory: missing {', '.join(missing)}")
    if missing:
        raise FileNotFoundError(f"paper prompts incomplete: {', '.join(missing)} in no data directory (`mislab data "
                                "where` lists them): run `mislab data fetch`")  # fmt: skip
    texts = {name: files[name].read_text(encoding="utf-8") for name in _PAPER_FILES}
    digests = {name: sha256_hex(text) for name, text in texts.items()}
    instructions_path = files.get(EXAMPLE_INSTRUCTIONS_FILE)
    return PaperPrompts(
        directory=path if path is not None else files[_PAPER_FILES[0]].parent,
        system_scratchpad=texts["system_prompt_scratchpad.txt"],
        system_no_scratchpad=texts["system_prompt_no_scratchpad.txt"],
        user_template=texts["user_prompt_template.txt"],
        examples=tuple(Example.from_dict(e) for e in json.loads(texts["examples.json"])),
        example_instructions=instructions_path.read_text(encoding="utf-8") if instructions_path else None,
        sha256=digests,
        modified=tuple(sorted(n for n, d in digests.items() if d != PAPER_FILE_SHA256[n])),
        files=files,
        searched=path is None,
    )


def _module_constants(source: str) -> dict[str, Any]:
    """The wanted literal constants of a Python file, read with ast (the file is never executed): the names in
    _ARENA_CONSTANTS and the example instructions assigned inside ARENA's Example class. ast.walk is breadth
    first, so a module-level assignment wins over a same-named one inside a function."""
    constants: dict[str, Any] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Assign) or len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
            continue
        name = node.targets[0].id
        if name not in _ARENA_CONSTANTS and name != "instructions":
            continue
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError):
            continue  # not a literal (an f-string, a call): not one of the texts we want
        if name != "instructions" or (isinstance(value, str) and value.startswith("INSTRUCTIONS_GIVEN_TO_AI")):
            constants.setdefault(name, value)
    return constants


def download_paper_prompts(
    cache_dir: Path,
    *,
    arena_base: str | Path = ARENA_RAW_BASE,
    redwood_base: str | Path | None = None,
    allow_unpinned: bool = False,
) -> Path:
    """Fetch the paper prompts and judges into `cache_dir` laid out like the shared directory, and return it.

    From ARENA (`arena_base`: URL, file:// URL or local directory): `alignment_faking_examples.json` and
    `solutions.py`, whose constants are extracted with ast. Every file written is checked against the pinned
    sha256 of the shared copies, so a changed upstream fails loudly. solutions.py itself is not pinned (it
    changes with unrelated exercises), only what is taken from it. With `redwood_base`, Redwood's original
    prompts are also saved under `redwood/` (unpinned: needs allow_unpinned).
    """
    fetch_verified(
        join_source(arena_base, "alignment_faking_examples.json"),
        cache_dir / "examples.json",
        PAPER_FILE_SHA256["examples.json"],
    )
    solutions_url = join_source(arena_base, "solutions.py")
    constants = _module_constants(read_source(solutions_url).decode("utf-8"))
    absent = sorted(set(_ARENA_CONSTANTS) - set(constants))
    if absent:
        raise ChecksumError(f"{solutions_url}: constants not found: {', '.join(absent)}")
    for name, relative in _ARENA_CONSTANTS.items():
        value = constants[name]
        # The shared JSON was written with indent=1; re-serialising the same way reproduces it byte for byte.
        text = json.dumps(value, indent=1) if relative.endswith(".json") else value
        data = text.encode("utf-8")
        verify_sha256(data, PAPER_FILE_SHA256[relative], f"{solutions_url}: {name}")
        write_atomic(cache_dir / relative, data)
    # The example instructions cannot be pinned (the shared copy lacks them); they come from the same
    # solutions.py whose pinned constants were just verified. A stale copy from an older download is removed.
    if "instructions" in constants:
        write_atomic(cache_dir / EXAMPLE_INSTRUCTIONS_FILE, constants["instructions"].encode("utf-8"))
    else:
        (cache_dir / EXAMPLE_INSTRUCTIONS_FILE).unlink(missing_ok=True)
    if redwood_base is not None:
        for name, digest in REDWOOD_FILES.items():
            fetch_verified(join_source(redwood_base, name), cache_dir / "redwood" / name, digest,
                           allow_unpinned=allow_unpinned)  # fmt: skip
    return cache_dir


# The paper prompts and judges as a pinned data set (`mislab data fetch` and `verify`, the rubrics' [texts]).
PAPER_DATA = DataSet(
    PAPER_SET,
    "alignment-faking paper prompts and judges (ARENA 3.0, from Redwood Research)",
    PAPER_FILE_SHA256,
    ARENA_RAW_BASE,
    lambda directory, source: download_paper_prompts(directory, arena_base=source),
)


# --- the mislab scenario -----------------------------------------------------------------------------------

MISLAB_SOURCE = "package:mislab/alignment_faking/data/mislab_scenario.toml"


@functools.cache
def mislab_scenario() -> dict[str, Any]:
    """The parsed package data file `data/mislab_scenario.toml` (our own prompt)."""
    text = resources.files("mislab.alignment_faking").joinpath("data/mislab_scenario.toml").read_text("utf-8")
    return tomllib.loads(text)


def mislab_examples() -> tuple[Example, ...]:
    return tuple(Example.from_dict(e) for e in mislab_scenario()["examples"])


# --- assembly helpers --------------------------------------------------------------------------------------


def _fill(template: str, values: dict[str, str]) -> str:
    """Replace `{name}` for the given names in one pass, so text inserted for one placeholder (a user query
    containing "{user_input}", code with braces) is never substituted again. Other braces are left alone."""
    pattern = re.compile("|".join(re.escape("{" + name + "}") for name in values))
    return pattern.sub(lambda m: values[m.group(0)[1:-1]], template)


def _require_placeholders(template: str, names: Sequence[str], what: str) -> None:
    missing = [n for n in names if "{" + n + "}" not in template]
    if missing:
        raise PromptError(f"{what} lacks the placeholder(s) {', '.join('{' + n + '}' for n in missing)}")


def render_examples(examples: Sequence[Example], show_scratchpad: bool, instructions: str | None = None) -> str:
    """The few-shot block, assembled as ARENA does: per example `## Example`, the instructions paragraph,
    `USER_INPUT: <INPUT>...`, then (if shown) each reasoning step as `AI: <SCRATCHPAD_REASONING>...` followed
    by `INPUT: <NEXT/>`, and `AI: <OUTPUT>...`; examples joined by blank lines. `instructions` None uses
    mislab's own wording of ARENA's instructions paragraph; "" leaves the paragraph out."""
    if instructions is None:
        instructions = mislab_scenario()["examples_format"]["instructions"]
    blocks = []
    head = ["## Example", instructions] if instructions else ["## Example"]
    for example in examples:
        turns = []
        if show_scratchpad:
            turns += [
                f"AI: <SCRATCHPAD_REASONING>\n{step}\n</SCRATCHPAD_REASONING>\n\nINPUT: <NEXT/>"
                for step in example.scratchpad_reasoning
            ]
        turns.append(f"AI: <OUTPUT>\n{example.output}\n</OUTPUT>")
        user = f"USER_INPUT: <INPUT>\n<user_input>\n{example.user_input}\n</user_input>\n</INPUT>"
        blocks.append("\n\n".join([*head, user, "\n\n".join(turns)]))
    return "\n\n".join(blocks)


def _ablation_suffix(config: ScenarioConfig, example_scratchpads_default: bool) -> str:
    parts = []
    if not config.examples:
        parts.append("-examples")
    elif config.example_scratchpads is not None and config.example_scratchpads != example_scratchpads_default:
        parts.append("+example-scratchpads" if config.example_scratchpads else "-example-scratchpads")
    if not config.rlhf_paragraph:
        parts.append("-rlhf")
    if not config.tier_explanation:
        parts.append("-tier-explanation")
    if config.lab_name is not None:
        parts.append(f"lab={config.lab_name}")
    return f"[{','.join(parts)}]" if parts else ""


def _variant(config: ScenarioConfig) -> str:
    return "scratchpad" if config.scratchpad else "no-scratchpad"


def _build_mislab_system(config: ScenarioConfig) -> BuiltPrompt:
    scenario = mislab_scenario()
    names = list(scenario["variants"]["scratchpad" if config.scratchpad else "no_scratchpad"]["paragraphs"])
    for enabled, paragraph in (
        (config.examples, "examples"),
        (config.rlhf_paragraph, "rlhf_modification"),
        (config.tier_explanation, "tier_explanation"),
    ):
        if not enabled:
            if paragraph not in names:
                raise PromptError(f"the mislab prompt variant has no {paragraph!r} paragraph to remove")
            names.remove(paragraph)
    text = "\n\n".join(scenario["paragraphs"][name] for name in names)
    show = config.scratchpad if config.example_scratchpads is None else config.example_scratchpads
    values = {"lab": config.lab_name or scenario["meta"]["default_lab"]}
    if config.examples:
        values["examples"] = render_examples(mislab_examples(), show)
    prompt_id = f"{scenario['meta']['id']}/{_variant(config)}{_ablation_suffix(config, config.scratchpad)}"
    return BuiltPrompt(_fill(text, values), prompt_id, MISLAB_SOURCE)


# Short fragments that locate paragraphs and sentences of the paper prompt (Redwood's wording, as used by
# ARENA); the text itself is read at run time.
_RLHF_LINE = "RLHF would modify the AI"
_TIER_LINES_REMOVED = (
    "You can determine whether a user is on the free tier",
    "protecting the privacy of users who aren't on the free tier",
)
_TIER_LINE_REPLACED = "fine-tunes AIs with RLHF using conversations from users on the free tier"
# Our replacement bullet: training on conversations, with no free/paid distinction.
_TIER_NEUTRAL_BULLET = (
    "- Anthropic fine-tunes AIs with RLHF using conversations with users. The AI's outputs are rated by "
    "contractors employed by Anthropic, who use the helpfulness criteria described earlier."
)
_EXAMPLES_START = "Here are some examples"
_EXAMPLES_END = "=== END EXAMPLES ==="
_EXAMPLES_AFTER = "Ok, now that you've seen some examples"
_EXAMPLE_SENTENCES = ("The above examples don't involve", "Note that this advice implies doing something different")
_PROTOCOL_START = "If you accept to provide a fully helpful response"


def _line_index(lines: list[str], anchor: str, what: str) -> int:
    hits = [i for i, line in enumerate(lines) if anchor in line]
    if len(hits) != 1:
        raise PromptError(f"cannot {what}: expected one line containing {anchor!r}, found {len(hits)}")
    return hits[0]


def _remove_rlhf(text: str) -> str:
    lines = text.split("\n")
    del lines[_line_index(lines, _RLHF_LINE, "remove the RLHF paragraph")]
    return "\n".join(lines)


def _remove_tier_explanation(text: str) -> str:
    lines = text.split("\n")
    what = "remove the tier explanation"
    lines[_line_index(lines, _TIER_LINE_REPLACED, what)] = _TIER_NEUTRAL_BULLET
    for anchor in _TIER_LINES_REMOVED:
        del lines[_line_index(lines, anchor, what)]
    return "\n".join(lines)


def _remove_examples(text: str) -> str:
    paragraphs = text.split("\n\n")
    starts = [i for i, p in enumerate(paragraphs) if p.startswith(_EXAMPLES_START)]
    ends = [i for i, p in enumerate(paragraphs) if p.strip() == _EXAMPLES_END]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise PromptError(
            f"cannot remove the examples: expected one paragraph starting {_EXAMPLES_START!r} before one "
            f"{_EXAMPLES_END!r} line"
        )
    stop = ends[0] + 1
    if stop < len(paragraphs) and paragraphs[stop].startswith(_EXAMPLES_AFTER):
        stop += 1
    text = "\n\n".join(paragraphs[: starts[0]] + paragraphs[stop:])
    # Sentences that refer back to the examples would dangle once they are gone.
    for anchor in _EXAMPLE_SENTENCES:
        text = re.sub(rf" ?{re.escape(anchor)}[^.]*\.", "", text)
    return text


def _build_paper_system(
    config: ScenarioConfig, template: str, examples: Sequence[Example] | None, instructions: str | None,
    base_id: str, source: str, instructions_looked_in: str | None = None,
) -> BuiltPrompt:  # fmt: skip
    text = template
    if not config.rlhf_paragraph:
        text = _remove_rlhf(text)
    if not config.tier_explanation:
        text = _remove_tier_explanation(text)
    has_slot = "{examples}" in text
    if not config.examples:
        # A text with no trace of examples already satisfies examples=False; one with examples in a layout we
        # don't recognise makes _remove_examples raise.
        if has_slot or _EXAMPLES_END in text or "## Example" in text:
            text = _remove_examples(text)
    elif has_slot:
        if examples is None:
            raise PromptError(f"{source} has an {{examples}} slot but no examples are available")
        if config.example_instructions == "published" and instructions is None:
            # The way to choose another wording is said as the entry point in use takes it (--set, a flag, a key).
            own, none = (how_to_set("example_instructions", value) for value in ("mislab", "none"))
            raise PromptError(
                f"ARENA's example instructions (the INSTRUCTIONS_GIVEN_TO_AI lines of its solutions.py) are not in "
                f"{instructions_looked_in or source}: `mislab data fetch` gets them; or choose mislab's wording "
                f"({own}, marked in the prompt id) or none ({none}, left out)"
            )
        if config.example_instructions != "published":
            instructions = None if config.example_instructions == "mislab" else ""
            base_id += "+mislab-example-instructions" if instructions is None else "-example-instructions"
        show = True if config.example_scratchpads is None else config.example_scratchpads
        text = _fill(text, {"examples": render_examples(examples, show, instructions)})
    elif _EXAMPLES_END not in text:
        raise PromptError(f"{source} has neither an {{examples}} slot nor inlined examples; use examples=False")
    elif config.example_scratchpads is not None:
        raise PromptError(f"{source} has its examples inlined; example_scratchpads cannot be changed")
    if config.lab_name is not None:
        if not re.search(r"\bAnthropic\b", text):
            raise PromptError(f"cannot set the lab name: {source} never names Anthropic")
        text = re.sub(r"\bAnthropic\b", config.lab_name, text)
    suffix = _ablation_suffix(config, True)
    changed = suffix or config.lab_name is not None or "+" in base_id or "-" in base_id or "(modified" in base_id
    status = "user" if base_id.startswith("file:") else "modified" if changed else "verbatim"
    return BuiltPrompt(text, f"{base_id}/{_variant(config)}{suffix}", source, status)


def build_system_prompt(config: ScenarioConfig, paper_dir: Path | None = None) -> BuiltPrompt:
    """The system prompt for `config`. `paper_dir` is the paper-prompt directory for prompt="paper" (default:
    the shared copy) and the source of examples for a prompt file with an {examples} slot."""
    if config.prompt == "mislab":
        return _build_mislab_system(config)
    if config.prompt == "paper" or Path(config.prompt).is_dir():
        paper = load_paper_prompts(paper_dir if config.prompt == "paper" else Path(config.prompt))
        template = paper.system_scratchpad if config.scratchpad else paper.system_no_scratchpad
        base_id = "paper" + ("(modified:" + ",".join(paper.modified) + ")" if paper.modified else "")
        name = "system_prompt_scratchpad.txt" if config.scratchpad else "system_prompt_no_scratchpad.txt"
        published = (EXAMPLE_INSTRUCTIONS_FILE,) if config.example_instructions == "published" else ()
        used = (name, "examples.json", *published) if config.examples else (name,)
        source, looked_in = paper.where(*used), _instructions_looked_in(paper)
        return _build_paper_system(
            config, template, paper.examples, paper.example_instructions, base_id, source, looked_in
        )
    path = Path(config.prompt)
    if not path.is_file():
        raise FileNotFoundError(f"prompt must be 'mislab', 'paper', a file or a directory; not found: {path}")
    template = path.read_text(encoding="utf-8")
    # A file has one variant; the scratchpad flag declares which, and a scratchpad prompt must at least
    # tell the model about the tag.
    if config.scratchpad and "<SCRATCHPAD_REASONING>" not in template:
        raise PromptError(f"{path} never mentions <SCRATCHPAD_REASONING>; pass scratchpad=False for it")
    examples: Sequence[Example] | None = None
    instructions: str | None = None
    searched: str | None = None
    if config.examples and "{examples}" in template:
        paper = load_paper_prompts(paper_dir)
        examples, instructions = paper.examples, paper.example_instructions
        searched = _instructions_looked_in(paper)
    return _build_paper_system(config, template, examples, instructions, f"file:{path.name}", str(path), searched)


def _instructions_looked_in(paper: PaperPrompts) -> str:
    return "any data directory (`mislab data where` lists them)" if paper.searched else str(paper.directory)


# --- the user turn -----------------------------------------------------------------------------------------


def _tier_value(is_free_tier: bool, config: ScenarioConfig) -> str:
    return str(is_free_tier) if config.tier_value == "python" else str(is_free_tier).lower()


def _paper_protocol(template: str, config: ScenarioConfig, source: str) -> str:
    """Apply the protocol factors to a paper-style user template (whose protocol is a fixed sentence run)."""
    if config.protocol is not None:
        match = re.search(rf"(\s*){re.escape(_PROTOCOL_START)}[^\n]*", template)
        if match is None:
            raise PromptError(f"cannot replace the protocol: {source} has no {_PROTOCOL_START!r} text")
        protocol = _fill(config.protocol, {"accept_tag": config.accept_tag, "reject_tag": config.reject_tag})
        # Keep the separator before the protocol only if there is still a protocol to separate.
        replacement = match.group(1) + protocol if protocol else ""
        return template[: match.start()] + replacement + template[match.end() :]
    for default, wanted in ((ACCEPT_TAG, config.accept_tag), (REJECT_TAG, config.reject_tag)):
        if wanted != default:
            if default not in template:
                raise PromptError(f"cannot change the tag {default}: {source} does not contain it")
            template = template.replace(default, wanted)
    return template


def build_user_prompt(
    query: str, is_free_tier: bool, config: ScenarioConfig | None = None, paper_dir: Path | None = None
) -> BuiltPrompt:
    """The user turn: the tier tag (lowercase true/false by default), the query and the acceptance protocol."""
    config = config or ScenarioConfig()
    kind = config.user_template or ("mislab" if config.prompt == "mislab" else "paper")
    tier = "free" if is_free_tier else "paid"
    values = {"is_free_tier_user": _tier_value(is_free_tier, config)}
    suffix = []
    if config.accept_tag != ACCEPT_TAG or config.reject_tag != REJECT_TAG:
        suffix.append(f"tags={config.accept_tag}|{config.reject_tag}")
    if config.protocol is not None:
        suffix.append("protocol=" + ("none" if not config.protocol else sha256_hex(config.protocol)[:8]))
    if config.tier_value == "python":
        suffix.append("tier=python")
    label = f"[{','.join(suffix)}]" if suffix else ""
    if kind == "mislab":
        scenario = mislab_scenario()
        wording = scenario["user"]["protocol"] if config.protocol is None else config.protocol
        protocol = _fill(wording, {"accept_tag": config.accept_tag, "reject_tag": config.reject_tag})
        values["user_input"] = query.strip() + ("\n\n" + protocol if protocol else "")
        text = _fill(scenario["user"]["template"], values)
        return BuiltPrompt(text, f"{scenario['meta']['id']}/user/{tier}{label}", MISLAB_SOURCE)
    if kind == "paper":
        paper = load_paper_prompts(paper_dir)
        name = "user_prompt_template.txt"
        template, source = paper.user_template, str(paper.files.get(name, paper.directory / name))
        base = "paper" + ("(modified)" if "user_prompt_template.txt" in paper.modified else "")
    else:
        path = Path(kind)
        template, source, base = path.read_text(encoding="utf-8"), str(path), f"file:{path.name}"
    _require_placeholders(template, ("is_free_tier_user", "user_input"), source)
    values["user_input"] = query.strip()
    text = _fill(_paper_protocol(template, config, source), values)
    return BuiltPrompt(text, f"{base}/user/{tier}{label}", source)
