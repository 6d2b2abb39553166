"""The page frame and the small HTML pieces every page uses. Text is escaped unless it
is ``Html`` (markup built here); the style is inline, nothing is fetched from
anywhere."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

NAV = [
    ("/", "models", "Models"),
    ("/try", "try", "Try it"),
    ("/labeling", "labeling", "Labeling"),
    ("/monitoring", "monitoring", "Monitoring"),
    ("/devices", "devices", "Devices"),
]

STAGE_COLOURS = {
    "production": "#1a7f37",
    "staging": "#0969da",
    "archived": "#6e7781",
    "none": "#afb8c1",
}

STYLE = """
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
  background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 10px 24px; display: flex; gap: 24px;
  align-items: center; }
header .brand { font-weight: 600; font-size: 17px; }
header .model { color: #9ea7b3; font-size: 13px; }
nav a { color: #d0d7de; text-decoration: none; margin-right: 16px; padding: 4px 0; }
nav a.active { color: #fff; border-bottom: 2px solid #fd8c73; }
main { padding: 18px 24px 40px; max-width: 1400px; }
h1 { font-size: 22px; margin: 4px 0 12px; }
h2 { font-size: 17px; margin: 24px 0 8px; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 12px; }
th, td { border: 1px solid #d0d7de; padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f4; font-weight: 600; }
td:not(:last-child) { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; color: #fff; border-radius: 10px; padding: 0 9px; font-size: 12px;
  font-weight: 600; line-height: 20px; }
.note { color: #57606a; }
.box { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 10px 14px;
  margin: 8px 0 14px; }
.empty { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 12px 16px; }
.error { background: #ffebe9; border: 1px solid #ff8182; border-radius: 6px; padding: 12px 16px; }
ul.history { margin: 0; padding-left: 16px; font-size: 13px; }
.grid { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 6px;
  max-width: 340px; }
figure img { display: block; max-width: 326px; height: auto; image-rendering: auto; }
figcaption { font-size: 13px; margin-top: 4px; word-break: break-all; }
.legend span { margin-right: 14px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
code { background: #eef1f4; padding: 1px 4px; border-radius: 4px; }
iframe.report { width: 100%; height: 100vh; border: 1px solid #d0d7de; background: #fff; }
"""


class Html(str):
    """Markup that is inserted as it is (everything else is escaped)."""


def esc(value: Any) -> str:
    if isinstance(value, Html):
        return value
    return html.escape("" if value is None else str(value))


def link(href: str, text: Any) -> Html:
    return Html(f'<a href="{html.escape(href, quote=True)}">{esc(text)}</a>')


def badge(stage: str) -> Html:
    colour = STAGE_COLOURS.get(stage, "#8c959f")
    return Html(f'<span class="badge" style="background:{colour}">{esc(stage)}</span>')


def num(value: Any, digits: int = 3) -> Html:
    text = f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"
    return Html(f'<span class="num">{text}</span>')


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], css_id: str = "") -> Html:
    """A table; a cell that is ``Html`` holding a number (``num``) is right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            cls = ' class="num"' if isinstance(cell, Html) and cell.startswith('<span class="num">') else ""
            cells.append(f"<td{cls}>{esc(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    ident = f' id="{css_id}"' if css_id else ""
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""  # a facts table has none
    return Html(f"<table{ident}>{thead}<tbody>{''.join(body)}</tbody></table>")


def page(title: str, body: str, model: str, active: str = "") -> str:
    """A whole page: the header with the navigation, then ``body`` (markup)."""
    nav = "".join(
        f'<a href="{href}"{" class=active" if key == active else ""}>{label}</a>' for href, key, label in NAV
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(title)} · visionloop</title><style>{STYLE}</style></head><body>"
        f'<header><span class="brand">visionloop</span><nav>{nav}</nav>'
        f'<span class="model">model {esc(model)}</span></header>'
        f"<main>{body}</main></body></html>"
    )


def empty(message: str, hint: str = "") -> Html:
    more = f'<div class="note">{esc(hint)}</div>' if hint else ""
    return Html(f'<div class="empty"><strong>{esc(message)}</strong>{more}</div>')
