"""The job store: one embedded SQLite file per party.

It records jobs, step status and timings, and — only once a job has succeeded — its
metrics and artifacts, in the same transaction that marks it succeeded, so a failed job
never reports a half-written result. The disclosure ledger (every message this party
received) is written as messages arrive, for failed jobs too: it is an audit record.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privfin.transport.base import Kind, LedgerEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, initiator TEXT NOT NULL,
    parties TEXT NOT NULL, spec TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL
);
CREATE TABLE IF NOT EXISTS steps (
    job_id TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
    started_at REAL, finished_at REAL, error TEXT, PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS metrics (
    job_id TEXT NOT NULL, step TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (job_id, step, key)
);
CREATE TABLE IF NOT EXISTS artifacts (
    job_id TEXT NOT NULL, step TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
    path TEXT NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (job_id, name)
);
CREATE TABLE IF NOT EXISTS ledger (
    job_id TEXT NOT NULL, step TEXT NOT NULL, tag TEXT NOT NULL, sender TEXT NOT NULL,
    nbytes INTEGER NOT NULL, kind TEXT NOT NULL, received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_job ON ledger(job_id);
"""


@dataclass(frozen=True)
class Artifact:
    step: str
    name: str
    kind: str  # "table", "model", "report", ...
    path: str
    bytes: int


class JobStore:
    """Thread-safe access to a party's SQLite job store."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- writes ----------------------------------------------------------------------------
    def create_job(self, job_id: str, name: str, role: str, initiator: str, parties: list[str], spec: str,
                   steps: list[str]) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO jobs (id, name, role, initiator, parties, spec, status, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, 'accepted', ?)",
                       (job_id, name, role, initiator, json.dumps(parties), spec, time.time()))
            db.executemany("INSERT INTO steps (job_id, idx, name, status) VALUES (?, ?, ?, 'pending')",
                           [(job_id, i, s) for i, s in enumerate(steps)])

    def job_started(self, job_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET status='running', started_at=? WHERE id=?", (time.time(), job_id))

    def step_started(self, job_id: str, idx: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE steps SET status='running', started_at=? WHERE job_id=? AND idx=?",
                       (time.time(), job_id, idx))

    def step_finished(self, job_id: str, idx: int, error: str | None = None) -> None:
        with self._tx() as db:
            db.execute("UPDATE steps SET status=?, finished_at=?, error=? WHERE job_id=? AND idx=?",
                       ("failed" if error else "done", time.time(), error, job_id, idx))

    def job_succeeded(self, job_id: str, metrics: dict[tuple[str, str], Any], artifacts: list[Artifact]) -> None:
        """Mark success and record results, atomically."""
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?)",
                           [(job_id, step, key, json.dumps(v)) for (step, key), v in metrics.items()])
            db.executemany("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?, ?)",
                           [(job_id, a.step, a.name, a.kind, a.path, a.bytes) for a in artifacts])
            db.execute("UPDATE jobs SET status='succeeded', finished_at=? WHERE id=?", (time.time(), job_id))

    def attach_artifact(self, job_id: str, artifact: Artifact) -> None:
        """Record an output made from a succeeded job's results (e.g. its HTML report)."""
        with self._tx() as db:
            row = db.execute("SELECT status FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None or row[0] != "succeeded":
                raise ValueError(f"job {job_id} has not succeeded; its outputs are recorded only at success")
            db.execute("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?, ?)",
                       (job_id, artifact.step, artifact.name, artifact.kind, artifact.path, artifact.bytes))

    def job_failed(self, job_id: str, error: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET status='failed', error=?, finished_at=? WHERE id=?",
                       (error, time.time(), job_id))
            db.execute("UPDATE steps SET status='skipped' WHERE job_id=? AND status='pending'", (job_id,))

    def record(self, entry: LedgerEntry) -> None:
        """Append one received message to the disclosure ledger."""
        with self._tx() as db:
            db.execute("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (entry.job_id, entry.step, entry.tag, entry.sender, entry.nbytes, str(entry.kind),
                        entry.received_at))

    def fail_interrupted(self) -> int:
        """Mark jobs left running by a crashed process as failed; returns how many."""
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET status='failed', error='interrupted: the party process stopped', "
                             "finished_at=? WHERE status IN ('accepted', 'running')", (time.time(),))
            db.execute("UPDATE steps SET status='failed' WHERE status='running'")
            return cur.rowcount

    # -- reads ---------------------------------------------------------------------------------
    def _rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", limit)

    def job(self, job_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM jobs WHERE id=?", job_id)
        if not rows:
            rows = self._rows("SELECT * FROM jobs WHERE id LIKE ? ORDER BY created_at DESC", job_id + "%")
            if len(rows) != 1:
                return None
        job = rows[0]
        job["parties"] = json.loads(job["parties"])
        jid = job["id"]
        job["steps"] = self._rows("SELECT idx, name, status, started_at, finished_at, error FROM steps "
                                  "WHERE job_id=? ORDER BY idx", jid)
        job["metrics"] = {(r["step"], r["key"]): json.loads(r["value"])
                          for r in self._rows("SELECT step, key, value FROM metrics WHERE job_id=?", jid)}
        job["artifacts"] = [Artifact(**{k: r[k] for k in ("step", "name", "kind", "path", "bytes")})
                            for r in self._rows("SELECT * FROM artifacts WHERE job_id=?", jid)]
        return job

    def ledger(self, job_id: str) -> list[LedgerEntry]:
        return [LedgerEntry(r["job_id"], r["step"], r["tag"], r["sender"], r["nbytes"], Kind(r["kind"]),
                            r["received_at"])
                for r in self._rows("SELECT * FROM ledger WHERE job_id=? ORDER BY rowid", job_id)]

    def ledger_summary(self, job_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT step, sender, tag, kind, COUNT(*) AS messages, SUM(nbytes) AS bytes FROM ledger "
                          "WHERE job_id=? GROUP BY step, sender, tag, kind ORDER BY MIN(rowid)", job_id)
