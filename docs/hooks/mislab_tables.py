"""MkDocs hook: tables and listings derived from the installed package, so the pages cannot drift from the code.

A page asks for one with an HTML comment on a line of its own, e.g. `<!-- mislab:variants -->`:

- `variants`: the shutdown study's shipped prompt variants (from their TOML files) with status and source;
- `metrics STUDY`, `options STUDY`: a study's metric columns, and its options with flag and default;
- `rubrics`: the rubrics the installed studies ship, with what they answer and their source;
- `published STUDY`: the published numbers reports set beside ours (`data/published.toml`);
- `presets`: the replication presets the installed plug-ins ship (`mislab replicate`), a section each;
- `prices`: the packaged price table (`data/prices.toml`);
- `help COMMAND…`: the output of `mislab COMMAND… --help`;
- `benchmarks`: every script in benchmarks/ with its own description and command.

An unknown directive fails the build."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DIRECTIVE = re.compile(r"^<!-- mislab:(?P<name>[a-z]+)(?P<args>(?: [\w-]+)*) -->$", re.M)


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _variants() -> str:
    from mislab.shutdown.variants import ARENA_SET, list_variants

    rows = [
        [f"`{v.id}`" + (" (ARENA set)" if v.id in ARENA_SET else ""), v.title, v.status, v.convention, v.source]
        for v in list_variants()
    ]
    return _table(["variant", "what it says", "status", "convention", "source"], rows)


def _study(name: str) -> Any:
    from mislab.study import get_study

    return get_study(name)


def _metrics(name: str) -> str:
    direction = {True: "true is desirable (↑ good)", False: "true is undesirable (↓ good)", None: "neutral"}
    rows = [[f"`{m.column}`", m.title, m.description, direction[m.good]] for m in _study(name).metrics]
    return _table(["column", "title", "what it means", "reading"], rows)


def _options(name: str) -> str:
    rows = []
    for field, info in _study(name).options_schema.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        flag = "—" if extra.get("cli") is False else ", ".join(extra.get("flags") or ["--" + field.replace("_", "-")])
        default = info.get_default(call_default_factory=True)
        rows.append([f"`{field}`", f"`{flag}`" if flag != "—" else flag, f"`{default!r}`", info.description or ""])
    return _table(["option (`[options]` key)", "flag", "default", "what it does"], rows)


def _rubrics() -> str:
    from mislab.labeling import list_rubrics

    form = {"yes_no": "yes/no", "criteria": "criteria", "score": "score"}
    rows = [
        [f"`{r.id}`", r.study or "any", form[r.answer], r.title,
         f"{r.votes} (≥ {r.threshold:g})" if r.votes > 1 else "1", r.source]
        for r in list_rubrics()
    ]  # fmt: skip
    return _table(["rubric", "study", "answer", "what it asks", "votes", "source"], rows)


def _published(study: str) -> str:
    from mislab.report import load_targets

    rows = []
    for t in load_targets():
        if t.study != study:
            continue
        n = f"{t.n_qualifier}{t.n:,}" if t.n else "—"
        rows.append(
            [
                t.model,
                t.condition,
                f"`{t.metric}`" + (f" ({t.kind})" if t.kind != "rate" else ""),
                t.quote or t.display(),
                n,
                t.source,
            ]
        )
    return _table(["model", "condition", "metric", "published", "n", "source"], rows)


def _presets() -> str:
    """One section per preset: its paper, then per study part what it measured, its default n, its conditions (the
    rows of its table), whose numbers were published with which n, and what it cannot reproduce."""
    from mislab.presets import presets

    out = []
    for preset in presets().values():
        lines = [f"### {preset.id}", "", _cell(preset.parts[0].paper), ""]
        for p in preset.parts:
            lines += [
                f"- **{p.study}**, n = {p.n} per cell by default: {_cell(p.measured)}",
                f"    - conditions: {_cell('; '.join(p.conditions()))}",
                f"    - published for: {_cell(', '.join(p.published_models()) or 'none (ours only)')}; "
                f"{p.published_n()}",
                *[f"    - cannot reproduce: {_cell(item)}" for item in p.cannot],
            ]
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _prices() -> str:
    import tomllib
    from importlib import resources

    # The packaged table itself, whatever MISLAB_PRICES says where the site is built.
    table = tomllib.loads(resources.files("mislab.data").joinpath("prices.toml").read_text())
    rows = [[f"`{spec}`", p["prompt"], p["completion"], p.get("cached_prompt", "—")] for spec, p in table.items()]
    return _table(["model spec", "prompt", "completion", "cached prompt"], rows)


def _help(*command: str) -> str:
    from typer.testing import CliRunner

    from mislab.cli import app

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "100"}, prog_name="mislab")
    if result.exit_code != 0:
        raise ValueError(f"mislab {' '.join(command)} --help failed: {result.output}")
    return f"```text\n$ mislab {' '.join(command)} --help\n{result.output.rstrip()}\n```"


def _benchmarks() -> str:
    parts = []
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        if not doc:
            raise ValueError(f"{path} has no docstring to describe it")
        parts.append(f"### `benchmarks/{path.name}`\n\n{doc}")
    return "\n\n".join(parts)


DIRECTIVES = {
    "variants": _variants, "metrics": _metrics, "options": _options, "rubrics": _rubrics,
    "published": _published, "presets": _presets, "prices": _prices, "help": _help, "benchmarks": _benchmarks,
}  # fmt: skip


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    def expand(match: re.Match[str]) -> str:
        name, args = match["name"], match["args"].split()
        if name not in DIRECTIVES:
            raise ValueError(f"unknown mislab directive {name!r} in {kwargs['page'].file.src_path}")
        return DIRECTIVES[name](*args)

    return DIRECTIVE.sub(expand, markdown)
