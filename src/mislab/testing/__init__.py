"""Test helpers shipped with the package so case-study authors can script a model too."""

from .scripted_server import Reply, ScriptedServer, tool_call

__all__ = ["Reply", "ScriptedServer", "tool_call"]
