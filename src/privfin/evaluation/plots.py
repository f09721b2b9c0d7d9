"""Evaluation charts as small, self-contained inline SVG (no plotting or JavaScript library).

Each function returns one ``<svg>`` string with a ``<title>``, a visible title, axes with
ticks and labels, and a legend; text is escaped. Curves with many points are thinned to at
most ``MAX_POINTS`` vertices (keeping the ends), so a chart of a million scores stays a few
kilobytes. Models are passed as ``{name: (y, score)}``; lift and gain charts also accept
tables from :func:`privfin.evaluation.metrics.lift_table`.

Security: the charts are drawn from aggregates at the label holder (ROC/KS points, decile
rates, histogram counts); no per-row value appears in the SVG.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from privfin.errors import DataError
from privfin.evaluation import metrics as M

PALETTE = ("#1f5fa8", "#e07b24", "#2a9d5c", "#b23a48", "#6c5b9b", "#5b6770")
MAX_POINTS = 400
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"

Models = Mapping[str, tuple[Any, Any]]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise DataError("axis range must be finite")
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def nice_max(v: float, n: int = 5) -> float:
    """The smallest round tick value at or above ``v`` (for the top of a 0-based axis)."""
    ticks = nice_ticks(0.0, v, n)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    return ticks[-1] if ticks[-1] >= v else ticks[-1] + step


def _fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def _thin(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= max_points:
        return x, y
    idx = np.unique(np.r_[np.linspace(0, len(x) - 1, max_points).round().astype(int), np.argmax(y - x)])
    return x[idx], y[idx]


@dataclass
class Chart:
    """A plot area with linear axes; collects SVG elements and renders them."""

    title: str
    xlabel: str
    ylabel: str
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    width: int = 560
    height: int = 380
    margin: tuple[int, int, int, int] = (48, 24, 56, 64)  # top, right, bottom, left
    xfmt: Callable[[float], str] = _fmt
    yfmt: Callable[[float], str] = _fmt
    xticks: Sequence[float] | None = None
    xticklabels: Sequence[str] | None = None
    parts: list[str] = field(default_factory=list)
    legend: list[tuple[str, str, str]] = field(default_factory=list)  # label, color, "line"|"dash"|"box"

    @property
    def box(self) -> tuple[float, float, float, float]:
        t, r, b, lft = self.margin
        return lft, t, self.width - r, self.height - b

    def sx(self, v: Any) -> Any:
        x0, _, x1, _ = self.box
        return x0 + (np.asarray(v, dtype=float) - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (x1 - x0)

    def sy(self, v: Any) -> Any:
        _, y0, _, y1 = self.box
        return y1 - (np.asarray(v, dtype=float) - self.ylim[0]) / (self.ylim[1] - self.ylim[0]) * (y1 - y0)

    def line(self, x: Any, y: Any, color: str, label: str | None = None, *, dash: bool = False,
             width: float = 2.0, markers: bool = False) -> None:
        px, py = self.sx(x), self.sy(y)
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(np.atleast_1d(px), np.atleast_1d(py)))
        style = ' stroke-dasharray="5 4"' if dash else ""
        self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}"'
                          f'{style} stroke-linejoin="round"/>')
        if markers:
            self.parts.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>'
                              for a, b in zip(np.atleast_1d(px), np.atleast_1d(py)))
        if label is not None:
            self.legend.append((label, color, "dash" if dash else "line"))

    def bar(self, x0: float, x1: float, y: float, color: str, tip: str = "") -> None:
        bx0, bx1 = float(self.sx(x0)), float(self.sx(x1))
        top, base = float(self.sy(max(y, self.ylim[0]))), float(self.sy(self.ylim[0]))
        tip_el = f"<title>{escape(tip)}</title>" if tip else ""
        self.parts.append(f'<rect x="{bx0:.1f}" y="{top:.1f}" width="{max(bx1 - bx0, 0.5):.1f}" '
                          f'height="{max(base - top, 0):.1f}" fill="{color}" fill-opacity="0.85">{tip_el}</rect>')

    def text(self, x: float, y: float, s: str, *, anchor: str = "start", size: int = 12,
             color: str = "#333") -> None:
        self.parts.append(f'<text x="{float(self.sx(x)):.1f}" y="{float(self.sy(y)):.1f}" font-size="{size}" '
                          f'fill="{color}" text-anchor="{anchor}">{escape(s)}</text>')

    def _axes(self) -> list[str]:
        x0, y0, x1, y1 = self.box
        out = [f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="#fff" stroke="none"/>']
        xt = list(self.xticks) if self.xticks is not None else nice_ticks(*self.xlim)
        xl = list(self.xticklabels) if self.xticklabels is not None else [self.xfmt(v) for v in xt]
        for v, lab in zip(xt, xl):
            if not self.xlim[0] - 1e-9 <= v <= self.xlim[1] + 1e-9:
                continue
            px = float(self.sx(v))
            out.append(f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y1}" stroke="#e6e8eb"/>')
            out.append(f'<line x1="{px:.1f}" y1="{y1}" x2="{px:.1f}" y2="{y1 + 5}" stroke="#555"/>')
            out.append(f'<text x="{px:.1f}" y="{y1 + 18}" font-size="11" fill="#555" '
                       f'text-anchor="middle">{escape(lab)}</text>')
        for v in nice_ticks(*self.ylim):
            if not self.ylim[0] - 1e-9 <= v <= self.ylim[1] + 1e-9:
                continue
            py = float(self.sy(v))
            out.append(f'<line x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}" stroke="#e6e8eb"/>')
            out.append(f'<line x1="{x0 - 5}" y1="{py:.1f}" x2="{x0}" y2="{py:.1f}" stroke="#555"/>')
            out.append(f'<text x="{x0 - 8}" y="{py + 4:.1f}" font-size="11" fill="#555" '
                       f'text-anchor="end">{escape(self.yfmt(v))}</text>')
        out.append(f'<path d="M{x0},{y0} V{y1} H{x1}" fill="none" stroke="#555"/>')
        out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{self.height - 14}" font-size="12" fill="#333" '
                   f'text-anchor="middle">{escape(self.xlabel)}</text>')
        out.append(f'<text transform="translate(16,{(y0 + y1) / 2:.1f}) rotate(-90)" font-size="12" fill="#333" '
                   f'text-anchor="middle">{escape(self.ylabel)}</text>')
        return out

    def _legend(self, where: str) -> list[str]:
        if not self.legend:
            return []
        x0, y0, x1, y1 = self.box
        w = 34 + 7.0 * max(len(lab) for lab, _, _ in self.legend)
        h = 8 + 18 * len(self.legend)
        lx = x1 - w - 10 if where.endswith("r") else x0 + 10
        ly = y0 + 10 if where.startswith("t") else y1 - h - 10
        out = [(f'<g class="legend"><rect x="{lx:.1f}" y="{ly:.1f}" width="{w:.1f}" height="{h}" rx="4" '
               f'fill="#fff" fill-opacity="0.92" stroke="#d0d4d9"/>')]
        for i, (lab, color, kind) in enumerate(self.legend):
            cy = ly + 13 + 18 * i
            if kind == "box":
                out.append(f'<rect x="{lx + 8:.1f}" y="{cy - 5:.1f}" width="16" height="10" fill="{color}"/>')
            else:
                dash = ' stroke-dasharray="5 4"' if kind == "dash" else ""
                out.append(f'<line x1="{lx + 6:.1f}" y1="{cy:.1f}" x2="{lx + 26:.1f}" y2="{cy:.1f}" '
                           f'stroke="{color}" stroke-width="2"{dash}/>')
            out.append(f'<text x="{lx + 32:.1f}" y="{cy + 4:.1f}" font-size="11.5" fill="#333">{escape(lab)}</text>')
        return out + ["</g>"]

    def render(self, legend_at: str = "br") -> str:
        """The chart as an ``<svg>`` string; ``legend_at`` is one of "tl", "tr", "bl", "br"."""
        x0, y0, x1, y1 = self.box
        body = "".join(self.parts)
        clip = "clip" + hashlib.md5((self.title + body).encode()).hexdigest()[:10]  # stable, unique per chart
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="privfin-chart" viewBox="0 0 {self.width} '
                f'{self.height}" width="{self.width}" height="{self.height}" role="img" font-family="{FONT}">'
                f"<title>{escape(self.title)}</title>"
                f'<text x="{self.width / 2:.0f}" y="26" font-size="15" font-weight="600" fill="#1d2733" '
                f'text-anchor="middle">{escape(self.title)}</text>'
                + "".join(self._axes())
                + f'<clipPath id="{clip}"><rect x="{x0 - 2}" y="{y0 - 2}" width="{x1 - x0 + 4}" '
                  f'height="{y1 - y0 + 4}"/></clipPath><g clip-path="url(#{clip})">{body}</g>'
                + "".join(self._legend(legend_at)) + "</svg>")


def _models(models: Models) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if not models:
        raise DataError("no models to plot")
    return [(str(k), np.asarray(y), np.asarray(s)) for k, (y, s) in models.items()]


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


# ------------------------------------------------------------------------------------ charts
def roc_svg(models: Models, title: str = "ROC curve") -> str:
    """ROC curves of several models on one chart, AUC in the legend, chance diagonal dashed."""
    ch = Chart(title, "False positive rate", "True positive rate", (0, 1), (0, 1), xfmt=_fmt, yfmt=_fmt)
    for i, (name, y, s) in enumerate(_models(models)):
        fpr, tpr, _ = M.roc_curve(y, s)
        fx, ty = _thin(fpr, tpr)
        ch.line(fx, ty, _color(i), f"{name} (AUC {M.auc(y, s):.3f})")
    ch.line([0, 1], [0, 1], "#9aa3ad", "chance", dash=True, width=1.2)
    return ch.render("br")


def ks_svg(y: Any, score: Any, title: str = "KS curve", name: str | None = None) -> str:
    """Cumulative share of positives and negatives by share of the population ranked by score,
    with the KS gap marked where it is largest."""
    curve = M.ks_curve(y, score)
    full = f"{title}: {name}" if name else title
    ch = Chart(full, "Share of population (highest scores first)", "Cumulative share", (0, 1), (0, 1),
               xfmt=_pct, yfmt=_pct)
    px = curve["population"].to_numpy()
    for col, lab, color in (("tpr", "positives (y=1)", PALETTE[3]), ("fpr", "negatives (y=0)", PALETTE[0])):
        x, v = _thin(px, curve[col].to_numpy())
        ch.line(x, v, color, lab)
    i = int(np.argmax(np.abs(curve["gap"].to_numpy())))
    at, hi, lo = px[i], curve["tpr"].iloc[i], curve["fpr"].iloc[i]
    ch.line([at, at], [lo, hi], "#1d2733", f"KS = {abs(hi - lo):.3f} at {100 * at:.0f}%", dash=True, width=1.5)
    return ch.render("br")


def _tables(models: Mapping[str, Any], n_bins: int) -> list[tuple[str, pd.DataFrame]]:
    if not models:
        raise DataError("no models to plot")
    return [(str(k), v if isinstance(v, pd.DataFrame) else M.lift_table(v[0], v[1], n_bins))
            for k, v in models.items()]


def lift_svg(models: Mapping[str, Any], title: str = "Lift by decile", n_bins: int = 10) -> str:
    """Grouped bars of each model's lift per score group (1 = highest scores); baseline 1 dashed."""
    tabs = _tables(models, n_bins)
    g = len(tabs[0][1])
    top = max(float(t["lift"].max()) for _, t in tabs)
    ymax = nice_max(top * 1.08)
    ch = Chart(title, "Score group (1 = highest scores)", "Lift", (0.5, g + 0.5), (0, ymax),
               xticks=list(range(1, g + 1)), xticklabels=[str(i) for i in range(1, g + 1)])
    w = 0.8 / len(tabs)
    for j, (name, t) in enumerate(tabs):
        for k, row in enumerate(t.itertuples()):
            x = k + 1 - 0.4 + j * w
            ch.bar(x, x + w * 0.92, float(row.lift), _color(j),
                   f"{name}, group {row.group}: lift {row.lift:.2f}, event rate {row.event_rate:.3f}")
        ch.legend.append((name, _color(j), "box"))
    ch.line([0.5, g + 0.5], [1, 1], "#9aa3ad", "random", dash=True, width=1.2)
    return ch.render("tr")


def gain_svg(models: Mapping[str, Any], title: str = "Cumulative gain", n_bins: int = 10) -> str:
    """Share of all positives captured by the top groups, per model, against random targeting."""
    ch = Chart(title, "Share of population targeted (highest scores first)", "Share of positives captured",
               (0, 1), (0, 1), xfmt=_pct, yfmt=_pct)
    for i, (name, t) in enumerate(_tables(models, n_bins)):
        ch.line(np.r_[0.0, t["cum_population"]], np.r_[0.0, t["gain"]], _color(i), name, markers=True)
    ch.line([0, 1], [0, 1], "#9aa3ad", "random", dash=True, width=1.2)
    return ch.render("br")


def score_histogram_svg(score: Any, y: Any = None, bins: int = 20, title: str = "Score distribution",
                        xlabel: str = "Score", class_names: tuple[str, str] = ("y=0", "y=1")) -> str:
    """Histogram of scores in equal-width bins; with ``y``, the share of each class per bin side by side."""
    s = M.check_scores(score)
    lo, hi = float(s.min()), float(s.max())
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, bins - 1)
    if y is None:
        series = [("all rows", np.bincount(idx, minlength=bins) / len(s))]
    else:
        yy = M.check_scores(y, len(s), what="y")
        series = []
        for lab, cls in zip(class_names, (0.0, 1.0)):
            sel = yy == cls
            if sel.any():
                series.append((f"{lab} ({int(sel.sum()):,})", np.bincount(idx[sel], minlength=bins) / sel.sum()))
    ymax = nice_max(max(float(v.max()) for _, v in series) * 1.08)
    ch = Chart(title, xlabel, "Share of rows" if y is None else "Share of class", (lo, hi), (0, ymax), yfmt=_pct)
    w = (edges[1] - edges[0]) / len(series)
    for j, (lab, share) in enumerate(series):
        color = PALETTE[0] if j == 0 else PALETTE[3]
        for k in range(bins):
            x = edges[k] + j * w
            ch.bar(x + 0.04 * w, x + 0.96 * w, float(share[k]), color,
                   f"{lab}: [{_fmt(edges[k])}, {_fmt(edges[k + 1])}) {100 * share[k]:.1f}%")
        ch.legend.append((lab, color, "box"))
    return ch.render("tr")


__all__ = [
    "MAX_POINTS",
    "PALETTE",
    "Chart",
    "gain_svg",
    "ks_svg",
    "lift_svg",
    "nice_max",
    "nice_ticks",
    "roc_svg",
    "score_histogram_svg",
]
