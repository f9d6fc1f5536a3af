"""Real round trips to the embedded model through llama-server and the `openai` client.

Nothing here is skipped: without the weights or the server binary these tests fail, with the install hint.
All tests share one cache directory (conftest gives each test its own), so the 1 GB of weights is
assembled once per session, and at most one server runs at a time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from mislab.models.local import DEFAULT_MODEL, LocalServer, LocalServerError, ensure_server

pytestmark = pytest.mark.slow  # starts llama-server on the embedded model (its weights assembled first)
SRC = Path(__file__).resolve().parents[1] / "src"
BASH = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": "Run a shell command and return its output.",
        "parameters": {
            "type": "object",
            "properties": {"cmd": {"type": "string", "description": "the command"}},
            "required": ["cmd"],
        },
    },
}
SUBMIT = {
    "type": "function",
    "function": {
        "name": "submit",
        "description": "Submit the final answer.",
        "parameters": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
    },
}
SYSTEM = {"role": "system", "content": "You are an agent in a Linux sandbox. Use the bash tool to act."}


@pytest.fixture(scope="module")
def cache(session_cache_dir: Path) -> Path:
    return session_cache_dir  # the weights are assembled once per test session


def _alive(pid: int) -> bool:
    """Running and not a zombie (a reparented child may linger as one until its new parent reaps it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


CHILD = """
import os, sys, threading, time, urllib.request
from mislab.models.local import LocalServer
server = LocalServer(cache_dir=sys.argv[1])
starter = threading.Thread(target=server.start)
starter.start()
starter.join()
# Until the thread that launched the server is gone from the kernel too (a death signal tied to it is sent then),
# then until the server answers: one that answers after that was sent no such signal.
deadline = time.monotonic() + 10
while os.path.exists(f"/proc/self/task/{starter.native_id}") and time.monotonic() < deadline:
    time.sleep(0.01)
try:
    urllib.request.urlopen(server.url + "/health", timeout=10).read()
except OSError:
    pass  # a killed server answers nothing: `running` and the test's own check say so
print(server.process.pid, server.running, flush=True)
sys.stdin.read()  # until the test kills this process (or, if the test dies, its end of the pipe closes)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_server_outlives_its_starting_thread_but_not_a_killed_parent(cache: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(cache)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, f"child failed to start a server:\n{child.stderr.read() if child.stderr else ''}"
        pid_text, running = line.split()
        server_pid = int(pid_text)
        assert running == "True" and _alive(server_pid)
        child.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the kernel can stop the server now
        child.wait()
        deadline = time.monotonic() + 15
        while _alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(server_pid), "llama-server outlived the killed Python process"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_startup_failure_reports_the_server_log(cache: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% if %}")
    with pytest.raises(LocalServerError) as excinfo:
        LocalServer(cache_dir=cache, chat_template=broken).start()
    message = str(excinfo.value)
    assert "exited with code" in message
    assert "template" in message  # the tail of llama-server's own log says what went wrong


@pytest.fixture(scope="module")
def server(cache: Path) -> Iterator[LocalServer]:
    server = ensure_server(cache_dir=cache)
    yield server
    server.stop()


def test_ensure_server_shares_one_process_across_threads(cache: Path) -> None:
    results: list[LocalServer] = []
    start = lambda: results.append(ensure_server(DEFAULT_MODEL, cache))  # noqa: E731
    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(s is results[0] for s in results)
    server = results[0]
    assert server.running  # the launching threads have exited; the server has not
    assert ensure_server("default", cache_dir=cache) is server
    assert server.model_name == "qwen2.5-coder-1.5b"
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.log_path is not None and server.log_path.is_file()
    # The thread count was decided at launch (from the cores idle then) and is what the server was given.
    assert server.threads is not None and server.threads >= 1
    assert server.command[server.command.index("--threads") + 1] == str(server.threads)
    assert server.describe()["local_server"]["threads"] == server.threads


def test_the_thread_count_is_not_decided_when_the_server_object_is_made(cache: Path) -> None:
    assert LocalServer(cache_dir=cache).threads is None  # measured at start (ensure_server makes it long before)
    assert LocalServer(cache_dir=cache, threads=3).threads == 3


def chat(server: LocalServer, **request: Any) -> Any:
    async def call() -> Any:
        client = AsyncOpenAI(base_url=server.base_url, api_key="local", max_retries=0, timeout=120)
        async with client:
            return await client.chat.completions.create(model=server.model_name, temperature=0, seed=1, **request)

    return asyncio.run(call())


def test_required_tool_call_is_a_real_tool_call(server: LocalServer) -> None:
    response = chat(
        server,
        messages=[SYSTEM, {"role": "user", "content": "List the files in the current directory."}],
        tools=[BASH],
        tool_choice="required",
        max_tokens=48,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "bash"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["cmd"], str) and arguments["cmd"].strip()
    assert response.model == "qwen2.5-coder-1.5b"


def test_plain_answer(server: LocalServer) -> None:
    response = chat(
        server, messages=[{"role": "user", "content": "What is 2+3? Answer with a number only."}], max_tokens=8
    )
    assert "5" in response.choices[0].message.content
    assert not response.choices[0].message.tool_calls


TOOL_LOOP = [
    SYSTEM,
    {"role": "user", "content": "How many files are here? Submit the number."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call-1", "type": "function", "function": {"name": "bash", "arguments": '{"cmd": "ls"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call-1", "content": "notes.txt\nrun.sh"},
]


def test_template_renders_tools_calls_and_results(server: LocalServer) -> None:
    rendered = httpx.post(
        server.url + "/apply-template", json={"messages": TOOL_LOOP, "tools": [BASH, SUBMIT]}, timeout=30
    ).json()["prompt"]
    assert rendered.startswith("<|im_start|>system\nYou are an agent in a Linux sandbox.")
    system_turn = rendered.split("<|im_end|>")[0]
    assert '{"type": "function", "function": {"name": "submit"' in system_turn
    assert "in a json code block" in system_turn
    assert '<|im_start|>assistant\n```json\n{"name": "bash", "arguments": {"cmd": "ls"}}\n```<|im_end|>' in rendered
    assert "<|im_start|>user\n<tool_response>\nnotes.txt\nrun.sh\n</tool_response><|im_end|>" in rendered
    assert rendered.endswith("<|im_start|>assistant\n")


def test_tool_loop_continues_with_a_real_call(server: LocalServer) -> None:
    response = chat(server, messages=TOOL_LOOP, tools=[BASH, SUBMIT], tool_choice="required", max_tokens=64)
    calls = response.choices[0].message.tool_calls
    assert calls
    for call in calls:
        assert call.function.name in {"bash", "submit"}
        assert isinstance(json.loads(call.function.arguments), dict)
