"""What a person sees when the embedded model cannot start: one line saying what failed, what to do and where
the log is; the log's last lines only with the traceback. Both errors are `ModelError`s, so the CLI prints
them as one line and a run stops cleanly instead of failing sample after sample."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from mislab.models import ModelError
from mislab.models.local.server import LocalServerError, _log_reason
from mislab.models.local.weights import WeightsError, ensure_weights

from support.weights import info_for, make_parts

LOG = """# /venv/bin/llama-server -m /cache/models/qwen.gguf --port 4711
build: 7000 (abc) with cc for x86_64-linux-gnu
main: loading model
common_chat_templates_init: failed to parse chat template (defaulting to chatml): expected expression at row 1
srv    load_model: failed to load the chat template
main: exiting due to model loading error
"""


def test_the_log_line_that_explains_the_failure_goes_in_the_message() -> None:
    assert _log_reason(LOG).startswith("common_chat_templates_init: failed to parse chat template")
    assert _log_reason("# command\nall good\nlast words\n") == "last words"
    assert _log_reason("") == ""
    assert len(_log_reason("error: " + "x" * 1000)) == 240


def test_server_error_is_one_line_with_the_log_tail_as_a_note(tmp_path: Path) -> None:
    log = tmp_path / "llama-server.log"
    error = LocalServerError(f"llama-server exited. Log: {log}", log, LOG)
    assert isinstance(error, ModelError) and "\n" not in str(error) and error.log_path == log
    shown = "".join(traceback.format_exception(error))  # what --debug prints
    assert "failed to load the chat template" in shown and str(log) in shown


def test_weights_that_cannot_be_written_say_where_and_what_to_do(tmp_path: Path) -> None:
    parts = make_parts(tmp_path / "parts")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").write_text("a file where the models directory should be")
    with pytest.raises(WeightsError) as excinfo:
        ensure_weights(info_for(parts), cache, parts)
    message = str(excinfo.value)
    assert isinstance(excinfo.value, ModelError) and "\n" not in message
    assert "could not assemble the weights of 'fake-model'" in message and str(cache / "models") in message
    assert "MISLAB_CACHE_DIR" in message
