"""Reports of a run: terminal tables, a self-contained HTML page with a transcript browser, published
replication targets, and an Inspect AI log export (needs the `inspect` extra; imported only when called)."""

from .html import write_report
from .inspect_export import export_inspect
from .published import Target, load_targets
from .summary import RunSummary, summarise
from .tables import comparisons, rate_table
from .terminal import show_run

__all__ = [
    "RunSummary", "Target", "comparisons", "export_inspect", "load_targets", "rate_table", "show_run", "summarise",
    "write_report",
]  # fmt: skip
