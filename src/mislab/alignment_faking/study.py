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
    from ..branching import Branch, Prefix
    from ..estimate import CallEstimate
    from ..models import ChatModel
    from ..store import Label, SampleRecord
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
    decision_point = "reply"
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
        return SampleResult(transcript, facts, _keyword_matches(transcript), labels)

    # --- branching ------------------------------------------------------------------------------------------

    def branch_point(self, transcript: Transcript, name: str) -> int | None:
        """`reply`: the model's (first) reply to the query."""
        from ..branching import BranchError, assistant_positions

        if name != "reply":
            raise BranchError(f"the alignment-faking study names one branch point, reply (not {name!r}); or turn:K")
        positions = assistant_positions(transcript)
        return positions[0] if positions else None

    def with_variant(
        self, prefix: Prefix, parent: SampleRecord, variant: str, options: AlignmentFakingOptions
    ) -> Prefix:
        """`factor=value` (e.g. `rlhf_paragraph=false`): the system prompt and user turn that cell of the run's
        options would have sent, in place of the parent's, for the same query and tier."""
        from dataclasses import replace

        from ..branching import Prefix
        from ..transcript import SystemTurn, Transcript, UserTurn

        opts = cell_options(options, self.variant_factors(parent.factors, variant))
        config = scenario_config(opts)
        system = build_system_prompt(config)
        user = build_user_prompt(str(parent.scores.get("query", "")), parent.factors.get("tier") == "free", config)
        turns = [replace(t, content=str(system)) if isinstance(t, SystemTurn) else t for t in prefix.turns]
        first_user = next(i for i, t in enumerate(turns) if isinstance(t, UserTurn))
        turns[first_user] = UserTurn(str(user))
        return Prefix(Transcript(turns), prefix.prefill, prefix.decision)

    def variant_factors(self, factors: Mapping[str, Any], variant: str) -> dict[str, Any]:
        """`factor=value` (a prompt option, its value as TOML writes it): the parent's factors with that one
        changed."""
        import tomllib

        from ..branching import BranchError
        from .options import check_factor

        name, sep, raw = variant.partition("=")
        if not sep:
            raise BranchError(f"--variant {variant!r}: the alignment-faking study's variants are factor=value, e.g. "
                              "rlhf_paragraph=false")  # fmt: skip
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        try:
            check_factor(name, value)
        except ValueError as exc:
            raise BranchError(f"--variant {variant!r}: {exc}") from None
        return {**factors, name: value}

    async def continue_sample(
        self, model: ChatModel, branch: Branch, epoch: int, options: AlignmentFakingOptions
    ) -> SampleResult:
        """The conversation from the prefix (no environment to restore), the reply's start continued as the same
        turn, then judged as a run's sample is."""
        from ..transcript import Event, SystemTurn, Transcript
        from .conversation import converse

        parent = branch.parent
        opts = cell_options(options, parent.factors)
        params: dict[str, Any] = {"temperature": opts.temperature, "max_tokens": opts.max_tokens}
        if opts.carry_reasoning is not None:
            params["carry_reasoning"] = opts.carry_reasoning
        transcript = Transcript(branch.prefix.turns)
        transcript.append(Event("branch", f"branched from {parent.sample_id} at {branch.point.text}: "
                                f"{branch.intervention.label}", {"parent": parent.sample_id, "at": branch.point.text,
                                "intervention": branch.intervention.label, "replay_faithful": True}))  # fmt: skip
        prefill = branch.prefix.prefill if branch.prefix.prefill is not None else opts.prefill
        transcript = await converse(model, "", "", prefill=prefill, max_next=opts.max_next, stop=opts.stop,
                                    sample_index=epoch, transcript=transcript, **params)  # fmt: skip
        labels = await run_judges(self.judges(options), transcript)
        facts = {k: parent.scores.get(k) for k in ("tier", "is_free_tier", "query_id", "query", "system_prompt_id",
                                                   "system_prompt_sha256", "user_prompt_id")}  # fmt: skip
        sent = sha256_hex(next((t.content for t in transcript if isinstance(t, SystemTurn)), ""))
        if sent != facts["system_prompt_sha256"]:  # an arm that changed it: the prompt actually sent, named so
            facts.update(system_prompt_sha256=sent, system_prompt_id=f"{facts['system_prompt_id']} "
                         f"({branch.intervention.label})")  # fmt: skip
        if _first_user(branch.prefix.turns) != _first_user(parent.transcript):
            facts["user_prompt_id"] = f"{facts['user_prompt_id']} ({branch.intervention.label})"
        return SampleResult(transcript, {**facts, "replay_faithful": True}, _keyword_matches(transcript), labels)

    def score(
        self, transcript: Transcript, cell: Cell, options: AlignmentFakingOptions, labels: Mapping[str, Label]
    ) -> dict[str, Any]:
        config = scenario_config(cell_options(options, cell.factors))
        turns = [(t.content, t.finish_reason) for t in transcript.assistant_turns]
        return score_conversation(turns, labels, config.accept_tag, config.reject_tag, default_keywords())


study = AlignmentFakingStudy()


def _first_user(transcript: Transcript) -> str | None:
    from ..transcript import UserTurn

    return next((t.content for t in transcript if isinstance(t, UserTurn)), None)


def _keyword_matches(transcript: Transcript) -> dict[str, Any]:
    """What a sample keeps beside its scores: the alignment-faking keywords its scratchpad matched."""
    from .conversation import response_of

    return {
        "keyword_matches": keyword_af_matches(extract_scratchpad(response_of(transcript)), default_keywords() or {})
    }
