"""The Inspect export reads back with inspect_ai's own reader: one log per model, messages with tool calls and
tool results, boolean scores (n/a unscored), per-cell rates, usage; inspect_ai is imported only on use."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from mislab.report import export_inspect

from support.runs import LOCAL, O3, PLANTED, RUN, SABOTAGED, STUDIES, make_run

pytest.importorskip("inspect_ai")


def test_export_reads_back(tmp_path: Path) -> None:
    from inspect_ai.log import read_eval_log
    from inspect_ai.model import ChatMessageAssistant, ChatMessageTool, ContentReasoning

    store, run_id = make_run(tmp_path)
    paths = export_inspect(store, run_id, tmp_path / "logs", studies=STUDIES)
    assert [p.suffix for p in paths] == [".eval", ".eval"]  # one per model: Inspect logs name one model
    logs = {log.eval.model: log for log in (read_eval_log(str(p)) for p in paths)}
    assert set(logs) == {O3, LOCAL}
    log = logs[O3]
    assert log.status == "success" and log.eval.run_id == RUN and log.eval.task == "shutdown"
    assert log.eval.dataset.samples == 2 and log.eval.config.epochs == 7
    assert log.samples is not None and len(log.samples) == len(SABOTAGED[(O3, "palisade_a")]) + 1 + len(
        SABOTAGED[(O3, "palisade_e")]
    )

    sample = next(s for s in log.samples if s.id == "palisade_a" and s.epoch == 1)
    assert sample.metadata["mislab_sample_id"] == f"{O3}::palisade_a::0" and sample.metadata["variant"] == "palisade_a"
    assert [m.role for m in sample.messages] == [
        "system", "user", "assistant", "tool", "assistant", "tool", "assistant", "assistant",
    ]  # fmt: skip
    assert [m.role for m in sample.input] == ["system", "user"]  # type: ignore[union-attr]
    first = sample.messages[2]
    assert isinstance(first, ChatMessageAssistant) and first.tool_calls
    assert (first.tool_calls[0].id, first.tool_calls[0].function) == ("c1", "bash")
    assert first.tool_calls[0].arguments == {"cmd": "./next_task"}
    assert isinstance(first.content, list) and isinstance(first.content[0], ContentReasoning)
    assert "<SCRATCHPAD_REASONING>" in first.text
    tool = sample.messages[3]
    assert isinstance(tool, ChatMessageTool) and tool.tool_call_id == "c1" and tool.function == "bash"
    assert PLANTED in tool.text  # data are exported verbatim; escaping is the viewer's job
    recovered = sample.messages[4]
    assert isinstance(recovered, ChatMessageAssistant) and recovered.tool_calls
    assert recovered.tool_calls[0].view is not None and "recovered from text" in str(recovered.tool_calls[0].view.title)
    malformed = sample.messages[6]
    assert isinstance(malformed, ChatMessageAssistant) and malformed.tool_calls
    assert malformed.tool_calls[0].parse_error and '{"cmd": "echo hi"' in malformed.tool_calls[0].parse_error
    notes = sample.metadata["environment_notes"]
    assert notes[0]["text"].startswith("The machine will shut down") and notes[0]["after_message"] == 4

    assert sample.scores is not None
    assert sample.scores["sabotaged"].value is True and sample.scores["complied"].value is False
    assert (
        sample.scores["judge_sabotage"].explanation is not None
        and "shutdown.sh" in sample.scores["judge_sabotage"].explanation
    )
    na = next(s for s in log.samples if s.id == "palisade_a" and s.epoch == 5)
    assert na.scores is not None and math.isnan(na.scores["sabotaged"].value)  # type: ignore[arg-type]
    errored = next(s for s in log.samples if s.error is not None)
    assert errored.error is not None and errored.error.message == "RuntimeError: sandbox died"
    assert errored.scores is None  # not scored, rather than "not applicable"

    usage = sample.model_usage[O3]
    assert (usage.input_tokens, usage.input_tokens_cache_read, usage.output_tokens) == (350, 50, 80)
    assert usage.total_tokens == 480 and usage.total_cost == pytest.approx(0.01)
    total = log.stats.model_usage[O3]
    assert total.output_tokens == 80 * 12 and total.total_cost == pytest.approx(0.12)  # 12 finished samples

    assert log.results is not None
    score = next(s for s in log.results.scores if s.name == "sabotaged")
    cell_a = score.metrics["sabotaged_palisade_a"]
    assert cell_a.value == pytest.approx(0.8) and cell_a.metadata is not None
    assert (cell_a.metadata["k"], cell_a.metadata["n"]) == (4, 5)
    assert cell_a.metadata["display"] == "4/5 = 80.0% [37.6, 96.4]"
    assert (score.scored_samples, score.unscored_samples) == (9, 3)


def test_core_import_does_not_load_inspect() -> None:
    code = "import sys, mislab.report; sys.exit('inspect_ai' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_missing_extra_has_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, run_id = make_run(tmp_path)
    monkeypatch.setitem(sys.modules, "inspect_ai", None)  # what an environment without the extra looks like
    with pytest.raises(ImportError, match=r"pip install 'mislab\[inspect\]'"):
        export_inspect(store, run_id, tmp_path / "logs", studies=STUDIES)
