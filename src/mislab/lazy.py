"""Names a package exports but imports on first use (PEP 562), so that importing the package stays cheap: the CLI
loads a study plug-in (and with it the study's package) to build its flags, and must not pay for pandas, scipy or
the model SDK to do so. The package still imports its heavy names under `if TYPE_CHECKING:` for type checkers and
lists them in `__all__`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, modules: Mapping[str, tuple[str, ...]], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`, whose names `modules[m]` live in its submodule `m`, imported
    when one of them is first asked for (then kept in `namespace`, the package's globals)."""
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{where[name]}", package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ())})

    return __getattr__, __dir__
