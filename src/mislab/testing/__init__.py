"""Test helpers shipped with the package so case-study authors can script a model too."""

from .scripted_server import Billed, Reply, ScriptedServer, tool_call

__all__ = ["Billed", "Reply", "ScriptedServer", "tool_call"]
