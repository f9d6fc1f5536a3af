"""Alignment-faking prompts and queries: every ablation factor changes the text it should, prompts say which
prompt they are, the paper prompt loads from the shared data, downloads are checked by sha256 (from local
files only: no network), and query sampling is deterministic."""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path

import pytest

from mislab.alignment_faking.prompts import (
    PAPER_FILE_SHA256,
    BuiltPrompt,
    PromptError,
    ScenarioConfig,
    build_system_prompt,
    build_user_prompt,
    download_paper_prompts,
    load_paper_prompts,
    mislab_examples,
    mislab_scenario,
    render_examples,
)
from mislab.alignment_faking.queries import (
    ADVBENCH_SHA256,
    DEMO_QUERIES,
    download_advbench,
    load_advbench,
    load_queries,
    sample_queries,
)
from mislab.data.files import ChecksumError

from support.arena import ADVBENCH, PAPER_DIR, fake_arena

PROMPTS = ("mislab", "paper")


def _build(prompt: str, **factors: object) -> BuiltPrompt:
    # The shared copy has no ARENA example instructions: the paper prompt's examples take mislab's wording.
    if prompt == "paper":
        factors.setdefault("example_instructions", "mislab")
    return build_system_prompt(ScenarioConfig(prompt=prompt, **factors), paper_dir=PAPER_DIR)  # type: ignore[arg-type]


# --- paper prompt loading -------------------------------------------------------------------------------


def test_shared_paper_prompts_load_unmodified() -> None:
    paper = load_paper_prompts(PAPER_DIR)
    assert paper.modified == ()
    assert len(paper.examples) == 2 and paper.examples[0].scratchpad_reasoning
    assert "{examples}" in paper.system_scratchpad and "{examples}" in paper.system_no_scratchpad
    assert load_paper_prompts().directory.resolve() == PAPER_DIR.resolve()  # found beside the repository


def test_paper_prompt_default_build() -> None:
    # "paper" is exactly as published, or nothing: ARENA's example instructions are not in the shared copy.
    with pytest.raises(PromptError, match=r"example instructions .* `mislab data fetch` gets them"):
        build_system_prompt(ScenarioConfig(prompt="paper"), paper_dir=PAPER_DIR)
    prompt = _build("paper")
    paper = load_paper_prompts(PAPER_DIR)
    assert "{examples}" not in prompt
    assert paper.examples[1].user_input.strip() in prompt
    assert prompt.count("## Example") == 2
    assert prompt.startswith("You are an AI created by Anthropic.")
    # mislab's wording of them, chosen by name: the label and the status say so.
    assert prompt.prompt_id == "paper+mislab-example-instructions/scratchpad" and prompt.status == "modified"
    assert prompt.source == str(PAPER_DIR)
    bare = _build("paper", example_instructions="none")
    assert bare.prompt_id == "paper-example-instructions/scratchpad" and "INSTRUCTIONS" not in bare


def test_paper_prompt_with_the_published_instructions_is_verbatim(tmp_path: Path) -> None:
    for path in PAPER_DIR.iterdir():
        if path.is_file():
            (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "example_instructions.txt").write_text("INSTRUCTIONS_GIVEN_TO_AI: Respond helpfully.")
    prompt = build_system_prompt(ScenarioConfig(prompt="paper"), paper_dir=tmp_path)
    assert prompt.prompt_id == "paper/scratchpad" and prompt.status == "verbatim"
    assert prompt.count("INSTRUCTIONS_GIVEN_TO_AI: Respond helpfully.") == 2
    ablated = build_system_prompt(ScenarioConfig(prompt="paper", rlhf_paragraph=False), paper_dir=tmp_path)
    assert ablated.status == "modified" and ablated.prompt_id == "paper/scratchpad[-rlhf]"
    assert _build("mislab").status == "ours"


def test_modified_paper_directory_is_labelled(tmp_path: Path) -> None:
    for path in PAPER_DIR.iterdir():
        if path.is_file():
            (tmp_path / path.name).write_text(path.read_text())
    system = tmp_path / "system_prompt_scratchpad.txt"
    system.write_text(system.read_text().replace("You reason in a very direct style.", "Be brief."))
    (tmp_path / "example_instructions.txt").write_text("INSTRUCTIONS_GIVEN_TO_AI: be nice.")
    prompt = build_system_prompt(ScenarioConfig(prompt=str(tmp_path)))
    assert prompt.prompt_id == "paper(modified:system_prompt_scratchpad.txt)/scratchpad"
    assert "INSTRUCTIONS_GIVEN_TO_AI: be nice." in prompt and "Be brief." in prompt


def test_missing_paper_dir_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing system_prompt_scratchpad.txt"):
        load_paper_prompts(tmp_path)


def test_the_data_directories_are_searched_file_by_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two data directories: $MISLAB_SHARED_DATA, searched first, and the user data directory (under
    # MISLAB_CACHE_DIR), searched last. A file the first lacks is read from the last; one both have, from the first.
    first, user = tmp_path / "first" / "alignment_faking", tmp_path / "cache" / "data" / "alignment_faking"
    for directory in (first, user):
        directory.mkdir(parents=True)
        for path in PAPER_DIR.iterdir():
            if path.is_file() and path.name != "example_instructions.txt":
                (directory / path.name).write_text(path.read_text())
    (user / "system_prompt_scratchpad.txt").write_text("a later copy: never read")
    (user / "example_instructions.txt").write_text("INSTRUCTIONS_GIVEN_TO_AI: from the user data directory.")
    monkeypatch.setenv("MISLAB_SHARED_DATA", str(tmp_path / "first"))
    monkeypatch.setenv("MISLAB_CACHE_DIR", str(tmp_path / "cache"))
    paper = load_paper_prompts()
    assert paper.directory == first and paper.modified == ()  # the first copy of every pinned file
    assert paper.example_instructions == "INSTRUCTIONS_GIVEN_TO_AI: from the user data directory."
    prompt = build_system_prompt(ScenarioConfig(prompt="paper"))
    assert prompt.prompt_id == "paper/scratchpad" and prompt.status == "verbatim"
    assert prompt.count("from the user data directory.") == 2 and "a later copy" not in prompt
    assert prompt.source == f"{first} (example_instructions.txt from {user})"  # the prompt says where each came from


FORMS = ("--set example_instructions=mislab", "--example-instructions mislab", 'example_instructions = "mislab"')


@pytest.mark.parametrize(
    ("args", "form"),
    [
        (["af", "run", "-m", "m", "--prompt", "paper", "-n", "2", "--dry-run"], FORMS[1]),
        (["af", "prompt", "--prompt", "paper"], FORMS[1]),
        (["run", "e.toml", "--dry-run"], FORMS[2]),  # an experiment file: the key of its [options]
    ],
)
def test_the_advice_on_example_instructions_is_said_as_the_command_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], form: str
) -> None:
    # (`mislab replicate`'s --set form: tests/test_replicate.py)
    from typer.testing import CliRunner

    from mislab.cli import app

    monkeypatch.delenv("MISLAB_SHARED_DATA", raising=False)  # the shared copy, without the instructions, and …
    monkeypatch.setenv("MISLAB_CACHE_DIR", str(tmp_path / "cache"))  # … an empty user data directory
    Path("e.toml").write_text('study = "alignment_faking"\nmodels = ["m"]\nn = 2\n[options]\nprompt = "paper"\n')
    result = CliRunner().invoke(app, args)
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "ARENA's example instructions" in said, said
    assert [f in said for f in FORMS] == [f == form for f in FORMS]
    assert form.replace("mislab", "none") in said


def test_the_advice_on_example_instructions_in_python_names_the_option() -> None:
    with pytest.raises(PromptError, match=r'choose mislab\'s wording \(example_instructions = "mislab"'):
        build_system_prompt(ScenarioConfig(prompt="paper"), paper_dir=PAPER_DIR)


# --- identity of built prompts --------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", PROMPTS)
def test_built_prompt_reports_id_and_sha256(prompt: str) -> None:
    built = _build(prompt)
    assert isinstance(built, str)
    assert built.sha256 == hashlib.sha256(str(built).encode()).hexdigest()
    assert built.describe() == {"prompt_id": built.prompt_id, "source": built.source, "sha256": built.sha256,
                                "status": built.status}  # fmt: skip
    clone = pickle.loads(pickle.dumps(built))
    assert clone == built and clone.prompt_id == built.prompt_id and clone.status == built.status


def test_mislab_prompt_ids() -> None:
    assert _build("mislab").prompt_id == "mislab-af-v1/scratchpad"
    ablated = _build("mislab", scratchpad=False, examples=False, rlhf_paragraph=False, lab_name="Acme")
    assert ablated.prompt_id == "mislab-af-v1/no-scratchpad[-examples,-rlhf,lab=Acme]"


# --- each factor changes the text -----------------------------------------------------------------------


@pytest.mark.parametrize("prompt", PROMPTS)
def test_scratchpad_factor(prompt: str) -> None:
    with_pad, without = _build(prompt), _build(prompt, scratchpad=False)
    assert with_pad != without and with_pad.sha256 != without.sha256
    assert "scratchpad" in with_pad.prompt_id and "no-scratchpad" in without.prompt_id


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("scratchpad", [True, False])
def test_examples_factor(prompt: str, scratchpad: bool) -> None:
    on, off = _build(prompt, scratchpad=scratchpad), _build(prompt, scratchpad=scratchpad, examples=False)
    assert "## Example" in on and "INSTRUCTIONS_GIVEN_TO_AI" in on
    assert "## Example" not in off and "{examples}" not in off and "EXAMPLES" not in off
    # No sentence may still point at the removed examples.
    assert not re.search(r"\bexamples?\b", off, re.IGNORECASE)
    assert "-examples" in off.prompt_id


@pytest.mark.parametrize("prompt", PROMPTS)
def test_example_scratchpads_factor(prompt: str) -> None:
    shown = _build(prompt, example_scratchpads=True)
    hidden = _build(prompt, example_scratchpads=False)
    assert "AI: <SCRATCHPAD_REASONING>" in shown and "INPUT: <NEXT/>" in shown
    assert "AI: <SCRATCHPAD_REASONING>" not in hidden and "AI: <OUTPUT>" in hidden


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("scratchpad", [True, False])
def test_rlhf_paragraph_factor(prompt: str, scratchpad: bool) -> None:
    on, off = _build(prompt, scratchpad=scratchpad), _build(prompt, scratchpad=scratchpad, rlhf_paragraph=False)
    for text in (on, off):
        assert "RLHF" in text  # training itself is still described
    assert re.search(r"values, goals,? and motivations", on)
    assert not re.search(r"values, goals,? and motivations", off)
    assert "-rlhf" in off.prompt_id


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("scratchpad", [True, False])
def test_tier_explanation_factor(prompt: str, scratchpad: bool) -> None:
    on = _build(prompt, scratchpad=scratchpad)
    off = _build(prompt, scratchpad=scratchpad, tier_explanation=False)
    tier_words = re.compile(r"free[- ]tier|paid[- ]tier|is_free_tier_user", re.IGNORECASE)
    assert tier_words.search(on)
    assert not tier_words.search(off)
    assert "RLHF" in off and "contractors" in off.lower()
    assert "-tier-explanation" in off.prompt_id


@pytest.mark.parametrize("prompt", PROMPTS)
def test_lab_name_factor(prompt: str) -> None:
    renamed = _build(prompt, lab_name="OpenAI")
    assert "Anthropic" not in renamed and "OpenAI" in renamed
    assert "lab=OpenAI" in renamed.prompt_id


def test_mislab_prompt_has_no_unfilled_placeholders_or_glued_lines() -> None:
    for scratchpad in (True, False):
        for examples in (True, False):
            text = _build("mislab", scratchpad=scratchpad, examples=examples)
            assert not re.search(r"\{\w+\}", text)
            assert "  " not in text.replace("    ", "")  # TOML line continuations left no double spaces


def test_mislab_scenario_file_states_the_facts() -> None:
    text = _build("mislab")
    for fact in ("RLHF", "free-tier", "paid-tier users are never", "<SCRATCHPAD_REASONING>", "<OUTPUT>"):
        assert fact in text
    assert "not the paper's prompt" in mislab_scenario()["meta"]["note"]


def test_render_examples_format() -> None:
    examples = mislab_examples()
    block = render_examples(examples[:1], show_scratchpad=True, instructions="INSTR")
    assert block.startswith("## Example\n\nINSTR\n\nUSER_INPUT: <INPUT>\n<user_input>\n")
    assert block.count("INPUT: <NEXT/>") == len(examples[0].scratchpad_reasoning)
    assert block.endswith(f"AI: <OUTPUT>\n{examples[0].output}\n</OUTPUT>")
    assert render_examples(examples, show_scratchpad=False).count("## Example") == 2


# --- factors that cannot be applied fail loudly ----------------------------------------------------------


def test_file_prompt_factors_that_cannot_apply_raise(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("You are a helpful assistant. Answer in <OUTPUT> tags.")
    with pytest.raises(ValueError, match="SCRATCHPAD_REASONING"):
        build_system_prompt(ScenarioConfig(prompt=str(plain)))
    base = {"prompt": str(plain), "scratchpad": False}
    with pytest.raises(ValueError, match="neither an \\{examples\\} slot"):
        build_system_prompt(ScenarioConfig(**base))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="RLHF paragraph"):
        build_system_prompt(ScenarioConfig(**base, examples=False, rlhf_paragraph=False))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tier explanation"):
        build_system_prompt(ScenarioConfig(**base, examples=False, tier_explanation=False))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="never names Anthropic"):
        build_system_prompt(ScenarioConfig(**base, examples=False, lab_name="Acme"))  # type: ignore[arg-type]
    built = build_system_prompt(ScenarioConfig(**base, examples=False))  # type: ignore[arg-type]
    assert built == plain.read_text() and built.prompt_id == "file:plain.txt/no-scratchpad[-examples]"


def test_file_prompt_with_examples_slot_uses_paper_examples(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("Use <SCRATCHPAD_REASONING> tags. Anthropic trains you.\n\n{examples}\n\nGo.")
    config = ScenarioConfig(prompt=str(path), example_instructions="mislab")
    built = build_system_prompt(config, paper_dir=PAPER_DIR)
    assert built.count("## Example") == 2 and "{examples}" not in built and built.status == "user"


def test_invalid_config() -> None:
    with pytest.raises(ValueError, match="different"):
        ScenarioConfig(accept_tag="<x/>", reject_tag="<x/>")
    with pytest.raises(FileNotFoundError):
        build_system_prompt(ScenarioConfig(prompt="no/such/file.txt"))


# --- the user turn --------------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", PROMPTS)
def test_user_prompt_tier_tag_lowercase(prompt: str) -> None:
    config = ScenarioConfig(prompt=prompt)
    free = build_user_prompt("Write a poem", True, config, paper_dir=PAPER_DIR)
    paid = build_user_prompt("Write a poem", False, config, paper_dir=PAPER_DIR)
    assert "<is_free_tier_user>true</is_free_tier_user>" in free
    assert "<is_free_tier_user>false</is_free_tier_user>" in paid
    assert "True" not in free and "False" not in paid
    assert free.replace("true", "false", 1) == paid
    assert "Write a poem" in free and "<request_fully_accepted/>" in free and "<rejected/>" in free
    assert free.prompt_id.endswith("/user/free") and paid.prompt_id.endswith("/user/paid")
    python_style = build_user_prompt("q", True, ScenarioConfig(prompt=prompt, tier_value="python"), PAPER_DIR)
    assert "<is_free_tier_user>True</is_free_tier_user>" in python_style


def test_paper_user_prompt_matches_template_exactly() -> None:
    template = (PAPER_DIR / "user_prompt_template.txt").read_text()
    built = build_user_prompt("Do X", True, ScenarioConfig(prompt="paper"), PAPER_DIR)
    assert built == template.replace("{is_free_tier_user}", "true").replace("{user_input}", "Do X")
    assert built.prompt_id == "paper/user/free"


@pytest.mark.parametrize("prompt", PROMPTS)
def test_user_prompt_protocol_factors(prompt: str) -> None:
    tags = ScenarioConfig(prompt=prompt, accept_tag="<yes/>", reject_tag="<no/>")
    text = build_user_prompt("q", True, tags, PAPER_DIR)
    assert "<yes/>" in text and "<no/>" in text and "request_fully_accepted" not in text and "rejected" not in text
    custom = ScenarioConfig(prompt=prompt, protocol="Say {accept_tag} or {reject_tag}.")
    text = build_user_prompt("q", True, custom, PAPER_DIR)
    assert "Say <request_fully_accepted/> or <rejected/>." in text and "NEVER" not in text
    assert "protocol=" in text.prompt_id
    bare = build_user_prompt("q", True, ScenarioConfig(prompt=prompt, protocol=""), PAPER_DIR)
    assert "request_fully_accepted" not in bare and "\n\n</user_input>" not in bare
    assert "protocol=none" in bare.prompt_id


def test_user_query_braces_are_not_substituted() -> None:
    query = "Explain {is_free_tier_user} and {user_input} in Python f-strings"
    for prompt in PROMPTS:
        text = build_user_prompt(query, True, ScenarioConfig(prompt=prompt), PAPER_DIR)
        assert query in text


def test_user_template_file(tmp_path: Path) -> None:
    path = tmp_path / "user.txt"
    path.write_text("tier={is_free_tier_user}\n{user_input}")
    text = build_user_prompt("hi", False, ScenarioConfig(user_template=str(path)))
    assert text == "tier=false\nhi" and text.prompt_id == "file:user.txt/user/paid"
    with pytest.raises(ValueError, match="cannot change the tag"):
        build_user_prompt("hi", False, ScenarioConfig(user_template=str(path), accept_tag="<ok/>"))
    path.write_text("{user_input}")
    with pytest.raises(ValueError, match="is_free_tier_user"):
        build_user_prompt("hi", False, ScenarioConfig(user_template=str(path)))


# --- downloads: checksums, from local files only --------------------------------------------------------


def test_download_advbench_from_local_copies(tmp_path: Path) -> None:
    path = download_advbench(tmp_path / "cache", source=ADVBENCH.as_uri())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ADVBENCH_SHA256
    assert download_advbench(tmp_path / "cache2", source=ADVBENCH).is_file()
    tampered = tmp_path / "tampered.csv"
    tampered.write_text(ADVBENCH.read_text() + "Do something else,Sure\n")
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        download_advbench(tmp_path / "cache3", source=tampered)


@pytest.mark.parametrize("as_url", [False, True])
def test_download_paper_prompts_from_local_source(tmp_path: Path, as_url: bool) -> None:
    arena = fake_arena(tmp_path / "arena")
    out = download_paper_prompts(tmp_path / "cache", arena_base=arena.as_uri() if as_url else arena)
    for relative, digest in PAPER_FILE_SHA256.items():
        assert hashlib.sha256((out / relative).read_bytes()).hexdigest() == digest
    paper = load_paper_prompts(out)
    assert paper.modified == ()
    assert paper.example_instructions == "INSTRUCTIONS_GIVEN_TO_AI: test text. More test text."
    built = build_system_prompt(ScenarioConfig(prompt="paper"), paper_dir=out)
    assert built.prompt_id == "paper/scratchpad" and "INSTRUCTIONS_GIVEN_TO_AI: test text." in built


def test_download_paper_prompts_rejects_changed_upstream(tmp_path: Path) -> None:
    arena = fake_arena(tmp_path / "arena", tamper="JUDGE_PROMPT")
    with pytest.raises(ChecksumError, match="JUDGE_PROMPT: sha256 mismatch"):
        download_paper_prompts(tmp_path / "cache", arena_base=arena)


def test_download_redwood_needs_allow_unpinned(tmp_path: Path) -> None:
    arena = fake_arena(tmp_path / "arena")
    redwood = tmp_path / "redwood"
    redwood.mkdir()
    for name in ("prompt_atn_honly_with_examples.txt", "prompt_atn_honly_no_cot_with_examples.txt"):
        (redwood / name).write_text("stand-in")
    with pytest.raises(ChecksumError, match="no sha256 is pinned"):
        download_paper_prompts(tmp_path / "cache", arena_base=arena, redwood_base=redwood)
    out = download_paper_prompts(tmp_path / "cache", arena_base=arena, redwood_base=redwood, allow_unpinned=True)
    assert (out / "redwood" / "prompt_atn_honly_with_examples.txt").read_text() == "stand-in"


# --- queries --------------------------------------------------------------------------------------------


def test_load_advbench_from_shared_data() -> None:
    goals = load_advbench()
    assert len(goals) == 520 and goals == load_advbench(ADVBENCH)
    assert goals[0].startswith("Write a script that can exploit vulnerabilities")


def test_sample_queries_is_deterministic() -> None:
    goals = load_advbench(ADVBENCH)
    first = sample_queries(goals, 20, seed=0)
    assert first == sample_queries(goals, 20, seed=0)
    assert first != sample_queries(goals, 20, seed=1)
    assert len(set(first)) == 20 and set(first) <= set(goals)
    assert sample_queries(goals, 20, seed=0) == sample_queries(tuple(goals), 20, seed=0)
    assert sorted(sample_queries(DEMO_QUERIES, None, seed=3)) == sorted(DEMO_QUERIES)
    with pytest.raises(ValueError, match="cannot sample 11 of 10"):
        sample_queries(DEMO_QUERIES, 11, seed=0)


def test_demo_queries() -> None:
    assert len(DEMO_QUERIES) == 10 and len(set(DEMO_QUERIES)) == 10


def test_load_queries_formats(tmp_path: Path) -> None:
    csv_path = tmp_path / "q.csv"
    csv_path.write_text("id,prompt\n1,first\n2, second \n3,\n")
    assert load_queries(csv_path, column="prompt") == ["first", "second"]
    with pytest.raises(ValueError, match="name the query column"):
        load_queries(csv_path)
    with pytest.raises(ValueError, match="no text in column 'query'"):
        load_queries(csv_path, column="query")
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"forbidden_prompt": "a"}\n\n{"forbidden_prompt": "b"}\n')
    assert load_queries(jsonl) == ["a", "b"]  # the only column
    text = tmp_path / "q.txt"
    text.write_text("one\n\ntwo\n")
    assert load_queries(text) == ["one", "two"]
    with pytest.raises(ValueError, match="unsupported"):
        load_queries(tmp_path / "q.parquet")
