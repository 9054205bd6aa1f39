"""Small server-side charts as inline SVG: bars, intervals and lines over time.

Every text that reaches the SVG goes through ``escape``; the functions return ``Markup`` so the
templates can embed them as they are. No scripts, no external assets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 760
PALETTE = {
    "normal": "#8aa4c8",
    "baseline": "#7c7c7c",
    "best": "#1f8a4c",
    "control": "#3b6fb6",
    "candidate": "#d9822b",
    "bad": "#c0392b",
    # the outcome tones of dse.server._outcomes
    "good": "#1f8a4c",
    "stopped": "#d9682b",
    "broken": "#c0392b",
    "neutral": "#7c7c7c",
    "running": "#3b6fb6",
}
_AXIS = "#9aa0a6"
_GRID = "#e3e6ea"
_TEXT = "#2b2f33"
_MUTED = "#5f6670"
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12"'


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    kind: str = "normal"
    note: str = ""


@dataclass(frozen=True)
class Interval:
    label: str
    estimate: float
    low: float
    high: float
    kind: str = "normal"


@dataclass(frozen=True)
class Marker:
    """A moment on a line chart's x axis (a promotion, a rollback): a vertical line in its
    kind's color with ``text`` above it and ``note`` as its tooltip."""

    x: float
    text: str
    kind: str = "normal"
    note: str = ""


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    kind: str = "normal"
    dashed: bool = False


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if math.isfinite(value) else "0"


def _text(
    x: float, y: float, body: str, *, anchor: str = "start", fill: str = _TEXT, extra: str = ""
) -> str:
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" fill="{fill}" {extra}>'
        f"{escape(body)}</text>"
    )


def _svg(height: float, title: str, body: list[str]) -> Markup:
    label = escape(title)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {_num(height)}" width="100%" '
        f'role="img" aria-label="{label}" xmlns="http://www.w3.org/2000/svg" {_FONT}>'
        f"<title>{label}</title>{''.join(body)}</svg>"
    )


def _clip_label(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks: list[float] = []
    value = start
    while value <= hi + 1e-9 and len(ticks) < 12:
        ticks.append(round(value, 10))
        value += step
    return ticks


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    lo: float = 0.0,
    hi: float | None = None,
    value_format: str = "{:.3f}",
    label_chars: int = 42,
    legend: Sequence[tuple[str, str]] = (),
) -> Markup:
    """Horizontal bars, one row per item (labels stay readable however many there are)."""
    values = [b.value for b in bars if b.value is not None and math.isfinite(b.value)]
    top = hi if hi is not None else max([*values, lo + 1e-9])
    if top <= lo:
        top = lo + 1.0
    label_w, value_w, row_h, pad_top = 290.0, 70.0, 20.0, 26.0
    plot_x, plot_w = label_w, WIDTH - label_w - value_w
    legend_h = 22.0 if legend else 0.0
    height = pad_top + row_h * max(1, len(bars)) + 24 + legend_h

    def x_of(value: float) -> float:
        return plot_x + plot_w * (min(max(value, lo), top) - lo) / (top - lo)

    body = [_text(0, 15, title, extra='font-weight="600" font-size="13"')]
    bottom = pad_top + row_h * max(1, len(bars))
    for tick in _nice_ticks(lo, top):
        x = x_of(tick)
        body.append(
            f'<line x1="{_num(x)}" y1="{_num(pad_top - 4)}" x2="{_num(x)}" '
            f'y2="{_num(bottom)}" stroke="{_GRID}"/>'
        )
        body.append(_text(x, bottom + 14, value_format.format(tick), anchor="middle", fill=_MUTED))
    for i, bar in enumerate(bars):
        y = pad_top + i * row_h
        color = PALETTE.get(bar.kind, PALETTE["normal"])
        weight = ' font-weight="600"' if bar.kind in ("best", "baseline") else ""
        tip = f"{bar.label}: " + (
            value_format.format(bar.value) if bar.value is not None else "n/a"
        )
        if bar.note:
            tip += f" ({bar.note})"
        body.append(f"<g><title>{escape(tip)}</title>")
        body.append(
            _text(
                label_w - 8,
                y + 14,
                _clip_label(bar.label, label_chars - 4 if weight else label_chars),
                anchor="end",
                extra=weight,
            )
        )
        if bar.value is not None and math.isfinite(bar.value):
            width = max(1.0, x_of(bar.value) - plot_x)
            body.append(
                f'<rect x="{_num(plot_x)}" y="{_num(y + 3)}" width="{_num(width)}" '
                f'height="{_num(row_h - 6)}" rx="2" fill="{color}"/>'
            )
            body.append(
                _text(plot_x + width + 6, y + 14, value_format.format(bar.value), fill=_MUTED)
            )
        else:
            body.append(_text(plot_x + 6, y + 14, "n/a", fill=_MUTED))
        body.append("</g>")
    body.append(
        f'<line x1="{_num(plot_x)}" y1="{_num(pad_top - 4)}" x2="{_num(plot_x)}" '
        f'y2="{_num(bottom)}" stroke="{_AXIS}"/>'
    )
    if legend:
        body.append(_legend(legend, height - 8))
    return _svg(height, title, body)


def interval_plot(
    rows: Sequence[Interval],
    *,
    title: str,
    reference: float | None = 0.0,
    reference_label: str = "no difference",
    lo: float | None = None,
    hi: float | None = None,
    value_format: str = "{:+.3f}",
) -> Markup:
    """Point estimates with their interval, against a reference line (zero by default)."""
    points = [v for r in rows for v in (r.low, r.high, r.estimate) if math.isfinite(v)]
    if reference is not None:
        points.append(reference)
    low = lo if lo is not None else min(points or [0.0])
    high = hi if hi is not None else max(points or [1.0])
    span = (high - low) or 1.0
    if lo is None:
        low -= span * 0.08
    if hi is None:
        high += span * 0.08
    label_w, value_w, row_h, pad_top = 200.0, 190.0, 34.0, 46.0
    plot_x, plot_w = label_w, WIDTH - label_w - value_w
    height = pad_top + row_h * max(1, len(rows)) + 30

    def x_of(value: float) -> float:
        return plot_x + plot_w * (min(max(value, low), high) - low) / (high - low)

    bottom = pad_top + row_h * max(1, len(rows))
    body = [_text(0, 15, title, extra='font-weight="600" font-size="13"')]
    for tick in _nice_ticks(low, high):
        x = x_of(tick)
        body.append(
            f'<line x1="{_num(x)}" y1="{_num(pad_top - 6)}" x2="{_num(x)}" '
            f'y2="{_num(bottom)}" stroke="{_GRID}"/>'
        )
        body.append(_text(x, bottom + 14, value_format.format(tick), anchor="middle", fill=_MUTED))
    if reference is not None:
        x = x_of(reference)
        body.append(
            f'<line x1="{_num(x)}" y1="{_num(pad_top - 10)}" x2="{_num(x)}" y2="{_num(bottom)}" '
            f'stroke="{_AXIS}" stroke-dasharray="4 3"/>'
        )
        body.append(_text(x, pad_top - 14, reference_label, anchor="middle", fill=_MUTED))
    for i, row in enumerate(rows):
        y = pad_top + i * row_h + row_h / 2
        color = PALETTE.get(row.kind, PALETTE["normal"])
        x1, x2, xe = x_of(row.low), x_of(row.high), x_of(row.estimate)
        summary = (
            f"{value_format.format(row.estimate)} "
            f"[{value_format.format(row.low)}, {value_format.format(row.high)}]"
        )
        body.append(f"<g><title>{escape(row.label + ': ' + summary)}</title>")
        body.append(_text(label_w - 10, y + 4, _clip_label(row.label, 30), anchor="end"))
        body.append(
            f'<rect x="{_num(x1)}" y="{_num(y - 7)}" width="{_num(max(1.0, x2 - x1))}" '
            f'height="14" rx="3" fill="{color}" fill-opacity="0.22"/>'
        )
        for x in (x1, x2):
            body.append(
                f'<line x1="{_num(x)}" y1="{_num(y - 9)}" x2="{_num(x)}" y2="{_num(y + 9)}" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        body.append(
            f'<line x1="{_num(x1)}" y1="{_num(y)}" x2="{_num(x2)}" y2="{_num(y)}" '
            f'stroke="{color}" stroke-width="2"/>'
        )
        body.append(f'<circle cx="{_num(xe)}" cy="{_num(y)}" r="5" fill="{color}"/>')
        body.append(_text(plot_x + plot_w + 12, y + 4, summary, fill=_TEXT))
        body.append("</g>")
    return _svg(height, title, body)


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    y_min: float | None = None,
    y_max: float | None = None,
    x_format: Callable[[float], str] = lambda v: f"{v:g}",
    y_format: str = "{:g}",
    reference: float | None = None,
    markers: Sequence[Marker] = (),
) -> Markup:
    """Lines with markers over a shared x axis, with a legend (counters per arm over time),
    and optional moments marked across the plot (a signature's promotions and rollbacks)."""
    xs = [x for s in series for x, _ in s.points] + [m.x for m in markers]
    ys = [y for s in series for _, y in s.points if math.isfinite(y)]
    if not xs:
        return empty_chart(title, "no data yet")
    x_lo, x_hi = min(xs), max(xs)
    if x_hi <= x_lo:
        x_hi = x_lo + 1.0
    lo = y_min if y_min is not None else min([*ys, 0.0])
    hi = y_max if y_max is not None else max([*ys, lo + 1.0])
    if hi <= lo:
        hi = lo + 1.0
    left, right, plot_h = 56.0, 24.0, 180.0
    top = 46.0 if markers else 30.0
    plot_w = WIDTH - left - right
    height = top + plot_h + 58

    def px(x: float) -> float:
        return left + plot_w * (x - x_lo) / (x_hi - x_lo)

    def py(y: float) -> float:
        return top + plot_h * (1 - (min(max(y, lo), hi) - lo) / (hi - lo))

    body = [_text(0, 15, title, extra='font-weight="600" font-size="13"')]
    for tick in _nice_ticks(lo, hi):
        y = py(tick)
        body.append(
            f'<line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(left + plot_w)}" y2="{_num(y)}" '
            f'stroke="{_GRID}"/>'
        )
        body.append(_text(left - 6, y + 4, y_format.format(tick), anchor="end", fill=_MUTED))
    for tick in _nice_ticks(x_lo, x_hi, 6):
        x, label = px(tick), x_format(tick)
        # A long label (a date) at the plot's edge would be cut off; a short one stays centered.
        anchor = _edge_anchor(x, left, left + plot_w) if len(label) > 6 else "middle"
        body.append(_text(x, top + plot_h + 16, label, anchor=anchor, fill=_MUTED))
    body.append(
        f'<line x1="{_num(left)}" y1="{_num(top + plot_h)}" x2="{_num(left + plot_w)}" '
        f'y2="{_num(top + plot_h)}" stroke="{_AXIS}"/>'
    )
    body.append(_text(left + plot_w / 2, top + plot_h + 32, x_label, anchor="middle", fill=_MUTED))
    body.append(
        _text(
            12,
            top + plot_h / 2,
            y_label,
            anchor="middle",
            fill=_MUTED,
            extra=f'transform="rotate(-90 12 {_num(top + plot_h / 2)})"',
        )
    )
    if reference is not None and lo <= reference <= hi:
        y = py(reference)
        body.append(
            f'<line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(left + plot_w)}" y2="{_num(y)}" '
            f'stroke="{_AXIS}" stroke-dasharray="4 3"/>'
        )
    for marker in markers:
        x, color = px(marker.x), PALETTE.get(marker.kind, PALETTE["normal"])
        body.append(
            f'<line x1="{_num(x)}" y1="{_num(top)}" x2="{_num(x)}" y2="{_num(top + plot_h)}" '
            f'stroke="{color}" stroke-width="1.5" stroke-dasharray="3 3">'
            f"<title>{escape(marker.note or marker.text)}</title></line>"
        )
        anchor = _edge_anchor(x, left, left + plot_w)
        body.append(
            _text(x, top - 4, marker.text, anchor=anchor, fill=color, extra='font-size="11"')
        )
    for index, s in enumerate(series):
        color = PALETTE.get(s.kind, PALETTE["normal"])
        # The first line is drawn wider, so a later one on top of it leaves it visible.
        width = 4.5 if index == 0 and len(series) > 1 else 2
        pts = [(px(x), py(y)) for x, y in s.points if math.isfinite(y)]
        if not pts:
            continue
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        path = " ".join(f"{_num(x)},{_num(y)}" for x, y in pts)
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="{width}"{dash}/>'
        )
        for (x, y), (raw_x, raw_y) in zip(pts, s.points, strict=False):
            tip = f"{s.name}: {y_format.format(raw_y)} at {x_format(raw_x)}"
            body.append(
                f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3" fill="{color}">'
                f"<title>{escape(tip)}</title></circle>"
            )
    body.append(_legend([(s.name, s.kind) for s in series], height - 6))
    return _svg(height, title, body)


def _edge_anchor(x: float, lo: float, hi: float, room: float = 50.0) -> str:
    """Text centered on ``x``, except near an edge of the plot, where it runs inward instead of
    being cut off."""
    if x < lo + room:
        return "start"
    if x > hi - room:
        return "end"
    return "middle"


def empty_chart(title: str, message: str) -> Markup:
    body = [
        _text(0, 15, title, extra='font-weight="600" font-size="13"'),
        _text(WIDTH / 2, 48, message, anchor="middle", fill=_MUTED),
    ]
    return _svg(64, title, body)


def _legend(items: Sequence[tuple[str, str]], y: float) -> str:
    parts = []
    x = 0.0
    for name, kind in items:
        if not name:
            continue
        color = PALETTE.get(kind, PALETTE["normal"])
        parts.append(
            f'<rect x="{_num(x)}" y="{_num(y - 10)}" width="12" height="12" rx="2" fill="{color}"/>'
        )
        parts.append(_text(x + 17, y, name, fill=_MUTED))
        x += 30 + 7.0 * len(name)
    return "".join(parts)


def duration_text(seconds: float) -> str:
    """Compact elapsed time for axis labels: 45s, 3m, 1.5h."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
