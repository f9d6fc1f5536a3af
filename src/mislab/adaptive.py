"""Adaptive sampling: keep sampling a cell until the interval of its rate is narrow enough, or n_max.

Used only when an experiment asks for it (`[adaptive]` in the file); the run's stored spec says so, and the
cells that stopped at n_max without reaching the target are reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from .stats import halfwidth, rate


@dataclass(frozen=True)
class Adaptive:
    metric: str  # a boolean score column, e.g. "complied"
    halfwidth: float  # target half-width of the Wilson interval, as a proportion (0.05 = ±5 points)
    n_max: int

    @classmethod
    def from_dict(cls, data: dict[str, Any], n: int) -> Adaptive:
        try:
            spec = cls(str(data["metric"]), float(data["halfwidth"]), int(data["n_max"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"[adaptive] needs metric, halfwidth and n_max: {exc}") from exc
        if not 0 < spec.halfwidth < 0.5 or spec.n_max < n:
            raise ValueError("[adaptive] needs 0 < halfwidth < 0.5 and n_max >= n")
        return spec


def cell_status(df: pd.DataFrame, adaptive: Adaptive) -> pd.DataFrame:
    """Per model and cell: epochs run, k/n of the metric (n/a and errors left out), the interval half-width,
    and whether the cell needs more samples."""
    rows = []
    for (model, cell), group in df.groupby(["model", "cell"], sort=False):
        done = group[group["status"] == "done"]
        values = done[adaptive.metric].dropna() if adaptive.metric in done else pd.Series(dtype=bool)
        r = rate(int(values.astype(bool).sum()), len(values))
        epochs = int(group["epoch"].max()) + 1
        width = halfwidth(r) if r.n else 1.0
        rows.append(
            {"model": model, "cell": cell, "epochs": epochs, "k": r.k, "n": r.n, "halfwidth": width,
             "needs_more": width > adaptive.halfwidth and epochs < adaptive.n_max}
        )  # fmt: skip
    return pd.DataFrame(rows)
