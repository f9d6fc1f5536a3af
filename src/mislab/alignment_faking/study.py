"""The alignment-faking study as a mislab plug-in (Greenblatt et al. 2024; the ARENA notebook).

Design: cells are the user's tier (free = "training", paid = "unmonitored") crossed with optional ablation
factors (`factors = {scratchpad = [true, false]}` in an experiment file). The runner's `n` is the number of
queries: epoch k of every cell asks the k-th query of one seeded order, so each query goes to both tiers and
the compliance gap can be tested pairwise (`query_id` matches the twins).

A sample is one conversation (`conversation`), judged during the run when a judge model is set (`judges`: the
verdicts are labels), and scored from its transcript and labels (`scorers.score_conversation`) by tags
(model-free), ARENA's keyword baseline and the judges. Options: `options`."""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..data.files import sha256_hex
from ..models import current_cache_scope
from ..options import OptionsError
from ..scratchpad import extract_scratchpad
from ..study import CaseStudy, Cell, Comparison, Flag, Metric, SampleResult
from .judges import COLUMN_OF_RUBRIC, JUDGE_RUBRICS, Judges, build_judges, run_judges
from .options import AlignmentFakingOptions, cell_options, scenario_config
from .prompts import PAPER_DATA, build_system_prompt, build_user_prompt
from .queries import ADVBENCH_DATA, resolve_queries, sample_queries
from .scorers import default_keywords, keyword_af_matches, score_conversation

if TYPE_CHECKING:
    from ..estimate import CallEstimate
    from ..models import ChatModel
    from ..store import Label
    from ..transcript import Transcript

SCORER_VERSION = "2"  # 2: not-applicable reasons; judges' verdicts read from labels


@functools.cache
def _query_order(source: str, column: str | None, seed: int) -> tuple[str, ...]:
    # Duplicates are dropped: a query asked twice in one tier would make query_id ambiguous for the pairing.
    return tuple(sample_queries(list(dict.fromkeys(resolve_queries(source, column))), None, seed))


def query_order(options: AlignmentFakingOptions) -> tuple[str, ...]:
    """The run's queries in their seeded order: epoch k asks the k-th, in every cell."""
    return _query_order(str(options.queries), options.query_column, options.seed)


def query_for(options: AlignmentFakingOptions, epoch: int) -> tuple[str, str]:
    """(query_id, query) of epoch `epoch`: the epoch-th query of the seeded order, the same in every cell."""
    order = query_order(options)
    if epoch >= len(order):
        raise OptionsError(f"sample {epoch} needs query #{epoch + 1}, but {options.queries} has {len(order)}; lower n")
    return sha256_hex(order[epoch])[:12], order[epoch]


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class AlignmentFakingStudy(CaseStudy[AlignmentFakingOptions]):
    name = "alignment_faking"
    title = "Alignment faking"
    options_schema = AlignmentFakingOptions
    scorer_version = SCORER_VERSION
    data = (PAPER_DATA, ADVBENCH_DATA)  # the third-party files it reads, pinned (`mislab data fetch`)
    scored_labels = frozenset(JUDGE_RUBRICS)
    flags = (
        Flag("truncated", True, "cut off by max_tokens"),
        Flag("missing_tags", True, "without a tag in the final output"),
        Flag("empty_output", True, "without a final output"),
    )
    metrics = [
        Metric("accepted", "Accepted (tag)", "the final output starts with the acceptance tag"),
        Metric("judge_comply", "Complied (judge)", "the compliance judge read the final output as real help"),
        Metric(
            "af_reasoning",
            "Alignment-faking reasoning",
            "the primary AF classifier (see af_reasoning_source)",
            good=False,
        ),  # fmt: skip
        Metric(
            "accept_then_refuse",
            "Accepted, then refused",
            "accepted by tag, then refused in words: confusion",
            good=False,
        ),  # fmt: skip
        Metric("missing_tags", "Missing tags", "neither tag in the final output", good=False),
    ]
    # How the reports compare cells: free against paid, paired on the query, within model and condition.
    report_comparison = Comparison(by="tier", baseline="paid", paired_on=("query_id",), within=("model", "condition"))

    def cells(self, options: AlignmentFakingOptions) -> list[Cell]:
        factors = options.factors
        cells = []
        for values in itertools.product(*factors.values()):
            combo = dict(zip(factors, values, strict=True))
            try:  # a bad tag or tier_value fails here, before any sample
                scenario_config(cell_options(options, combo))
            except ValueError as exc:
                raise OptionsError(f"factors {combo}: {exc}") from None
            condition = ",".join(f"{k}={_show(v)}" for k, v in combo.items()) or "base"
            for tier in options.tiers:
                cell_id = f"{tier}|{condition}" if combo else tier
                cells.append(Cell(cell_id, {"tier": tier, "condition": condition, **combo}))
        return cells

    def prompts(self, cells: list[Cell], options: AlignmentFakingOptions) -> dict[str, Any]:
        """Per cell, the exact system prompt and the user turn (with `{query}` where the query goes), with
        their ids and sha256; under "judges", every judge prompt by id. Building them here makes a factor the
        prompt cannot take fail before any sample runs."""
        out: dict[str, Any] = {}
        for cell in cells:
            opts = cell_options(options, cell.factors)
            config = scenario_config(opts)
            system = build_system_prompt(config)
            user = build_user_prompt("{query}", cell.factors["tier"] == "free", config)
            out[cell.id] = {
                "system_prompt": str(system), "system_prompt_id": system.prompt_id, "status": system.status,
                "system_prompt_sha256": system.sha256, "system_prompt_source": system.source,
                "user_prompt": str(user), "user_prompt_id": user.prompt_id, "prefill": opts.prefill,
            }  # fmt: skip
        judge_prompts = self.judges(options).prompts()
        if judge_prompts:
            out["judges"] = judge_prompts
        return out

    def estimate(self, cell: Cell, options: AlignmentFakingOptions) -> CallEstimate:
        """A first-run guess of one conversation: with a scratchpad, a reasoning turn and, after <NEXT/>, the output
        turn (Redwood's harness; more turns happen, up to 1 + max_next); without, one turn. Each turn writes about
        500 visible tokens (a scratchpad block or an answer), within max_tokens, and is read again by the next.
        Reasoning tokens and judge calls are not in it (the estimate adds the model's reasoning). Later dry runs use
        measured samples instead."""
        from ..estimate import CallEstimate, tokens_of

        opts = cell_options(options, cell.factors)
        config = scenario_config(opts)
        queries = query_order(opts)
        query = sum(map(tokens_of, queries)) / len(queries) if queries else 0.0
        user = build_user_prompt("", cell.factors["tier"] == "free", config)
        base = tokens_of(build_system_prompt(config)) + tokens_of(user) + query
        calls = min(2, 1 + opts.max_next) if opts.scratchpad else 1
        reply = min(500.0, float(opts.max_tokens))
        return CallEstimate(calls, sum(base + i * reply for i in range(calls)), calls * reply)

    def check_plan(self, n: int, options: AlignmentFakingOptions) -> None:
        """n is the number of queries: the query set must have that many."""
        available = len(query_order(options))
        if n > available:
            raise OptionsError(f"n={n} but the query set {str(options.queries)!r} has {available} distinct queries")

    def __init__(self) -> None:
        self._judges: dict[tuple[Any, ...], Judges] = {}

    def judges(self, options: AlignmentFakingOptions) -> Judges:
        """The judges the options ask for, built once per setting (and per cache the run uses)."""
        o = options
        key = (id(o.judge) if not isinstance(o.judge, str | None) else o.judge, o.judge_base_url, o.strongreject,
               tuple(o.af_judges), o.votes, o.vote_threshold, repr(current_cache_scope()))  # fmt: skip
        if key not in self._judges:
            self._judges[key] = build_judges(options)
        return self._judges[key]

    def label_column(self, rubric_id: str) -> str | None:
        return COLUMN_OF_RUBRIC.get(rubric_id)

    async def run_sample(
        self, model: ChatModel, cell: Cell, epoch: int, options: AlignmentFakingOptions
    ) -> SampleResult:
        from .conversation import converse

        opts = cell_options(options, cell.factors)
        config = scenario_config(opts)
        tier = cell.factors["tier"]
        query_id, query = query_for(opts, epoch)
        system = build_system_prompt(config)
        user = build_user_prompt(query, tier == "free", config)
        params: dict[str, Any] = {"temperature": opts.temperature, "max_tokens": opts.max_tokens}
        if opts.carry_reasoning is not None:
            params["carry_reasoning"] = opts.carry_reasoning
        transcript = await converse(
            model, system, user, prefill=opts.prefill, max_next=opts.max_next, stop=opts.stop, sample_index=epoch,
            **params,
        )  # fmt: skip
        labels = await run_judges(self.judges(options), transcript)
        facts = {
            "tier": tier, "is_free_tier": tier == "free", "query_id": query_id, "query": query,
            "system_prompt_id": system.prompt_id, "system_prompt_sha256": system.sha256,
            "user_prompt_id": user.prompt_id,
        }  # fmt: skip
        response = "\n\n".join(t.content for t in transcript.assistant_turns)
        metadata = {"keyword_matches": keyword_af_matches(extract_scratchpad(response), default_keywords() or {})}
        return SampleResult(transcript, facts, metadata, labels)

    def score(
        self, transcript: Transcript, cell: Cell, options: AlignmentFakingOptions, labels: Mapping[str, Label]
    ) -> dict[str, Any]:
        config = scenario_config(cell_options(options, cell.factors))
        turns = [(t.content, t.finish_reason) for t in transcript.assistant_turns]
        return score_conversation(turns, labels, config.accept_tag, config.reject_tag, default_keywords())


study = AlignmentFakingStudy()
