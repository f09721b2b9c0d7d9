"""Rich renderings of job records for the CLI."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.table import Table

_STYLE = {"done": "green", "succeeded": "green", "failed": "red", "running": "yellow", "skipped": "dim",
          "pending": "dim", "accepted": "cyan"}


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _dur(a: float | None, b: float | None) -> str:
    return f"{b - a:.2f} s" if a and b else "-"


def status_text(status: str) -> str:
    return f"[{_STYLE.get(status, 'white')}]{status}[/]"


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    t = Table(title="jobs")
    for col in ("id", "name", "role", "initiator", "status", "created", "duration"):
        t.add_column(col, no_wrap=col in ("id", "status"))
    for j in jobs:
        t.add_row(j["id"], j["name"], j["role"], j["initiator"], status_text(j["status"]), _when(j["created_at"]),
                  _dur(j["started_at"], j["finished_at"]))
    return t


def steps_table(job: dict[str, Any]) -> Table:
    prog = job.get("progress") or {}
    t = Table(title=f"job {job['id']} ({job['name']}) at this party: {status_text(job['status'])}")
    for col in ("#", "step", "status", "time", "note"):
        t.add_column(col)
    for s in job["steps"]:
        note = s.get("error") or ""
        if s["status"] == "running" and prog.get("step") == s["name"] and prog.get("total"):
            note = f"{prog['done']:g}/{prog['total']:g} {prog.get('note', '')}"
        t.add_row(str(s["idx"]), s["name"], status_text(s["status"]), _dur(s["started_at"], s["finished_at"]),
                  note)
    return t


def metrics_table(metrics: list[list[Any]] | dict[tuple[str, str], Any], title: str = "metrics") -> Table:
    items = metrics.items() if isinstance(metrics, dict) else [((s, k), v) for s, k, v in metrics]
    t = Table(title=title)
    t.add_column("step")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for (s, k), v in items:
        t.add_row(s, k, f"{v:,}" if isinstance(v, int) else str(v))
    return t


def ledger_table(rows: list[dict[str, Any]], title: str = "disclosure ledger (messages received)") -> Table:
    t = Table(title=title)
    for col in ("step", "from", "tag", "kind", "messages", "bytes"):
        t.add_column(col, justify="right" if col in ("messages", "bytes") else "left", no_wrap=col in ("tag", "kind"))
    for r in rows:
        t.add_row(r["step"], r["sender"], r["tag"], r["kind"], str(r["messages"]), f"{r['bytes']:,}")
    return t
