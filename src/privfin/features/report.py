"""The selection report: one row per feature of every party, as the label holder sees it.

Columns: ``party`` (owner), ``feature`` (own name, or the alias of a passive feature such as
``gov.f017``), ``name`` (what is shown: the alias unless the owner revealed its names), ``bins``,
``iv``, ``auc``, ``ks``, ``missing_rate``, ``unique_ratio``, ``coef``, ``se``, ``p_value``
(univariate LR on the WOE-coded feature), ``corr_partner`` / ``corr_abs`` (strongest correlated
other feature and ``|r|``; empty without a correlation step), ``kept`` and ``reason``.

:class:`SelectionReport` wraps the frame: ``to_csv``, ``to_html`` (a ``<table>`` fragment with
CSS classes, for embedding in a full HTML report page) and ``rich_table`` for the terminal.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

COLUMNS = ["party", "feature", "name", "bins", "iv", "auc", "ks", "missing_rate", "unique_ratio", "coef", "se",
           "p_value", "corr_partner", "corr_abs", "kept", "reason"]
_FMT = {"iv": "{:.4f}", "auc": "{:.4f}", "ks": "{:.4f}", "missing_rate": "{:.3f}", "unique_ratio": "{:.4f}",
        "coef": "{:.4f}", "se": "{:.4f}", "p_value": "{:.3g}", "corr_abs": "{:.3f}"}
_SHOWN = ["party", "name", "bins", "iv", "auc", "ks", "missing_rate", "unique_ratio", "coef", "p_value",
          "corr_partner", "corr_abs", "kept", "reason"]


def _cell(col: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if col == "kept":
        return "kept" if bool(v) else "dropped"
    if col in _FMT:
        return _FMT[col].format(float(v))
    return str(v)


@dataclass
class SelectionReport:
    """The selection table of one job (sorted: kept first, then by decreasing IV)."""

    frame: pd.DataFrame

    def __post_init__(self) -> None:
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"a selection table needs the columns {missing}")
        self.frame = (self.frame[COLUMNS].sort_values(["kept", "iv"], ascending=[False, False], kind="stable")
                      .reset_index(drop=True))

    @classmethod
    def read(cls, path: str | Path) -> SelectionReport:
        """From the ``selection`` artifact (Parquet) of a job."""
        return cls(pd.read_parquet(path))

    @property
    def kept(self) -> list[str]:
        return self.frame.loc[self.frame["kept"], "feature"].tolist()

    def to_csv(self, path: str | Path) -> Path:
        p = Path(path)
        self.frame.to_csv(p, index=False)
        return p

    def to_html(self, *, classes: str = "privfin-table selection-report") -> str:
        """A ``<table>`` fragment: rows carry ``class="kept"`` / ``class="dropped"``; values escaped."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in _SHOWN)
        body = []
        for _, r in self.frame.iterrows():
            cls = "kept" if bool(r["kept"]) else "dropped"
            tds = "".join(f'<td class="{c}">{html.escape(_cell(c, r[c]))}</td>' for c in _SHOWN)
            body.append(f'<tr class="{cls}">{tds}</tr>')
        n_kept = int(self.frame["kept"].sum())
        cap = f"Feature selection: {n_kept} of {len(self.frame)} kept"
        return (f'<table class="{html.escape(classes)}"><caption>{html.escape(cap)}</caption>'
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def rich_table(self) -> Any:
        """A :class:`rich.table.Table` (kept rows green, dropped rows dim)."""
        from rich.table import Table

        n_kept = int(self.frame["kept"].sum())
        t = Table(title=f"Feature selection: {n_kept} of {len(self.frame)} kept")
        for c in _SHOWN:
            t.add_column(c, justify="right" if c in _FMT or c == "bins" else "left", overflow="fold")
        for _, r in self.frame.iterrows():
            t.add_row(*(_cell(c, r[c]) for c in _SHOWN), style="green" if bool(r["kept"]) else "dim")
        return t


__all__ = ["COLUMNS", "SelectionReport"]
