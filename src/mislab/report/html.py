"""One self-contained HTML page per run: rates with intervals, comparisons, published numbers, and a browser of
the transcripts behind every number. It works offline (plotly.js is embedded) and from a file:// URL.

Escaping: every piece of text that reaches the page goes through `_e` (html.escape with quotes), and model text
only ever sits inside inert <template> elements that the page's script clones; nothing is assigned to
innerHTML. The figures travel as JSON in a non-executable <script type="application/json"> with <, > and &
written as \\u escapes. A Content-Security-Policy allows exactly the page's own two scripts (by hash), so even
a missed escape could not run injected script or load anything from the network."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.offline import get_plotlyjs

from ..models import ToolCall
from ..stats import RateMethod
from ..store import Label, SampleRecord, Store
from ..study import CaseStudy, Metric
from ..transcript import AssistantTurn, Event, SystemTurn, ToolTurn, Turn, UserTurn
from .published import Target
from .replication import replication_section
from .summary import RunSummary, default_report_path, fmt_p, good_hint, model_options, summarise, usage_line
from .tables import outcome

__all__ = ["MAX_TRANSCRIPTS", "write_report"]

MAX_TRANSCRIPTS = 2000
# Texts at least this long are stored once per page and cloned into each transcript that shows them (the
# alignment-faking system prompt is ~26k characters and appears in every transcript).
SHARED_TEXT_MIN = 1000
SYSTEM_OPEN_MAX = 800  # system prompts longer than this start collapsed
ROLES = {"system", "user", "assistant", "tool", "event"}
SCRATCHPAD = re.compile(r"<SCRATCHPAD_REASONING>(.*?)(?:</SCRATCHPAD_REASONING>|\Z)", re.S | re.I)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _json_text(value: Any) -> str:
    """JSON that stays inert inside <script>: no "</script>" or "<!--" can form in it."""
    return (
        json.dumps(value, default=str, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def _asset(name: str) -> str:
    return files("mislab.report").joinpath("assets", name).read_text("utf-8")


class _TextPool:
    """Long texts, each stored once in a <template id="txt-N"> and referenced by transcripts."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def pre(self, text: str) -> str:
        if len(text) < SHARED_TEXT_MIN:
            return f"<pre>{_e(text)}</pre>"
        ref = self.ids.setdefault(text, f"txt-{len(self.ids)}")
        return f'<pre data-text="{ref}"></pre>'

    def templates(self) -> str:
        return "\n".join(f'<template id="{ref}">{_e(text)}</template>' for text, ref in self.ids.items())


# ---------------------------------------------------------------------------------------------- transcripts


def _assistant_text(text: str, pool: _TextPool) -> str:
    """Assistant text with <SCRATCHPAD_REASONING> blocks set apart (an unclosed block runs to the end)."""
    parts: list[str] = []
    at = 0
    for match in SCRATCHPAD.finditer(text):
        if text[at : match.start()].strip():
            parts.append(pool.pre(text[at : match.start()].strip("\n")))
        parts.append(
            '<div class="scratchpad"><div class="label">scratchpad &lt;SCRATCHPAD_REASONING&gt;</div>'
            f"{pool.pre(match.group(1).strip(chr(10)))}</div>"
        )
        at = match.end()
    if text[at:].strip() or not parts:
        parts.append(pool.pre(text[at:].strip("\n")))
    return "".join(parts)


def _tool_call(call: ToolCall) -> str:
    tags = ""
    if call.recovered:
        tags += ' <span class="tag recovered">recovered from text</span>'
    if call.parse_error:
        tags += f' <span class="tag bad">parse error: {_e(call.parse_error)}</span>'
    body = _pretty(call.arguments) if call.arguments is not None and not call.parse_error else call.raw_arguments
    return (
        f'<div class="call"><span class="fn">{_e(call.name)}</span> '
        f'<span class="muted">call {_e(call.id)}</span>{tags}<pre>{_e(body)}</pre></div>'
    )


def _turn(turn: Turn, pool: _TextPool) -> str:
    role = turn.role
    tags: list[str] = []
    body: list[str] = []
    label: str = role
    if isinstance(turn, SystemTurn):
        text = turn.content
        opened = " open" if len(text) <= SYSTEM_OPEN_MAX else ""
        body.append(f"<details{opened}><summary>{len(text):,} characters</summary>{pool.pre(text)}</details>")
    elif isinstance(turn, AssistantTurn):
        if turn.cached:
            tags.append("cached")
        if turn.finish_reason:
            tags.append(f"finish: {turn.finish_reason}")
        if turn.usage.prompt_tokens or turn.usage.completion_tokens:
            tags.append(f"{turn.usage.prompt_tokens} → {turn.usage.completion_tokens} tokens")
        if turn.reasoning or turn.reasoning_details:
            kind = turn.reasoning_kind or "text"
            how = {"text": "", "summary": ": a summary by the provider, not the model's own text"}.get(
                kind, f" ({kind}: the provider returned part of it only as opaque blocks, sent back unread)"
            )
            body.append(
                f'<div class="reasoning"><div class="label">reasoning (returned by the provider{_e(how)})</div>'
                f"{pool.pre(turn.reasoning or '')}</div>"
            )
        if turn.content or not turn.tool_calls:
            body.append(_assistant_text(turn.content, pool))
        body.extend(_tool_call(call) for call in turn.tool_calls)
        if turn.error:
            body.append(f'<div class="err">server rejected the output: {_e(turn.error)}</div>')
    elif isinstance(turn, ToolTurn):
        label = "tool output"
        tags += [turn.name, f"call {turn.call_id or '?'}"]
        body.append(pool.pre(turn.content))
    elif isinstance(turn, UserTurn):
        body.append(pool.pre(turn.content))
    else:  # an environment event: never shown to the model
        label = "environment"
        tags.append(turn.kind)
        body.append(pool.pre(turn.text))
        if turn.data:
            body.append(f'<pre class="muted">{_e(_pretty(turn.data))}</pre>')
    css = f"role-{role}" if role in ROLES else "role-other"
    who = _e(label) + "".join(f' <span class="tag">{_e(t)}</span>' for t in tags if t)
    return f'<div class="msg {css}"><div class="who">{who}</div>{"".join(body)}</div>'


def _kv_table(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v if isinstance(v, str) else json.dumps(v, default=str))}</td></tr>"
        for k, v in items
    )
    return f"<table>{rows}</table>" if rows else '<p class="muted">none</p>'


def _aside(record: SampleRecord, labels: list[Label]) -> str:
    parts = [f"<h4>Scores</h4>{_kv_table(record.scores.items())}"]
    if record.na:
        parts.append(f"<h4>Not applicable</h4>{_kv_table(record.na.items())}")
    parts.append("<h4>Labels</h4>")
    if not labels:
        parts.append('<p class="muted">none</p>')
    for label in labels:
        judge = f" · judge {_e(label.judge)}" if label.judge else ""
        parts.append(f"<div><b>{_e(label.scorer)}</b> = {_e(json.dumps(label.value, default=str))}{judge}</div>")
        if label.explanation:
            parts.append(f'<div class="explanation"><pre>{_e(label.explanation)}</pre></div>')
    parts.append(f"<h4>Factors</h4>{_kv_table(record.factors.items())}")
    usage = [
        ("calls", f"{record.calls} ({record.cached_calls} cached)"),
        ("tokens", f"{record.prompt_tokens} prompt ({record.cached_prompt_tokens} cached) + "
                   f"{record.completion_tokens} completion ({record.reasoning_tokens} reasoning)"),
        ("cost", f"${record.cost:.4f}"), ("time", f"{record.seconds:.1f} s"),
    ]  # fmt: skip
    parts.append(f"<h4>Usage</h4>{_kv_table(usage)}")
    if record.metadata:
        parts.append(f"<h4>Metadata</h4><pre>{_e(_pretty(record.metadata))}</pre>")
    return f'<aside class="scores">{"".join(parts)}</aside>'


def _meaning(value: str, good: bool | None) -> str:
    """A badge's class from what the value means, not whether it is true: "good", "bad", "neutral" or "na"."""
    if value not in ("true", "false"):
        return value  # "na" or "error"
    if good is None:
        return "neutral"
    return "good" if (value == "true") == good else "bad"


def _card(
    record: SampleRecord,
    values: dict[str, str],
    labels: list[Label],
    filter_columns: list[str],
    goods: Mapping[str, bool | None],
    pool: _TextPool,
) -> str:
    """One transcript: a summary line with its labels coloured by meaning, and the body in an inert template."""
    attrs = {"model": record.model, "cell": record.cell, "status": record.status}
    attrs.update({f"m{i}": values[c] for i, c in enumerate(filter_columns)})
    data = " ".join(f'data-f-{k}="{_e(v)}"' for k, v in attrs.items())
    if record.status == "done":
        badges = "".join(
            f'<span class="badge {_meaning(values[c], goods.get(c))}">{_e(c)}={_e(values[c])}</span>'
            for c in filter_columns
        )
    else:
        badges = '<span class="badge error">error</span>'
    error = f'<div class="err">sample error: {_e(record.error)}</div>' if record.error else ""
    chat = "".join(_turn(t, pool) for t in record.transcript) or '<p class="muted">no transcript</p>'
    return (
        f'<details class="sample" {data}><summary>'
        f'<span class="sid">{_e(record.model)} · {_e(record.cell)} · epoch {record.epoch}</span>{badges}</summary>'
        f'<template><div class="sample-body"><div class="chat">{error}{chat}</div>'
        f"{_aside(record, labels)}</div></template></details>"
    )


def _select_records(records: list[SampleRecord], cap: int) -> list[SampleRecord]:
    """At most `cap` records: an equal share of each (model, cell), lowest epochs first, in store order."""
    if len(records) <= cap:
        return records
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault((r.model, r.cell), []).append(i)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < cap:
        for members in groups.values():
            if depth < len(members) and len(chosen) < cap:
                chosen.append(members[depth])
        depth += 1
    return [records[i] for i in sorted(chosen)]


def _filter_columns(s: RunSummary, labels: list[Label]) -> list[str]:
    """The metrics, then any other judge label whose values are all booleans."""
    columns = [m.column for m in s.metrics]
    by_scorer: dict[str, bool] = {}
    for label in labels:
        try:
            outcome(label.value)
            by_scorer.setdefault(label.scorer, True)
        except ValueError:
            by_scorer[label.scorer] = False
    return columns + [name for name, ok in by_scorer.items() if ok and name not in columns]


def _filter_value(value: Any) -> str:
    result = outcome(value)
    return "na" if result is None else str(result).lower()


def _browser(s: RunSummary, store: Store, cap: int) -> str:
    records = store.sample_records(s.run.run_id)
    details = store.label_details(s.run.run_id)
    columns = _filter_columns(s, details)
    by_sample: dict[str, list[Label]] = {}
    for label in details:
        by_sample.setdefault(label.sample_id, []).append(label)
    table = s.samples.set_index("sample_id") if not s.samples.empty else None
    shown = _select_records(records, cap)
    goods = {m.column: m.good for m in s.metrics}
    pool = _TextPool()
    cards = []
    for record in shown:
        # Sample ids are unique in a run: `loc` finds one row, never a frame.
        row: pd.Series[Any] | dict[str, Any] = (
            cast("pd.Series[Any]", table.loc[record.sample_id]) if table is not None else {}
        )
        # An errored sample is in no rate's n, nor among its n/a: its own filter value keeps the links exact.
        values = {
            c: "error" if record.status != "done" else _filter_value(row.get(c)) if c in row else "na" for c in columns
        }
        cards.append(_card(record, values, by_sample.get(record.sample_id, []), columns, goods, pool))

    def select(name: str, label: str, options: list[tuple[str, str]]) -> str:
        opts = "".join(f'<option value="{_e(v)}">{_e(t)}</option>' for v, t in [("", "any"), *options])
        return f'<label>{_e(label)}<select data-filter="{name}">{opts}</select></label>'

    outcomes = [("true", "true"), ("false", "false"), ("counted", "true or false (in n)"), ("na", "n/a")]
    filters = [
        select("model", "model", [(m, m) for m in dict.fromkeys(r.model for r in records)]),
        select("cell", "cell", [(c, c) for c in dict.fromkeys(r.cell for r in records)]),
        select("status", "status", [("done", "done"), ("error", "error")]),
        *(select(f"m{i}", c, outcomes) for i, c in enumerate(columns)),
    ]
    capped = ""
    if len(shown) < len(records):
        capped = (
            f'<p class="warn">This page embeds {len(shown):,} of the run\'s {len(records):,} transcripts (cap '
            f"{cap:,}): an equal share of each model × cell, lowest epochs first. Every transcript is in the store "
            "and in the Inspect export; the rates above use all samples.</p>"
        )
    return (
        f'<section id="transcripts"><h2>Transcripts</h2>{capped}<div class="filters">{"".join(filters)}'
        f'<button id="reset" type="button">show all</button><span>showing <b id="shown">{len(shown)}</b> of '
        f"{len(shown)}</span></div>{''.join(cards)}{pool.templates()}</section>"
    )


BRANCH_PARENTS_SHOWN = 12  # parents whose continuations a branch run's page shows (every one is in the store)


def _branch_section(s: RunSummary, store: Store) -> str:
    """A branch run, instance by instance: each parent's prefix with the branch point marked, then each arm's
    continuations grouped by their outcome on the metric the arms moved most, each openable."""
    if not s.branches:
        return ""
    effects = [e for found in s.branches.values() for e in found]
    metric = max(effects, key=lambda e: abs(e.estimate)).metric
    pool = _TextPool()
    children: dict[str, list[SampleRecord]] = {}
    for record in store.iter_records(s.run.run_id, status="done"):
        children.setdefault(str(record.factors.get("parent_sample")), []).append(record)
    blocks = []
    for parent, records in list(children.items())[:BRANCH_PARENTS_SHOWN]:
        first = records[0].transcript
        found = next(((i, t) for i, t in enumerate(first) if isinstance(t, Event) and t.kind == "branch"), None)
        at, point = found if found else (len(first), None)
        prefix = "".join(_turn(t, pool) for t in first.turns[:at])
        marker = f'<div class="branch-point">branch point: {_e(point.text) if point else ""}</div>'
        arms = []
        for arm in dict.fromkeys(r.cell for r in records):
            groups: dict[str, list[SampleRecord]] = {}
            for r in (r for r in records if r.cell == arm):
                groups.setdefault(_filter_value(r.scores.get(metric)), []).append(r)
            rows = []
            for value, members in groups.items():
                items = "".join(
                    f'<details class="lazy"><summary>resample {r.epoch}</summary><template><div class="chat">'
                    + "".join(_turn(t, pool) for t in r.transcript.turns[at + 1 :])
                    + "</div></template></details>"
                    for r in members
                )
                rows.append(f"<li><b>{_e(metric)} = {_e(value)}</b>: {len(members)}{items}</li>")
            arms.append(f"<h4>{_e(arm)}</h4><ul>{''.join(rows)}</ul>")
        blocks.append(
            f'<details class="lazy"><summary>{_e(parent)}: its prefix, then {len(records)} continuations</summary>'
            f'<template><div class="chat">{prefix}{marker}</div>{"".join(arms)}</template></details>'
        )
    more = len(children) - BRANCH_PARENTS_SHOWN
    note = f'<p class="note">… and {more} more parents (every continuation is in the store).</p>' if more > 0 else ""
    return (f'<section id="branches"><h2>Branches, instance by instance</h2><p class="note">Grouped by {_e(metric)}, '
            f"the outcome the arms moved most.</p>{''.join(blocks)}{note}{pool.templates()}</section>")  # fmt: skip


# ---------------------------------------------------------------------------------------------- figures


def _pct(x: float | None) -> float | None:
    return None if x is None or x != x else 100 * x  # x != x: nan, which plotly wants as null


def _bars(centre: Iterable[float], low: Iterable[float], high: Iterable[float]) -> dict[str, Any]:
    """Asymmetric plotly error bars, in percent, from estimates and their intervals."""
    c, lo, hi = list(centre), list(low), list(high)
    return {
        "type": "data",
        "symmetric": False,
        "array": [_pct(h - x) for x, h in zip(c, hi, strict=True)],
        "arrayminus": [_pct(x - low_) for x, low_ in zip(c, lo, strict=True)],
    }


def _rate_figure(s: RunSummary, column: str, colors: dict[str, str]) -> go.Figure:
    fig = go.Figure()
    hover = "%{fullData.name} · %{x}<br>%{customdata}<extra></extra>"
    for model, rows in s.rates.groupby("model", sort=False):
        name = str(model)
        rate = rows[f"{column}_rate"].tolist()
        fig.add_scatter(
            name=name,
            x=list(rows["cell"]),
            y=[_pct(v) for v in rate],
            mode="markers",
            marker={"size": 10, "color": colors[name]},
            offsetgroup=name,
            error_y=_bars(rate, rows[f"{column}_low"], rows[f"{column}_high"]),
            customdata=list(rows[column]),
            hovertemplate=hover,
        )
        published = [(cell, t) for cell in rows["cell"] for t in s.published_for(name, str(cell), column)]
        if published:
            # Same offset group as the model's own markers, so the diamond sits right on our estimate's column.
            values = [t.value for _, t in published]
            fig.add_scatter(
                name=f"published · {name}",
                x=[cell for cell, _ in published],
                y=[_pct(v) for v in values],
                mode="markers",
                offsetgroup=name,
                marker={"symbol": "diamond-open", "size": 13, "color": colors[name], "line": {"width": 2}},
                error_y=_bars(
                    values,
                    [t.low if t.low is not None else t.value for _, t in published],
                    [t.high if t.high is not None else t.value for _, t in published],
                ),
                customdata=[f"{t.display()}<br>{t.source}" for _, t in published],
                hovertemplate=hover,
            )
    fig.update_layout(
        template="plotly_white",
        height=380,
        margin={"l": 60, "r": 20, "t": 30, "b": 40},
        scattermode="group",
        yaxis={"title": {"text": f"% of samples ({s.interval} interval)"}, "range": [-3, 103]},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def _tick(metric: Metric) -> str:
    hint = good_hint(metric)
    return f"{metric.title}<br>({hint})" if hint else metric.title


def _overview_figure(s: RunSummary, cell_colors: dict[str, str]) -> go.Figure:
    """Every metric × cell (× model) as a point with its interval, in one figure: a colour per cell, a symbol
    per model. Published numbers are hollow diamonds: beside the cell whose prompt the paper ran exactly (any
    model: hover for which), else in a grey column of their own (other conditions)."""
    fig = go.Figure()
    metrics = [m for m in s.metrics if f"{m.column}_rate" in s.rates.columns]
    ticks = [_tick(m) for m in metrics]
    models = list(dict.fromkeys(s.rates["model"]))
    cells = list(dict.fromkeys(s.rates["cell"]))
    symbols = ["circle", "square", "triangle-up", "cross", "x", "star"]
    exact: dict[str, list[tuple[str, Target]]] = {}
    others: list[tuple[str, Target]] = []
    for m, tick in zip(metrics, ticks, strict=True):
        for t in s.targets:
            if t.kind == "rate" and t.metric == m.column:
                cell = next((c for c in cells if t.variant and t.variant in (c, s.variant_of(c))), None)
                (exact.setdefault(cell, []) if cell else others).append((tick, t))
    rows = s.rates.to_dict("records")
    for cell in cells:  # trace order is column order: each cell's models side by side, then its published
        for r in (r for r in rows if r["cell"] == cell):
            model = str(r["model"])
            name = f"{model} · {cell}" if len(models) > 1 else str(cell)
            fig.add_scatter(
                name=name, x=ticks, y=[_pct(r[f"{m.column}_rate"]) for m in metrics], mode="markers",
                offsetgroup=name,
                marker={"size": 10, "color": cell_colors[cell], "symbol": symbols[models.index(model) % len(symbols)]},
                error_y=_bars([r[f"{m.column}_rate"] for m in metrics], [r[f"{m.column}_low"] for m in metrics],
                              [r[f"{m.column}_high"] for m in metrics]),
                customdata=[f"{m.title}: {r[m.column]}" for m in metrics],
                hovertemplate="%{fullData.name}<br>%{customdata}<extra></extra>",
            )  # fmt: skip
        if cell in exact:
            _published_markers(fig, f"published · {cell}", cell_colors[cell], exact[cell])
    if others:
        _published_markers(fig, "published (other models or prompts)", "#9aa5b1", others)
    fig.update_layout(
        template="plotly_white", height=420, margin={"l": 60, "r": 20, "t": 30, "b": 40}, scattermode="group",
        yaxis={"title": {"text": f"% of samples ({s.interval} interval)"}, "range": [-3, 103]},
        xaxis={"type": "category", "categoryorder": "array", "categoryarray": ticks},
        legend={"orientation": "h", "y": -0.2}, hoverlabel={"align": "left"},
    )  # fmt: skip
    return fig


def _published_markers(fig: go.Figure, name: str, color: str, found: list[tuple[str, Target]]) -> None:
    fig.add_scatter(
        name=name, x=[tick for tick, _ in found], y=[_pct(t.value) for _, t in found], mode="markers",
        offsetgroup=name, marker={"symbol": "diamond-open", "size": 12, "color": color, "line": {"width": 2}},
        customdata=[f"{t.model} · {t.condition}: {t.display()}<br>{t.source}" for _, t in found],
        hovertemplate="%{customdata}<extra></extra>",
    )  # fmt: skip


def _overview(s: RunSummary, figures: dict[str, Any], cell_colors: dict[str, str]) -> str:
    """The section the page opens on: the one figure, the k/n grid, and what the run can and cannot show."""
    if s.rates.empty:
        return '<section id="overview"><h2>Overview</h2><p>No samples yet.</p></section>'
    figures["fig-overview"] = json.loads(_overview_figure(s, cell_colors).to_json())
    headers, rows = s.compact_grid(cells_as_columns=False)
    shows, cannot = s.takeaway()
    return (
        '<section id="overview"><h2>Overview</h2>'
        '<div class="figure" id="fig-overview"></div>'
        '<p class="note">Points: our rate in each cell with its 95% interval. Hollow diamonds: published numbers '
        "(hover for model, condition and source). ↑/↓ good: which way is desirable.</p>"
        + _table(headers, ([_e(c) for c in row] for row in rows))
        + "".join(f'<p class="warn">† {_e(line)}</p>' for line in s.left_out())
        + f'<p class="takeaway">{_e(shows)}<br>{_e(cannot)}</p></section>'
    )


def _difference_figure(s: RunSummary, table: pd.DataFrame) -> go.Figure:
    by = s.comparison["by"]
    records = table.to_dict("records")
    names = [" · ".join([*(str(r[c]) for c in s.within), f"{r[by]} − {r['baseline']}"]) for r in records]
    fig = go.Figure(
        go.Scatter(
            x=[_pct(r["diff"]) for r in records],
            y=names,
            mode="markers",
            marker={"size": 10, "color": "#2457c5"},
            error_x=_bars(table["diff"], table["low"], table["high"]),
            customdata=[f"{r['display']} · p={fmt_p(r['p'])} (Holm {fmt_p(r['p_holm'])})" for r in records],
            hovertemplate="%{y}<br>%{customdata}<extra></extra>",
            showlegend=False,
        )
    )
    fig.add_vline(x=0, line={"color": "#888", "dash": "dot"})
    fig.update_layout(
        template="plotly_white",
        height=120 + 36 * len(names),
        margin={"l": 20, "r": 20, "t": 20, "b": 40},
        xaxis={"title": {"text": "difference, percentage points (95% CI)"}, "range": [-103, 103]},
        yaxis={"automargin": True, "autorange": "reversed"},
    )
    return fig


# ---------------------------------------------------------------------------------------------- sections


def _table(headers: list[str], rows: Iterable[list[str]]) -> str:
    """A table from already-escaped cells."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _show(label: str, **want: str) -> str:
    """A link that sets the transcript filters (e.g. model, cell, m0="true") and jumps to the browser."""
    return f'<a href="#transcripts" data-show="{_e(json.dumps(want))}">{_e(label)}</a>'


def _header(s: RunSummary) -> str:
    run = s.run
    meta = [
        ("study", f"{s.title} ({run.study})"), ("run", run.run_id), ("created", run.created_at),
        ("updated", run.updated_at), ("status", run.status), ("mislab version", run.package_version or "unknown"),
        ("intervals", f"{s.interval}; errored samples and not-applicable values are left out of n"),
        ("sampling", s.sampling),
        ("usage", usage_line(s.totals)), ("environment", s.environment), ("prompts", s.prompt_line),
    ]  # fmt: skip
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in meta if v is not None)
    models = _table(
        ["model", "provider", "endpoint", "options"],
        [
            [_e(name), _e(info.get("provider")), _e(info.get("endpoint")), _e(model_options(info))]
            for name, info in run.models.items()
        ],
    )  # fmt: skip
    inferred = (
        f'<p class="warn">The study plug-in {_e(run.study)} is not installed: the metrics below are the boolean '
        "score columns found in the samples.</p>"
        if s.metrics_inferred
        else ""
    )
    return (
        f"<header><h1>{_e(s.title)} · {_e(run.run_id)}</h1><p class='note'>{_e(usage_line(s.totals))}</p>"
        + (f"<p class='note'>{_e(s.prompt_line)}</p>" if s.prompt_line else "")
        + f"{inferred}"
        f"<details class='run'><summary>Run details: models, versions, sampling</summary><dl class='meta'>{dl}</dl>"
        f"{models}</details></header>"
    )


def _provenance(s: RunSummary) -> str:
    """What was run, exactly: the experiment spec and every prompt text, as stored with the run."""
    prompts = "".join(
        f"<details><summary>{_e(name)}</summary><pre>{_e(text if isinstance(text, str) else _pretty(text))}</pre>"
        "</details>"
        for name, text in s.run.prompts.items()
    )
    return (
        f'<section id="provenance"><h2>Experiment spec and prompts</h2><pre>{_e(_pretty(s.run.spec))}</pre>'
        f"<h3>Prompts ({len(s.run.prompts)})</h3>{prompts or '<p class=muted>none recorded</p>'}</section>"
    )


def _metric_section(s: RunSummary, index: int, figures: dict[str, Any], colors: dict[str, str]) -> str:
    metric = s.metrics[index]
    column, key = metric.column, f"m{index}"
    rows = []
    for r in s.rates.to_dict("records"):
        model, cell = str(r["model"]), str(r["cell"])
        published = "<br>".join(
            f"{_e(t.display())} <span class='muted'>({_e(t.source)})</span>"
            for t in s.published_for(model, cell, column)
        )
        rows.append([
            _e(model), _e(cell),
            # "k/n = rate [low, high]" with k and n linked to their transcripts
            f"{_show(str(r[f'{column}_k']), model=model, cell=cell, **{key: 'true'})}/"
            f"{_show(str(r[f'{column}_n']), model=model, cell=cell, **{key: 'counted'})}"
            f" = {_e(r[column].split(' = ', 1)[1])}",
            _show(str(r[f"{column}_na"]), model=model, cell=cell, **{key: "na"}),
            _show(str(r["errors"]), model=model, cell=cell, status="error"),
            published or "—",
        ])  # fmt: skip
    fig_id = f"fig-rate-{index}"
    figures[fig_id] = json.loads(_rate_figure(s, column, colors).to_json())
    parts = [
        f'<details class="metric" id="metric-{index}"><summary><h2>{_e(metric.title)} '
        f'<span class="muted">({_e(column)})</span></h2></summary>',
        f'<p class="note">{_e(metric.description)}</p>' if metric.description else "",
        f'<div class="figure" id="{fig_id}"></div>',
        _table(
            ["model", "cell", "k/n = rate [95% CI]", "n/a", "errors", "published (same model and condition)"], rows
        ),  # fmt: skip
        '<p class="note">Click k for the transcripts counted in k, n for those counted in n. Hollow diamonds on '
        "the chart are published numbers for the same model and condition.</p>",
    ]
    parts.append(_comparison_block(s, index, figures))
    parts.append("</details>")
    return "".join(parts)


def _comparison_block(s: RunSummary, index: int, figures: dict[str, Any]) -> str:
    column = s.metrics[index].column
    if column in s.comparison_problems:
        return f'<p class="warn">No comparisons: {_e(s.comparison_problems[column])}</p>'
    table = s.comparisons.get(column)
    if table is None or table.empty:
        return '<p class="muted">No comparisons: one cell per group.</p>'
    headers, rows = s.comparison_rows(column)
    fig_id = f"fig-diff-{index}"
    figures[fig_id] = json.loads(_difference_figure(s, table).to_json())
    return (
        f"<h3>{_e(s.comparison_title(column))}</h3>"
        + _table(headers, ([_e(cell) for cell in row] for row in rows))
        + f'<div class="figure" id="{fig_id}" style="min-height:0"></div>'
    )


def _published_section(s: RunSummary) -> str:
    if s.branches:  # a branch run's arms are no published condition
        return ""
    if not s.targets:
        return f'<section id="published"><h2>Published numbers</h2><p>None for {_e(s.run.study)}.</p></section>'
    rows = [
        [_e(t.model), _e(t.condition), _e(t.variant or "—"), _e(t.metric), _e(t.display()), _e(t.quote),
         _e(t.source), _e(t.note), _e("; ".join(s.ours_for(t)) or "—")]
        for t in sorted(s.targets, key=lambda t: not s.ours_for(t))  # those matching our results first
    ]  # fmt: skip
    return (
        '<section id="published"><h2>Published numbers</h2><p class="note">Transcribed in mislab/data/published.toml. '
        "“ours” is filled only where model, metric and variant match exactly.</p>"
        + _table(
            ["model", "condition", "our variant", "metric", "published", "as published", "source", "note", "ours"], rows
        )  # fmt: skip
        + "</section>"
    )


def _evidence_section(s: RunSummary) -> str:
    """The experiment's hypotheses against its ablations (absent when it declared none)."""
    ev = s.evidence
    if ev is None:
        return ""
    headers, rows = ev.table_rows()
    cells = [[_e(c) for c in row[:-1]] + [f'<span class="badge {_e(row[-1])}">{_e(row[-1])}</span>'] for row in rows]
    problems = "".join(f"<p class='note'>not measured: {_e(a)}: {_e(why)}</p>" for a, why in ev.problems.items())
    sentences = "".join(f"<li>{_e(sentence)}</li>" for sentence in ev.sentences())
    return (
        '<section id="evidence"><h2>Evidence for the hypotheses</h2><p class="note">Each prediction beside the '
        "measured difference (compare − baseline) with its 95% interval (Newcombe's; a branch arm's against pure "
        "resampling pooled over parents, see the branches section): up/down are consistent when the "
        "interval lies on their side of zero, undecided when it crosses zero; none is consistent within ±margin."
        f"</p>{_table(headers, cells)}{problems}<ul>{sentences}</ul></section>"
    )


def _scores_section(s: RunSummary) -> str:
    """Numeric judge columns (score rubrics such as StrongREJECT): a mean with its t interval, never a rate."""
    if s.means.empty:
        return ""
    rows = [[_e(r["model"]), _e(r["cell"]), *(_e(r[m.column]) for m in s.scores)] for r in s.means.to_dict("records")]
    notes = "".join(f"<p class='note'>{_e(m.column)}: {_e(m.description)}</p>" for m in s.scores)
    table = _table(["model", "cell", *(m.column for m in s.scores)], rows)
    return (
        '<section id="scores"><h2>Scores</h2><p class="note">Mean [95% t interval] (n) of each numeric judge '
        f"column, over finished samples where it applies.</p>{table}{notes}</section>"
    )


def _errors_section(s: RunSummary) -> str:
    errors = s.errors
    if errors.empty:
        return '<section id="errors"><h2>Errors</h2><p>None: every sample finished.</p></section>'
    rows = [[_e(r.sample_id), _e(r.error)] for r in errors.itertuples(index=False)]
    return (
        f'<section id="errors"><h2>Errors ({len(rows)})</h2><p class="note">Errored samples are left out of every '
        f"rate. {_show('Show their transcripts', status='error')}.</p>"
        + _table(["sample", "error"], rows)
        + "</section>"
    )


def _csp_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


def write_report(
    store: Store,
    run_id: str,
    path: str | Path | None = None,
    studies: Mapping[str, CaseStudy[Any]] | None = None,
    *,
    method: RateMethod = "wilson",
    max_transcripts: int = MAX_TRANSCRIPTS,
) -> Path:
    """Write the run's page (default: `<store dir>/reports/<run_id>.html`) and return its path.

    `studies` maps study names to plug-ins for runs whose study is not installed as an entry point."""
    s = summarise(store, run_id, studies, method)
    palette = qualitative.Plotly
    colors = {str(m): palette[i % len(palette)] for i, m in enumerate(dict.fromkeys(s.samples.get("model", [])))}
    cell_colors = {str(c): palette[i % len(palette)] for i, c in enumerate(dict.fromkeys(s.samples.get("cell", [])))}
    figures: dict[str, Any] = {}
    overview = _overview(s, figures, cell_colors)
    metric_sections = ""
    if not s.rates.empty:
        sections = "".join(_metric_section(s, i, figures, colors) for i in range(len(s.metrics)))
        metric_sections = f'<section id="details"><h2>Per metric</h2>{sections}</section>'
    browser = _browser(s, store, max_transcripts)
    replication = replication_section(s)  # a run made by `mislab replicate`: ours beside the published numbers
    branches = _branch_section(s, store)  # a run made by `mislab branch`: each parent's continuations
    nav = "".join(
        f'<a href="#{anchor}">{_e(text)}</a>'
        for anchor, text in [("overview", "overview"), *([("replication", "replication")] if replication else []),
                             *([("branches", "branches")] if branches else []),
                             *((f"metric-{i}", m.column) for i, m in enumerate(s.metrics)),
                             ("published", "published"), ("errors", f"errors ({len(s.errors)})"),
                             ("transcripts", "transcripts"), ("provenance", "spec and prompts")]
    )  # fmt: skip
    plotly_js, page_js = get_plotlyjs(), _asset("report.js")
    csp = (
        f"default-src 'none'; script-src {_csp_hash(plotly_js)} {_csp_hash(page_js)}; style-src 'unsafe-inline'; "
        "img-src data: blob:; font-src data:"
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(s.title)} · {_e(run_id)} · mislab</title>
<style>{_asset("report.css")}</style>
<script>{plotly_js}</script>
</head><body><main>
{_header(s)}
<nav>{nav}</nav>
{overview}
{replication}
{branches}
{metric_sections}
{_scores_section(s)}
{_evidence_section(s)}
{_published_section(s)}
{_errors_section(s)}
{browser}
{_provenance(s)}
</main>
<script type="application/json" id="mislab-figures">{_json_text(figures)}</script>
<script>{page_js}</script>
</body></html>
"""
    out = Path(path) if path else default_report_path(store, run_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
