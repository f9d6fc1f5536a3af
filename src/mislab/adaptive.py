"""Adaptive sampling: keep sampling a cell until the interval of its rate is narrow enough, or n_max.

Used only when an experiment asks for it (`[adaptive]` in the file); the run's stored spec says so, and the
cells that stopped at n_max without reaching the target are reported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from .report.tables import rate_table


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
    """Per model and cell: epochs run, k/n of the metric (counted as the reports count it: n/a and errors
    left out), the Wilson half-width, and whether the cell needs more samples."""
    rates = rate_table(df, [adaptive.metric])
    epochs = df.groupby(["model", "cell"], sort=False)["epoch"].max().add(1).rename("epochs").reset_index()
    out = rates.merge(epochs, on=["model", "cell"])
    out["halfwidth"] = [(high - low) / 2 if n else 1.0 for low, high, n in zip(
        out[f"{adaptive.metric}_low"], out[f"{adaptive.metric}_high"], out[f"{adaptive.metric}_n"], strict=True
    )]  # fmt: skip
    out["needs_more"] = (out["halfwidth"] > adaptive.halfwidth) & (out["epochs"] < adaptive.n_max)
    return out
