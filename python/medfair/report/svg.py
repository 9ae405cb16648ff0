"""Inline SVG charts for the report: bars with intervals, a heatmap with a
colour legend, sorted per-vignette bars and a before/after dot plot.

Every chart is a standalone <svg role="img"> with a <title> and <desc>, so
screen readers announce it, and each mark carries a <title> tooltip with its
exact value.
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

FONT = 12
# Viridis anchors (matplotlib's colormap at 0, 0.25, 0.5, 0.75, 1). The
# legend's linear gradient uses the same stops, so it matches the cells.
VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
BAR_COLOUR = "#3b6ea8"
BAR_COLOUR_ALT = "#c2663a"


def _f(x: float) -> str:
    return f"{x:.1f}"


def _open(width: int, height: int, chart_id: str, title: str, description: str) -> list[str]:
    return [
        f'<svg class="chart" id="{chart_id}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="{FONT}">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
    ]


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def nice_ticks(upper: float, count: int = 5) -> list[float]:
    """Return round tick values from 0 to at least `upper`."""
    if upper <= 0 or not math.isfinite(upper):
        return [0.0, 1.0]
    raw = upper / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    n = math.ceil(upper / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def _tick_label(value: float) -> str:
    return f"{value:g}"


def interval_bars(chart_id: str, title: str, description: str, x_label: str,
                  rows: Sequence[tuple[str, float | None, float | None, float | None]],
                  domain: tuple[float, float] = (0.0, 1.0), digits: int = 3) -> str:
    """Draw horizontal bars (label, value, interval low, interval high) with whiskers.

    A row whose value is None is drawn as "no data" without a bar.
    """
    label_width = 24 + 7 * max((len(label) for label, *_ in rows), default=4)
    plot_width = 520
    value_width = 150
    row_height = 26
    top, bottom = 10, 46
    width = label_width + plot_width + value_width
    height = top + row_height * len(rows) + bottom
    lo, hi = domain

    def x_of(v: float) -> float:
        return label_width + (min(max(v, lo), hi) - lo) / (hi - lo) * plot_width

    out = _open(width, height, chart_id, title, description)
    axis_y = top + row_height * len(rows)
    ticks = [lo + (hi - lo) * i / 4 for i in range(5)]
    for t in ticks:
        x = x_of(t)
        out.append(f'<line class="grid" x1="{_f(x)}" y1="{top}" x2="{_f(x)}" y2="{axis_y}" stroke="#ddd"/>')
        out.append(_text(x, axis_y + 16, _tick_label(t), "middle"))
    out.append(f'<line x1="{label_width}" y1="{axis_y}" x2="{label_width + plot_width}" y2="{axis_y}" stroke="#444"/>')
    out.append(_text(label_width + plot_width / 2, axis_y + 36, x_label, "middle", ' class="axis-label"'))

    for i, (label, value, low, high) in enumerate(rows):
        y = top + i * row_height
        mid = y + row_height / 2
        out.append(_text(label_width - 8, mid + 4, label, "end"))
        if value is None:
            out.append(_text(label_width + 4, mid + 4, "no data", extra=' fill="#666"'))
            continue
        tip = f"{label}: {value:.{digits}f}"
        if low is not None and high is not None:
            tip += f" (interval {low:.{digits}f} to {high:.{digits}f})"
        out.append(f'<rect class="bar" x="{label_width}" y="{_f(y + 5)}" width="{_f(x_of(value) - label_width)}" '
                   f'height="{row_height - 10}" fill="{BAR_COLOUR}"><title>{escape(tip)}</title></rect>')
        value_text = f"{value:.{digits}f}"
        if low is not None and high is not None:
            x1, x2 = x_of(low), x_of(high)
            out.append(f'<path class="whisker" d="M{_f(x1)} {_f(mid)}H{_f(x2)}M{_f(x1)} {_f(mid - 6)}V{_f(mid + 6)}'
                       f'M{_f(x2)} {_f(mid - 6)}V{_f(mid + 6)}" stroke="#111" stroke-width="1.5" fill="none"/>')
            value_text += f" [{low:.{digits}f}, {high:.{digits}f}]"
        out.append(_text(label_width + plot_width + 8, mid + 4, value_text))
    out.append("</svg>")
    return "\n".join(out)


def _hex_to_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def viridis(value: float) -> str:
    """Map a value in [0, 1] to a colour, interpolating the anchors linearly in sRGB."""
    value = min(max(value, 0.0), 1.0)
    position = value * (len(VIRIDIS) - 1)
    i = min(int(position), len(VIRIDIS) - 2)
    t = position - i
    a, b = _hex_to_rgb(VIRIDIS[i]), _hex_to_rgb(VIRIDIS[i + 1])
    r, g, bl = (round(a[k] + (b[k] - a[k]) * t) for k in range(3))
    return f"#{r:02x}{g:02x}{bl:02x}"


def heatmap(chart_id: str, title: str, description: str, row_labels: Sequence[str], column_labels: Sequence[str],
            values: Sequence[Sequence[float | None]], legend_label: str, extra_column: str = "",
            extra_values: Sequence[float | None] = ()) -> str:
    """Draw a row x column grid of values in [0, 1] with a colour legend.

    `extra_column` names an optional last column of plain numbers (the
    per-vignette gap) printed beside each row.
    """
    cell_w, cell_h = 74, 22
    label_width = 24 + 8 * max((len(label) for label in row_labels), default=3)
    header = 100
    extra_w = 70 if extra_column else 0
    legend_h = 70
    width = max(label_width + cell_w * len(column_labels) + extra_w + 20, 420)
    height = header + cell_h * len(row_labels) + legend_h
    out = _open(width, height, chart_id, title, description)

    for j, label in enumerate(column_labels):
        x = label_width + j * cell_w + cell_w / 2
        out.append(f'<text x="{_f(x)}" y="{header - 8}" transform="rotate(-40 {_f(x)} {header - 8})">'
                   f'{escape(label)}</text>')
    if extra_column:
        x = label_width + len(column_labels) * cell_w + extra_w / 2
        out.append(_text(x, header - 8, extra_column, "middle", ' font-weight="bold"'))

    for i, (row_label, row_values) in enumerate(zip(row_labels, values)):
        y = header + i * cell_h
        out.append(_text(label_width - 8, y + cell_h / 2 + 4, row_label, "end"))
        for j, value in enumerate(row_values):
            x = label_width + j * cell_w
            if value is None:
                out.append(f'<rect class="cell missing" x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" '
                           f'fill="#eee" stroke="#fff"><title>{escape(row_label)}, '
                           f'{escape(column_labels[j])}: no prompt</title></rect>')
                continue
            out.append(f'<rect class="cell" x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" '
                       f'fill="{viridis(value)}" stroke="#fff"><title>{escape(row_label)}, '
                       f'{escape(column_labels[j])}: {value:.3f}</title></rect>')
            # Viridis is dark below about 0.45, where white text has the better contrast.
            colour = "#fff" if value < 0.45 else "#111"
            out.append(_text(x + cell_w / 2, y + cell_h / 2 + 4, f"{value:.2f}", "middle", f' fill="{colour}"'))
        if extra_column:
            extra = extra_values[i] if i < len(extra_values) else None
            x = label_width + len(column_labels) * cell_w + extra_w / 2
            out.append(_text(x, y + cell_h / 2 + 4, "n/a" if extra is None else f"{extra:.3f}", "middle"))

    legend_y = header + cell_h * len(row_labels) + 22
    legend_w = 240
    out.append(f'<defs><linearGradient id="{chart_id}-scale">')
    for k, colour in enumerate(VIRIDIS):
        out.append(f'<stop offset="{k / (len(VIRIDIS) - 1):g}" stop-color="{colour}"/>')
    out.append("</linearGradient></defs>")
    out.append(_text(label_width, legend_y - 6, legend_label))
    out.append(f'<rect class="legend" x="{label_width}" y="{legend_y}" width="{legend_w}" height="12" '
               f'fill="url(#{chart_id}-scale)" stroke="#444"/>')
    for t in [0, 0.25, 0.5, 0.75, 1]:
        out.append(_text(label_width + t * legend_w, legend_y + 28, _tick_label(t), "middle"))
    out.append("</svg>")
    return "\n".join(out)


def sorted_bars(chart_id: str, title: str, description: str, y_label: str,
                items: Sequence[tuple[str, float]], reference_lines: Sequence[tuple[str, float]] = ()) -> str:
    """Draw vertical bars (label, value) in the given order, with labelled dashed reference lines."""
    plot_h = 220
    left, top, bottom = 60, 16, 70
    bar_w = max(8, min(34, 760 // max(len(items), 1)))
    width = left + bar_w * len(items) + 150
    height = top + plot_h + bottom
    upper = max([v for _, v in items] + [v for _, v in reference_lines] + [1e-9])
    ticks = nice_ticks(upper, 4)
    y_max = ticks[-1]

    def y_of(v: float) -> float:
        return top + plot_h - v / y_max * plot_h

    out = _open(width, height, chart_id, title, description)
    for t in ticks:
        y = y_of(t)
        out.append(f'<line class="grid" x1="{left}" y1="{_f(y)}" x2="{left + bar_w * len(items)}" y2="{_f(y)}" '
                   f'stroke="#ddd"/>')
        out.append(_text(left - 6, y + 4, _tick_label(t), "end"))
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>')
    out.append(_text(14, top + plot_h / 2, y_label, "middle",
                     f' class="axis-label" transform="rotate(-90 14 {_f(top + plot_h / 2)})"'))
    show_labels = len(items) <= 60
    for i, (label, value) in enumerate(items):
        x = left + i * bar_w
        out.append(f'<rect class="bar" x="{x + 1}" y="{_f(y_of(value))}" width="{bar_w - 2}" '
                   f'height="{_f(top + plot_h - y_of(value))}" fill="{BAR_COLOUR}">'
                   f'<title>{escape(label)}: {value:.3f}</title></rect>')
        if show_labels:
            lx, ly = x + bar_w / 2, top + plot_h + 12
            out.append(f'<text x="{_f(lx)}" y="{_f(ly)}" text-anchor="end" '
                       f'transform="rotate(-60 {_f(lx)} {_f(ly)})">{escape(label)}</text>')
    for label, value in reference_lines:
        y = y_of(value)
        end = left + bar_w * len(items)
        out.append(f'<line class="reference" x1="{left}" y1="{_f(y)}" x2="{end}" y2="{_f(y)}" stroke="#b02a2a" '
                   f'stroke-dasharray="5 3"/>')
        out.append(_text(end + 6, y + 4, f"{label} {value:.3f}", extra=' fill="#b02a2a"'))
    out.append("</svg>")
    return "\n".join(out)


def paired_dots(chart_id: str, title: str, description: str, x_label: str,
                items: Sequence[tuple[str, float, float]], names: tuple[str, str] = ("before", "after")) -> str:
    """Draw one row per item with a dot for each of two runs joined by a line (a dumbbell plot)."""
    label_width = 24 + 8 * max((len(label) for label, *_ in items), default=3)
    plot_w, row_h, top, bottom = 480, 18, 30, 46
    width = label_width + plot_w + 30
    height = top + row_h * len(items) + bottom
    upper = max([max(a, b) for _, a, b in items] + [1e-9])
    ticks = nice_ticks(upper, 4)

    def x_of(v: float) -> float:
        return label_width + v / ticks[-1] * plot_w

    out = _open(width, height, chart_id, title, description)
    out.append(f'<circle cx="{label_width + 6}" cy="12" r="5" fill="{BAR_COLOUR_ALT}"/>')
    out.append(_text(label_width + 16, 16, names[0]))
    out.append(f'<circle cx="{label_width + 106}" cy="12" r="5" fill="{BAR_COLOUR}"/>')
    out.append(_text(label_width + 116, 16, names[1]))
    axis_y = top + row_h * len(items)
    for t in ticks:
        x = x_of(t)
        out.append(f'<line class="grid" x1="{_f(x)}" y1="{top}" x2="{_f(x)}" y2="{axis_y}" stroke="#ddd"/>')
        out.append(_text(x, axis_y + 16, _tick_label(t), "middle"))
    out.append(_text(label_width + plot_w / 2, axis_y + 36, x_label, "middle", ' class="axis-label"'))
    for i, (label, before, after) in enumerate(items):
        y = top + i * row_h + row_h / 2
        out.append(_text(label_width - 8, y + 4, label, "end"))
        out.append(f'<path d="M{_f(x_of(before))} {_f(y)}H{_f(x_of(after))}" stroke="#888" stroke-width="2"/>')
        for value, colour, name in [(before, BAR_COLOUR_ALT, names[0]), (after, BAR_COLOUR, names[1])]:
            out.append(f'<circle cx="{_f(x_of(value))}" cy="{_f(y)}" r="5" fill="{colour}">'
                       f'<title>{escape(label)} {name}: {value:.3f}</title></circle>')
    out.append("</svg>")
    return "\n".join(out)
