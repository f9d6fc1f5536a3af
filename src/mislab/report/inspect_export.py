"""Export a run as Inspect AI logs, so `inspect view` (and anything that reads Inspect logs) can browse it.

Inspect's log header names exactly one model (`EvalSpec.model`), so a run becomes one `.eval` file per model.
In each log, a sample's id is our cell (a branch run's child: its parent sample and arm) and its epoch ours + 1
(Inspect counts epochs from 1); factors, our
sample id and metadata go to the sample's metadata. Boolean outcomes stay booleans: `inspect view` shows
them as "true"/"false" badges and its metrics read them as 1/0, whereas "C"/"I" would claim that
`sabotaged=True` is "correct". "Not applicable" becomes Inspect's unscored value (NaN, left out of metrics).
Per-cell rates with their intervals are the log's results, one metric group per score: a rate pooled over
cells would mix experimental conditions. Environment events (which the model never saw) are not messages;
they go to the sample's metadata as `environment_notes`, each with the number of the message it follows. (As
Inspect info events they would make the viewer open on a transcript tab showing only them.)

inspect_ai is an optional dependency, imported only when `export_inspect` is called."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from ..store import Label, SampleRecord, Store
from ..study import CaseStudy
from ..transcript import AssistantTurn, SystemTurn, ToolTurn, UserTurn
from .summary import RunSummary, summarise
from .tables import outcome, rate_table

if TYPE_CHECKING:
    from inspect_ai.log import EvalLog, EvalResults, EvalSample
    from inspect_ai.model import ChatMessage, ModelUsage, StopReason

__all__ = ["export_inspect"]

STOP_REASONS: dict[str, StopReason] = {
    "stop": "stop",
    "length": "max_tokens",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}
RUN_STATUS: dict[str, Literal["success", "started"]] = {
    "complete": "success",
    "running": "started",
}  # anything else: stopped early


def _require_inspect() -> None:
    try:
        import inspect_ai  # noqa: F401
    except ImportError as exc:
        raise ImportError("exporting Inspect logs needs inspect_ai: pip install 'mislab[inspect]'") from exc


def _slug(text: str) -> str:
    # Inspect parses log file names as {timestamp}_{task}_{model}_{id}: no underscores inside a part.
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "x"


def _short_id(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:22]


def _score_value(value: Any) -> Any:
    """Our value as an Inspect score value: booleans stay booleans, None/NaN become unscored (NaN)."""
    try:
        result = outcome(value)
    except ValueError:
        return value if isinstance(value, str | int | float) else repr(value)
    return float("nan") if result is None else result


def _messages(record: SampleRecord) -> tuple[list[ChatMessage], list[dict[str, Any]]]:
    """The transcript as Inspect chat messages, and the info entries set aside (with the message number,
    counted from 1 as the viewer does, that each follows)."""
    from inspect_ai.model import (
        ChatMessageAssistant,
        ChatMessageSystem,
        ChatMessageTool,
        ChatMessageUser,
        ContentReasoning,
        ContentText,
    )
    from inspect_ai.tool import ToolCall, ToolCallContent

    messages: list[ChatMessage] = []
    notes: list[dict[str, Any]] = []
    for turn in record.transcript:
        if isinstance(turn, SystemTurn):
            messages.append(ChatMessageSystem(content=turn.content))
        elif isinstance(turn, UserTurn):
            messages.append(ChatMessageUser(content=turn.content))
        elif isinstance(turn, ToolTurn):
            messages.append(ChatMessageTool(content=turn.content, tool_call_id=turn.call_id, function=turn.name))
        elif isinstance(turn, AssistantTurn):
            calls = []
            for call in turn.tool_calls:
                error = call.parse_error
                calls.append(ToolCall(
                    id=call.id, function=call.name, arguments=call.arguments or {},
                    parse_error=f"{error}; raw arguments: {call.raw_arguments}" if error else None,
                    # Inspect has no notion of a call recovered from text; its title says so in the viewer.
                    view=ToolCallContent(title=f"{call.name} (recovered from text)", format="text",
                                         content=call.raw_arguments or "") if call.recovered else None,
                ))  # fmt: skip
            text = turn.content
            content: Any = (
                [ContentReasoning(reasoning=turn.reasoning), ContentText(text=text)] if turn.reasoning else text
            )
            entry = turn.to_json()
            keys = ("finish_reason", "cached", "usage", "error")
            metadata = {k: entry[k] for k in keys if entry.get(k) is not None}
            recovered = [c.id for c in turn.tool_calls if c.recovered]
            if recovered:
                metadata["recovered_tool_calls"] = recovered
            messages.append(ChatMessageAssistant(content=content, tool_calls=calls or None, model=record.model,
                                                 source="generate", metadata=metadata or None))  # fmt: skip
        else:
            notes.append({"after_message": len(messages), "kind": turn.kind, "text": turn.text, **turn.data})
    return messages, notes


def _usage(record: SampleRecord) -> ModelUsage:
    from inspect_ai.model import ModelUsage

    # Inspect's input_tokens exclude cache reads; our prompt_tokens include them (OpenAI's convention).
    return ModelUsage(
        input_tokens=record.prompt_tokens - record.cached_prompt_tokens,
        output_tokens=record.completion_tokens,
        total_tokens=record.prompt_tokens + record.completion_tokens,
        input_tokens_cache_read=record.cached_prompt_tokens,
        total_cost=record.cost,
    )


def _sample(
    record: SampleRecord, values: Mapping[Hashable, Any], labels: list[Label], columns: list[str]
) -> EvalSample:
    from inspect_ai.log import EvalError, EvalSample
    from inspect_ai.model import ChatCompletionChoice, ChatMessageAssistant, ModelOutput
    from inspect_ai.scorer import Score

    messages, notes = _messages(record)
    first_reply = next((i for i, m in enumerate(messages) if isinstance(m, ChatMessageAssistant)), len(messages))
    replies = [m for m in messages if isinstance(m, ChatMessageAssistant)]
    output = ModelOutput(model=record.model, usage=_usage(record))
    if replies:
        last = [t for t in record.transcript if isinstance(t, AssistantTurn)][-1]
        stop = STOP_REASONS.get(str(last.finish_reason), "unknown")
        output.choices = [ChatCompletionChoice(message=replies[-1], stop_reason=stop)]
        output.completion = replies[-1].text
    by_scorer = {label.scorer: label for label in labels}
    scores: dict[str, Any] = {}
    # An errored sample has no scores (Inspect: "had errors and were not scored"), not n/a ones.
    for column in columns if record.status == "done" else []:
        label = by_scorer.get(column)
        value = _score_value(values.get(column))
        explanation = label.explanation if label else None
        metadata = {"judge": label.judge} if label and label.judge else None
        if isinstance(value, float) and value != value:  # NaN: not applicable
            scores[column] = Score.unscored(reason="not applicable", explanation=explanation, metadata=metadata)
        else:
            scores[column] = Score(value=value, explanation=explanation, metadata=metadata)
    error = None
    if record.status != "done":
        trace = str(record.metadata.get("traceback", ""))
        error = EvalError(message=record.error or record.status, traceback=trace, traceback_ansi=trace)
    return EvalSample(
        id=_inspect_id(record), epoch=record.epoch + 1, input=messages[:first_reply] or "", target="",
        messages=messages, output=output, scores=scores or None, error=error, uuid=record.sample_id,
        metadata={"mislab_sample_id": record.sample_id, "cell": record.cell, **record.factors,
                  "mislab_metadata": record.metadata, "environment_notes": notes},
        model_usage={record.model: _usage(record)}, total_time=record.seconds, working_time=record.seconds,
    )  # fmt: skip


def _results(s: RunSummary, df: pd.DataFrame, records: list[SampleRecord]) -> EvalResults:
    """Per-cell rates as the log's results: one score per metric, one metric per cell, k/n and interval in its
    metadata."""
    from inspect_ai.log import EvalMetric, EvalResults, EvalScore

    rates = rate_table(df, s.metrics, by="cell", method=s.method).to_dict("records")
    scores = []
    for m in s.metrics:
        c = m.column
        metrics = {
            f"{c}_{row['cell']}": EvalMetric(
                name=str(row["cell"]),
                group=f"rate ({s.interval})",
                value=row[f"{c}_rate"],
                metadata={stat: row[f"{c}_{stat}"] for stat in ("k", "n", "low", "high")} | {"display": row[c]},
            )
            for row in rates
            if row[f"{c}_n"] > 0  # an empty cell has no rate to show
        }
        scored, unscored = sum(row[f"{c}_n"] for row in rates), sum(row[f"{c}_na"] for row in rates)
        scores.append(EvalScore(name=c, scorer=c, scored_samples=scored, unscored_samples=unscored, metrics=metrics))
    done = sum(r.status == "done" for r in records)
    return EvalResults(total_samples=len(records), completed_samples=done, scores=scores)


def _log_for_model(s: RunSummary, model: str, records: list[SampleRecord], labels: dict[str, list[Label]]) -> EvalLog:
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalLog,
        EvalSpec,
        EvalStats,
    )
    from inspect_ai.model import ModelUsage

    run = s.run
    df = s.samples[s.samples["model"] == model]
    columns = [m.column for m in s.metrics]
    extra = sorted({lab.scorer for labs in labels.values() for lab in labs} - set(columns))
    rows = df.set_index("sample_id")
    samples = [
        _sample(r, rows.loc[r.sample_id].to_dict(), labels.get(r.sample_id, []), columns + extra) for r in records
    ]
    usage = sum((sample.model_usage[model] for sample in samples), ModelUsage())
    # Inspect's dataset is our cells; its epochs, ours. (Cells may have different numbers of epochs.)
    cells = list(dict.fromkeys(map(_inspect_id, records)))
    info = run.models.get(model, {})
    endpoint = info.get("endpoint") if isinstance(info, dict) else None
    spec = EvalSpec(
        eval_id=_short_id(run.run_id, model, "eval"), run_id=run.run_id, created=run.created_at, task=run.study,
        task_id=_short_id(run.run_id, "task"), task_display_name=s.title,
        dataset=EvalDataset(name=run.study, samples=len(cells), sample_ids=cells),
        model=model, model_base_url=endpoint if str(endpoint).startswith("http") else None,
        config=EvalConfig(epochs=max((r.epoch for r in records), default=-1) + 1),
        packages={"mislab": run.package_version or "unknown"},
        metadata={"mislab_run_id": run.run_id, "mislab_model": info, "mislab_spec": run.spec,
                  "mislab_prompts": run.prompts},
    )  # fmt: skip
    return EvalLog(
        status=RUN_STATUS.get(run.status, "cancelled"), eval=spec, results=_results(s, df, records),
        stats=EvalStats(started_at=run.created_at, completed_at=run.updated_at, model_usage={model: usage}),
        samples=samples,
    )  # fmt: skip


def _inspect_id(record: SampleRecord) -> str:
    """What Inspect's (id, epoch) pair identifies: a cell's epochs; a branch child's resamples of one parent and
    arm."""
    parent = record.factors.get("parent_sample")
    return f"{parent}~{record.cell}" if parent else record.cell


def export_inspect(
    store: Store, run_id: str, path: str | Path, studies: Mapping[str, CaseStudy[Any]] | None = None
) -> list[Path]:
    """Write the run as Inspect logs into the directory `path`, one `.eval` file per model; return their paths.

    Browse them with `inspect view --log-dir <path>`."""
    _require_inspect()
    from inspect_ai.log import write_eval_log

    s = summarise(store, run_id, studies)
    records = store.sample_records(run_id)
    labels: dict[str, list[Label]] = {}
    for label in store.label_details(run_id):
        labels.setdefault(label.sample_id, []).append(label)
    out_dir = Path(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = s.run.created_at.replace(":", "-")
    written = []
    for model in dict.fromkeys(r.model for r in records):
        log = _log_for_model(s, model, [r for r in records if r.model == model], labels)
        name = f"{stamp}_{_slug(s.run.study)}_{_slug(model)}_{_short_id(run_id, model)}.eval"
        write_eval_log(log, str(out_dir / name), format="eval")
        written.append(out_dir / name)
    return written
