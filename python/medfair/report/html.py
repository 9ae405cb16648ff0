"""HTML building blocks shared by the single-run and comparison pages:
number formatting, tables, and the page shell with its inline stylesheet.

Every number that comes from a run file is wrapped by `num`, which records
where it came from (`data-path`, a JSON list of keys into summary.json) and
its exact value (`data-value`). Tests use these to check the page against
the run files.
"""

from __future__ import annotations

import json
import math
from html import escape
from typing import Any, Sequence

# Only inline styles are allowed and nothing is fetched, so a stray external
# reference shows up as a console error in the browser instead of loading.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1a1a1a;
       margin: 0 auto; max-width: 1200px; padding: 0 24px 48px; line-height: 1.45; }
header { border-bottom: 2px solid #3b6ea8; margin-bottom: 16px; }
h1 { font-size: 1.6rem; margin: 20px 0 4px; }
h2 { font-size: 1.3rem; margin-top: 36px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
h3 { font-size: 1.1rem; margin-top: 24px; }
h4 { font-size: 1rem; margin: 16px 0 6px; }
p.lead { color: #444; margin-top: 0; }
nav ul { display: flex; flex-wrap: wrap; gap: 4px 18px; padding: 0; list-style: none; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #c9d6e6; border-radius: 6px; padding: 10px 14px; min-width: 200px; background: #f6f9fc; }
.card .label { font-size: 0.85rem; color: #444; }
.card .value { font-size: 1.5rem; font-weight: 600; }
.card .detail { font-size: 0.85rem; color: #333; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.9rem; }
th, td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eef2f6; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.reject td { background: #fff3e0; }
.note { color: #555; font-size: 0.9rem; }
.warning { color: #8a4b00; }
.chart { display: block; margin: 8px 0 12px; max-width: 100%; height: auto; }
.chart .axis-label { font-weight: 600; }
.side-by-side { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.hash { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.8rem; word-break: break-all; }
"""


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt(value: Any, digits: int = 3) -> str:
    """Format a number with fixed decimals, or "n/a" for null."""
    if not is_number(value):
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def fmt_p(value: Any) -> str:
    """Format a p-value: four decimals, or scientific notation below 0.0001."""
    if not is_number(value):
        return "n/a"
    if value < 1e-4:
        return f"{value:.1e}"
    return f"{value:.4f}"


def num(value: Any, path: Sequence[Any], digits: int = 3, p_value: bool = False, run: str = "") -> str:
    """Wrap a number from a run file in a span that records its source and exact value."""
    text = fmt_p(value) if p_value else fmt(value, digits)
    exact = json.dumps(value if is_number(value) else None)
    run_attr = f' data-run="{run}"' if run else ""
    return (f'<span class="num"{run_attr} data-path="{escape(json.dumps(list(path)))}" '
            f'data-value="{escape(exact)}">{text}</span>')


def text_value(value: Any, path: Sequence[Any], run: str = "") -> str:
    """Wrap a string from a run file (a group or vignette name) like `num`."""
    display_text = "n/a" if value is None else str(value)
    run_attr = f' data-run="{run}"' if run else ""
    return (f'<span class="text"{run_attr} data-path="{escape(json.dumps(list(path)))}" '
            f'data-value="{escape(json.dumps(value))}">{escape(display_text)}</span>')


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] = (),
          row_classes: Sequence[str] = (), caption: str = "") -> str:
    """Build a table from already-escaped cell HTML; `numeric` right-aligns columns."""
    def cls(j: int) -> str:
        return ' class="n"' if j < len(numeric) and numeric[j] else ""

    out = ["<table>"]
    if caption:
        out.append(f"<caption>{escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th{cls(j)} scope=\"col\">{escape(h)}</th>"
                                       for j, h in enumerate(headers)) + "</tr></thead><tbody>")
    for i, row in enumerate(rows):
        row_class = f' class="{row_classes[i]}"' if i < len(row_classes) and row_classes[i] else ""
        out.append(f"<tr{row_class}>" + "".join(f"<td{cls(j)}>{cell}</td>" for j, cell in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def card(label: str, value_html: str, detail_html: str = "") -> str:
    detail = f'<div class="detail">{detail_html}</div>' if detail_html else ""
    return (f'<div class="card"><div class="label">{escape(label)}</div>'
            f'<div class="value">{value_html}</div>{detail}</div>')


def page(title: str, lead_html: str, nav: Sequence[tuple[str, str]], body: str) -> str:
    """Assemble a complete HTML document with inline CSS and no external resources."""
    nav_html = "".join(f'<li><a href="#{anchor}">{escape(label)}</a></li>' for anchor, label in nav)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<header><h1>{escape(title)}</h1><p class=\"lead\">{lead_html}</p>"
        f"<nav aria-label=\"Sections\"><ul>{nav_html}</ul></nav></header>\n<main>\n{body}\n</main>\n"
        "</body>\n</html>\n"
    )


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
