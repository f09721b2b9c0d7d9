"""The per-job HTML report: one self-contained file (inline CSS and SVG, no external resource).

Sections: job summary, alignment, feature selection, this party's own model parameters,
the metrics table (bank-only against federated models, with the relative change of AUC
and KS), the charts, and the disclosure-ledger summary (what each party received, from
whom, per step and kind).

Build a :class:`ReportData` yourself, or from a party's job store with
:func:`report_from_store`, then :func:`build_report` (a string) or :func:`write_report`.

Every text value is escaped. Two inputs carry markup: charts (``<svg>`` strings from
:mod:`privfin.evaluation.plots`) and a selection report given as :class:`Html`; both are
refused if they contain scripts, event handlers or references to external resources.

Security: a report is built at one party from that party's own job store: its own model
parameters (never another party's — the store holds only its own artifacts), the metrics
it computed, and the ledger of the messages *it* received. Passing the job stores of
several parties (the local demo holds them all) adds what each of them received; in a
deployment each party builds its own report.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privfin.errors import DataError
from privfin.evaluation import metrics as M
from privfin.evaluation import plots as P
from privfin.runtime.store import JobStore

#: Name of the artifact (a table with a ``y`` column and one score column per model, at the
#: label holder) from which :func:`report_from_store` computes metrics and charts.
HOLDOUT_ARTIFACT = "holdout_scores"
#: Name of the feature-selection artifact (:class:`privfin.features.report.SelectionReport`).
SELECTION_ARTIFACT = "selection"
BASELINE = "bank_only"
MAX_TABLE_ROWS = 60

_UNSAFE = re.compile(r"<\s*(script|iframe|object|embed|link|meta|style|image|img|use)\b|\bon[a-z]+\s*=|"
                     r"javascript:|url\s*\(\s*(?!#)|\b(?:src|href|xlink:href)\s*=", re.IGNORECASE)


class Html(str):
    """Trusted markup (e.g. the selection report's HTML fragment); plain ``str`` is escaped."""


def _check_markup(s: str, what: str) -> str:
    m = _UNSAFE.search(s)
    if m:
        raise DataError(f"{what} contains markup a self-contained report does not allow: {m.group(0)!r}")
    return s


@dataclass
class JobSummary:
    """What the report says about the job as a whole."""

    job_id: str
    name: str
    party: str
    role: str
    parties: list[str]
    status: str
    steps: list[dict[str, Any]] = field(default_factory=list)  # name, status, seconds, error
    wall_s: float | None = None
    created_at: float | None = None
    initiator: str = ""
    error: str | None = None


@dataclass
class ReportData:
    """The content of one report; every section but ``job`` is optional."""

    job: JobSummary
    alignment: Mapping[str, Any] = field(default_factory=dict)
    selection: pd.DataFrame | Html | str | None = None
    own_model: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    metrics: pd.DataFrame | None = None
    plots: Sequence[str] = ()
    ledger: pd.DataFrame | None = None
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)  # extra titled tables (e.g. score bands)
    notes: Sequence[str] = ()
    title: str = "privfin job report"


# ------------------------------------------------------------------------------ ledger
def ledger_summary(stores: JobStore | Mapping[str, JobStore], job_id: str, party: str = "") -> pd.DataFrame:
    """What each party received in ``job_id``, per step, sender and kind, from the job store(s).

    ``stores`` is one party's store (``party`` names it) or ``{party: store}`` for several.
    Columns: ``step``, ``sender``, ``receiver``, ``kind``, ``messages``, ``bytes``, ``tags``
    (the distinct message tags, comma-separated), in the order the messages first arrived.
    A party's own store records only what it received; what it sent appears in its peers'.
    """
    many = stores if isinstance(stores, Mapping) else {party: stores}
    rows: list[dict[str, Any]] = []
    for receiver, store in many.items():
        for i, e in enumerate(store.ledger(job_id)):
            rows.append({"step": e.step, "sender": e.sender, "receiver": receiver, "kind": str(e.kind),
                         "tag": e.tag, "nbytes": e.nbytes, "at": e.received_at, "i": i})
    cols = ["step", "sender", "receiver", "kind", "messages", "bytes", "tags"]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows).sort_values(["at", "i"], kind="mergesort")
    keys = ["step", "sender", "receiver", "kind"]
    out = df.groupby(keys, sort=False).agg(
        messages=("nbytes", "size"), bytes=("nbytes", "sum"),
        tags=("tag", lambda t: ", ".join(dict.fromkeys(t)))).reset_index()
    return out[cols]


# ------------------------------------------------------------------------------ from the store
def _job_summary(job: Mapping[str, Any], party: str) -> JobSummary:
    steps = [{"name": s["name"], "status": s["status"], "error": s.get("error"),
              "seconds": (s["finished_at"] - s["started_at"]) if s.get("started_at") and s.get("finished_at")
              else None} for s in job.get("steps", [])]
    wall = (job["finished_at"] - job["started_at"]) if job.get("started_at") and job.get("finished_at") else None
    return JobSummary(job["id"], job["name"], party, job["role"], list(job["parties"]), job["status"], steps,
                      wall, job.get("created_at"), job.get("initiator", ""), job.get("error"))


def model_table(path: str | Path) -> pd.DataFrame:
    """A table of one of this party's model artifacts: Parquet as is; a SecureBoost JSON model
    as its split count (and, at the bank, total gain) per party or per own feature; other JSON
    as its top-level scalar fields."""
    import json

    p = Path(path)
    if p.suffix != ".json":
        return pd.read_parquet(p)
    d = json.loads(p.read_text(encoding="utf-8"))
    from privfin.models import secureboost as sb

    if isinstance(d, dict) and d.get("format") == sb.ACTIVE_FORMAT:
        m = sb.ActiveModel.from_dict(d)
        rows = [{"party": k, "splits": v["splits"], "gain": v["gain"]} for k, v in m.importance().items()]
        return pd.DataFrame(rows).assign(trees=len(m.trees), base_margin=m.base_margin)
    if isinstance(d, dict) and d.get("format") == sb.PASSIVE_FORMAT:
        imp = sb.PassiveModel.from_dict(d).importance()
        return pd.DataFrame({"own feature (index)": list(imp), "splits": list(imp.values())})
    if not isinstance(d, dict):
        raise DataError(f"model artifact {p.name} is not a JSON object")
    return pd.DataFrame([{"field": k, "value": v} for k, v in d.items() if isinstance(v, (str, int, float, bool))])


def evaluation_section(scores: Mapping[str, Any], y: Any, baseline: str | Mapping[str, str] = BASELINE,
                       bands: int | Sequence[float] = 20) -> tuple[pd.DataFrame, list[str]]:
    """Metrics table and charts for several models' scores on the same labelled rows.

    ``scores`` maps model name to score (higher = more likely positive); ``baseline`` names
    the bank-only model the relative changes are computed against (if present), or maps each
    federated model to its own bank-only counterpart (:data:`~privfin.evaluation.metrics.BANK_ONLY`;
    pairs not in ``scores`` are left out).
    """
    if not scores:
        raise DataError("no model scores to evaluate")
    yy = np.asarray(y)
    evals = [M.evaluate(yy, s, name) for name, s in scores.items()]
    if isinstance(baseline, str):
        base: str | dict[str, str] | None = baseline if baseline in scores else None
    else:
        base = {m: b for m, b in baseline.items() if m in scores and b in scores} or (
            BASELINE if BASELINE in scores else None)
    table = M.metrics_frame(evals, baseline=base)
    models = {name: (yy, np.asarray(s)) for name, s in scores.items()}
    best = max(evals, key=lambda e: e.auc).name
    charts = [P.roc_svg(models), P.ks_svg(yy, models[best][1], name=best), P.lift_svg(models), P.gain_svg(models),
              P.score_histogram_svg(models[best][1], yy, bins=bands if isinstance(bands, int) else 20,
                                    title=f"Score distribution: {best}", class_names=("y=0", "y=1"))]
    return table, charts


def _stored_comparison(metrics: Mapping[tuple[str, str], Any]) -> pd.DataFrame | None:
    """A metrics table from steps that stored ``auc_bank_only``/``auc_federated`` (e.g. ``lr``)."""
    by_step: dict[str, dict[str, Any]] = {}
    for (step, key), v in metrics.items():
        by_step.setdefault(step, {})[key] = v
    rows: list[dict[str, Any]] = []
    for step, m in by_step.items():
        if "auc_federated" not in m:
            continue
        if not rows and "auc_bank_only" in m:
            rows.append({"name": BASELINE, "auc": m["auc_bank_only"], "ks": m.get("ks_bank_only", np.nan)})
        rows.append({"name": f"federated {step}", "auc": m["auc_federated"], "ks": m.get("ks_federated", np.nan)})
    if not rows:
        return None
    df = pd.DataFrame(rows)
    df["gini"] = 2 * df["auc"] - 1
    if rows[0]["name"] == BASELINE:
        df["auc_change_pct"] = 100 * (df["auc"] / df["auc"].iloc[0] - 1)
        df["ks_change_pct"] = 100 * (df["ks"] / df["ks"].iloc[0] - 1)
    return df


def report_from_store(store: JobStore, job_id: str, party: str, *, scores: Mapping[str, Any] | None = None,
                      y: Any = None, selection: pd.DataFrame | Html | str | None = None,
                      ledger_stores: Mapping[str, JobStore] | None = None,
                      baseline: str | Mapping[str, str] = M.BANK_ONLY) -> ReportData:
    """Report content for ``job_id`` from ``party``'s own job store.

    The selection section comes from ``selection`` when given, else from the job's
    ``selection`` artifact (:data:`SELECTION_ARTIFACT`). Metrics and charts come from
    ``scores`` and ``y`` when given, else from the ``holdout_scores`` artifact
    (:data:`HOLDOUT_ARTIFACT`) when the job stored one, else the metrics table is rebuilt from
    the stored ``auc_*``/``ks_*`` metrics (no charts). Model parameters are this party's
    artifacts of kind ``model``. ``ledger_stores`` adds other parties' ledgers (the local
    demo only).
    """
    job = store.job(job_id)
    if job is None:
        raise DataError(f"no job {job_id!r} in the job store {store.path} (or the prefix is ambiguous)")
    summary = _job_summary(job, party)
    metrics: dict[tuple[str, str], Any] = job["metrics"]
    alignment = {k: v for (s, k), v in metrics.items() if s == "psi" and k != "wall_s"}
    alignment.update({f"{k} (load)": v for (s, k), v in metrics.items() if s == "load" and k != "wall_s"})
    notes: list[str] = []
    own: dict[str, pd.DataFrame] = {}
    for a in job["artifacts"]:
        if a.kind == "model":
            try:
                own[f"{a.name} (step {a.step})"] = model_table(a.path)
            except (OSError, ValueError, DataError) as exc:
                notes.append(f"model artifact {a.name} could not be read: {type(exc).__name__}")
        if selection is None and a.name == SELECTION_ARTIFACT:
            from privfin.features.report import SelectionReport

            selection = Html(SelectionReport.read(a.path).to_html())
        if scores is None and a.name == HOLDOUT_ARTIFACT:
            frame = pd.read_parquet(a.path)
            if "y" in frame:
                y = frame["y"].to_numpy()
                scores = {c: frame[c].to_numpy() for c in frame.columns if c != "y"}
    table: pd.DataFrame | None
    charts: list[str] = []
    extra: dict[str, pd.DataFrame] = {}
    if scores is not None:
        if y is None:
            raise DataError("scores were given without the labels y")
        table, charts = evaluation_section(scores, y, baseline)
        best = str(table.loc[table["auc"].idxmax(), "name"])
        extra[f"Score distribution by band: {best}"] = M.score_bands(np.asarray(scores[best]), y, 10)
    else:
        table = _stored_comparison(metrics)
        if table is not None:
            notes.append("Charts need the holdout scores (artifact 'holdout_scores'); this job stored only metrics.")
    ledger = ledger_summary(ledger_stores if ledger_stores is not None else store, job["id"], party)
    return ReportData(summary, alignment, selection, own, table, charts, ledger, extra, notes,
                      title=f"privfin report: {job['name']}")


# ------------------------------------------------------------------------------ rendering
_CSS = """
:root{--ink:#1d2733;--muted:#5b6770;--line:#e2e6ea;--accent:#1f5fa8;--bg:#f5f7f9}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}
header{background:var(--ink);color:#fff;padding:22px 40px}header h1{margin:0;font-size:22px;font-weight:600}
header .sub{color:#c5ced8;margin-top:4px}main{max-width:1200px;margin:0 auto;padding:24px 40px 48px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:18px 22px;margin:0 0 20px}
h2{font-size:17px;margin:0 0 12px;color:var(--ink)}h3{font-size:14px;margin:16px 0 8px;color:var(--muted)}
table{border-collapse:collapse;width:auto;min-width:50%;font-variant-numeric:tabular-nums}
th,td{padding:5px 12px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600;font-size:13px}td.num,th.num{text-align:right}
tbody tr:nth-child(even){background:#fafbfc}.kv th{background:none;color:var(--muted);font-weight:500}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#e6e8eb}
.ok{background:#dff3e6;color:#1d6b3a}.bad{background:#fbe1e3;color:#9b1c2c}.warn{background:#fff1d6;color:#8a5a00}
.kind-ciphertext,.kind-share{background:#e3edf9;color:#1f4f8a}.kind-aggregate{background:#eee6f7;color:#5b3c88}
.kind-plaintext{background:#fff1d6;color:#8a5a00}.pos{color:#1d6b3a;font-weight:600}.neg{color:#9b1c2c;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:14px}
.charts figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:6px;background:#fff}
.charts svg{width:100%;max-width:620px;height:auto;display:block;margin:0 auto}.note{color:var(--muted);font-size:13px}
.scroll{max-height:520px;overflow:auto;border:1px solid var(--line);border-radius:6px}
.scroll table{width:100%}.scroll thead th{position:sticky;top:0;z-index:1}
caption{caption-side:top;text-align:left;font-weight:600;color:var(--muted);padding:8px 12px}
.selection-report tr.dropped td{color:#8a949e}.selection-report tr.kept td.kept{color:#1d6b3a;font-weight:600}
.selection-report td.iv,.selection-report td.auc,.selection-report td.ks,.selection-report td.missing_rate,
.selection-report td.unique_ratio,.selection-report td.coef,.selection-report td.p_value,.selection-report td.corr_abs,
.selection-report td.bins{text-align:right}
footer{color:var(--muted);font-size:12px;text-align:center;padding:0 0 24px}
"""


def _cell(v: Any) -> tuple[str, bool]:
    """Escaped text of one value and whether it is numeric."""
    if isinstance(v, (bool, np.bool_)):
        return escape(str(v)), False
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}", True
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if np.isnan(f):
            return "–", True
        if f.is_integer() and abs(f) < 1e15:
            return f"{int(f):,}", True
        return (f"{f:,.0f}" if abs(f) >= 1e5 else f"{f:.4g}" if abs(f) < 1e-3 and f != 0 else f"{f:,.4f}"), True
    return escape("" if v is None else str(v)), False


def table_html(df: pd.DataFrame, *, max_rows: int = MAX_TABLE_ROWS, cls: str = "",
               formats: Mapping[str, Any] | None = None) -> str:
    """An escaped HTML table of ``df`` (first ``max_rows`` rows, with a note when cut)."""
    formats = formats or {}
    numeric = {c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])}
    head = "".join(f'<th class="{"num" if c in numeric else ""}">{escape(str(c))}</th>' for c in df.columns)
    body = []
    for row in df.head(max_rows).itertuples(index=False):
        tds = []
        for c, v in zip(df.columns, row):
            if c in formats:
                text, num = formats[c](v), c in numeric
            else:
                text, num = _cell(v)
            tds.append(f'<td class="num">{text}</td>' if num else f"<td>{text}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    more = (f'<p class="note">{len(df) - max_rows:,} more rows not shown ({len(df):,} in all).</p>'
            if len(df) > max_rows else "")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{more}'


def _scrolled(df: pd.DataFrame) -> str:
    """A long table in a scrolling box (every row kept), a short one as is."""
    html = table_html(df, max_rows=5000)
    return f'<div class="scroll">{html}</div>' if len(df) > 20 else html


def _kv(items: Sequence[tuple[str, str]]) -> str:
    """Key/value rows; values are already-escaped HTML."""
    return '<table class="kv"><tbody>' + "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in items) + \
        "</tbody></table>"


def _status(s: str) -> str:
    cls = {"succeeded": "ok", "done": "ok", "failed": "bad", "running": "warn"}.get(s, "")
    return f'<span class="badge {cls}">{escape(s)}</span>'


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "–"


def _secs(v: float | None) -> str:
    return "–" if v is None or np.isnan(v) else f"{v:,.2f} s"


def _signed_pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    cls = "pos" if v > 0 else "neg" if v < 0 else ""
    return f'<span class="{cls}">{float(v):+.2f}%</span>'


def _job_section(j: JobSummary) -> str:
    items = [("Job id", f"<code>{escape(j.job_id)}</code>"), ("Job name", escape(j.name)),
             ("This report's party", f"{escape(j.party or '–')} ({escape(j.role)})"),
             ("Parties", escape(", ".join(j.parties))), ("Initiator", escape(j.initiator or "–")),
             ("Status", _status(j.status)), ("Created", _when(j.created_at)), ("Wall time", _secs(j.wall_s))]
    if j.error:
        items.append(("Error", escape(j.error)))
    steps = pd.DataFrame([{"#": i, "step": s["name"], "status": s["status"], "time": np.nan if s.get("seconds") is None else float(s["seconds"]),
                           "error": s.get("error") or ""} for i, s in enumerate(j.steps)])
    out = _kv(items)
    if len(steps):
        out += "<h3>Steps</h3>" + table_html(steps, formats={"status": _status, "time": _secs},
                                             max_rows=1000)
    return out


def _metrics_section(df: pd.DataFrame) -> str:
    fmts: dict[str, Any] = {c: _signed_pct for c in ("auc_change_pct", "ks_change_pct") if c in df}
    fmts.update({c: (lambda v: f"{float(v):.3f}" if pd.notna(v) else "–") for c in
                 ("auc", "ks", "gini", "top10_rate") if c in df})
    rename = {"name": "model", "auc": "AUC", "ks": "KS", "gini": "Gini", "top10_rate": "top-10% rate",
              "auc_change_pct": "AUC change", "ks_change_pct": "KS change", "positives": "positives", "rows": "rows"}
    shown = df.rename(columns=rename)
    fmts = {rename.get(k, k): v for k, v in fmts.items()}
    note = ('<p class="note">Changes are relative to the bank-only model named in column "vs" (the same '
            "algorithm on the bank's features alone): 100·(model / bank-only − 1). All models are evaluated on "
            "the same holdout rows at the label holder.</p>")

    return table_html(shown, formats=fmts) + note


def _ledger_section(df: pd.DataFrame) -> str:
    if not len(df):
        return '<p class="note">No messages were received in this job.</p>'
    pivot = df.pivot_table(index="receiver", columns="kind", values="bytes", aggfunc="sum", fill_value=0)
    pivot = pivot.reset_index()
    pivot.columns = [str(c) for c in pivot.columns]
    kinds = {c: (lambda v: f'<span class="badge kind-{escape(str(v))}">{escape(str(v))}</span>') for c in ("kind",)}
    return ("<h3>Bytes received per party and kind</h3>" + table_html(pivot) +
            "<h3>Messages received per step, sender and kind</h3>" + table_html(df, formats=kinds, max_rows=500) +
            '<p class="note">Kinds as declared by each protocol: <b>ciphertext</b> (under a key the receiver '
            "does not hold), <b>share</b> (uniformly random share), <b>aggregate</b> (documented aggregate), "
            "<b>plaintext</b> (control data, public parameters, documented results).</p>")


def build_report(data: ReportData) -> str:
    """The report as one self-contained HTML document."""
    j = data.job
    secs: list[tuple[str, str, str]] = [("summary", "Job summary", _job_section(j))]
    if data.alignment:
        secs.append(("alignment", "Alignment (private set intersection)",
                     _kv([(k, _cell(v)[0]) for k, v in data.alignment.items()])))
    if data.selection is not None:
        if isinstance(data.selection, pd.DataFrame):
            sel = table_html(data.selection, max_rows=500)
        elif isinstance(data.selection, Html):
            sel = f'<div class="scroll">{_check_markup(str(data.selection), "the selection report")}</div>'
        else:
            sel = f"<p>{escape(str(data.selection))}</p>"
        secs.append(("selection", "Feature selection", sel))
    if data.own_model:
        body = "".join(f"<h3>{escape(name)}</h3>" + _scrolled(df) for name, df in data.own_model.items())
        secs.append(("model", f"Model parameters of {j.party or 'this party'} (own party only)", body))
    if data.metrics is not None and len(data.metrics):
        secs.append(("metrics", "Model comparison", _metrics_section(data.metrics)))
    if data.tables:
        body = "".join(f"<h3>{escape(name)}</h3>" + table_html(df) for name, df in data.tables.items())
        secs.append(("tables", "Score bands", body))
    if data.plots:
        figs = []
        for svg in data.plots:
            if not svg.lstrip().startswith("<svg"):
                raise DataError("each plot must be an <svg> string")
            figs.append(f"<figure>{_check_markup(svg, 'a chart')}</figure>")
        secs.append(("charts", "Charts", f'<div class="charts">{"".join(figs)}</div>'))
    if data.ledger is not None:
        secs.append(("ledger", "Disclosure ledger: what each party received", _ledger_section(data.ledger)))
    if data.notes:
        secs.append(("notes", "Notes", "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in data.notes) + "</ul>"))
    body = "".join(f'<section id="{sid}"><h2>{escape(title)}</h2>{html}</section>'
                   for sid, title, html in secs)
    sub = f"job {j.job_id} · {', '.join(j.parties)} · {j.status}"
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{escape(data.title)}</title>'
            f"<style>{_CSS}</style></head><body><header><h1>{escape(data.title)}</h1>"
            f'<div class="sub">{escape(sub)}</div></header><main>{body}</main>'
            f"<footer>Generated by privfin at {now}. Self-contained: no external resources.</footer></body></html>")


def write_report(path: str | Path, data: ReportData) -> Path:
    """Write :func:`build_report` to ``path`` (UTF-8) and return it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(build_report(data), encoding="utf-8")
    return p


def write_job_report(store: JobStore, job_id: str, party: str, *, out: str | Path | None = None,
                     ledger_stores: Mapping[str, JobStore] | None = None) -> Path:
    """Build ``party``'s report of ``job_id`` from its job store, write it (default
    ``reports/<job id>.html`` beside the store) and, for a succeeded job, record it there as
    the ``report`` artifact."""
    from privfin.runtime.store import Artifact

    data = report_from_store(store, job_id, party, ledger_stores=ledger_stores)
    path = write_report(out or store.path.parent / "reports" / f"{data.job.job_id}.html", data)
    if data.job.status == "succeeded":
        store.attach_artifact(data.job.job_id, Artifact("report", "report", "report", str(path), path.stat().st_size))
    return path


__all__ = ["BASELINE", "HOLDOUT_ARTIFACT", "SELECTION_ARTIFACT", "Html", "JobSummary", "ReportData", "build_report",
           "evaluation_section", "ledger_summary", "model_table", "report_from_store", "table_html", "write_job_report",
           "write_report"]
