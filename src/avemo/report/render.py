"""Render one report structure to Markdown and to a self-contained HTML page.

A report is a list of Section objects; both renderers walk the same list, so report.md and
report.html always hold the same numbers.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Table:
    """One table: ``df`` (raw numbers) is written to ``tables/<name>.csv``; ``display`` (the
    same rows, numbers formatted for reading, e.g. "0.312 ± 0.010 [0.281, 0.345]") is what
    report.md/html show when given."""

    name: str  # file stem under tables/
    caption: str
    df: pd.DataFrame
    display: pd.DataFrame | None = None
    # What the numbers were computed on, written as the CSV's ``dataset`` column; None: this
    # run's data (the report fills it in).
    dataset: str | None = None

    @property
    def shown(self) -> pd.DataFrame:
        return self.df if self.display is None else self.display


@dataclass
class Figure:
    path: Path
    caption: str


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    # Raw HTML after the section's content, in report.html only (the error browser).
    html: str = ""


def anchor(title: str) -> str:
    """The heading's link target, as GitHub derives it from a Markdown heading (report.html's
    ``<h2 id>`` uses the same, so ``[text](#anchor)`` works in both)."""
    slug = re.sub(r"[^\w\- ]", "", title.strip().lower(), flags=re.UNICODE)
    return slug.replace(" ", "-")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def to_markdown(title: str, sections: list[Section], rel_to: Path) -> str:
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for p in s.paragraphs:
            out += [p, ""]
        for t in s.tables:
            out += [f"**{t.caption}** (`tables/{t.name}.csv`)", "", markdown_table(t.shown), ""]
        for f in s.figures:
            rel = f.path.relative_to(rel_to).as_posix()
            out += [f"![{f.caption}]({rel})", "", f"*{f.caption}*", ""]
    return "\n".join(out)


def _inline(text: str) -> str:
    """The little Markdown the paragraphs use (**bold**, `code`) as HTML."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    # [text](url): report.md's links (e.g. to the error browser) stay links in report.html.
    out = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.banner{padding:.6em 1em;border-radius:6px;background:#fff3cd;border:1px solid #e0c36a}
figure{margin:1em 0} img{max-width:100%} figcaption{font-style:italic;color:#555}
"""


def to_html(title: str, sections: list[Section]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        body.append(f'<h2 id="{html.escape(anchor(s.title))}">{html.escape(s.title)}</h2>')
        for p in s.paragraphs:
            cls = ' class="banner"' if p.startswith("**") else ""
            body.append(f"<p{cls}>{_inline(p)}</p>")
        for t in s.tables:
            body.append(
                f"<p><b>{html.escape(t.caption)}</b> (<code>tables/{html.escape(t.name)}.csv"
                "</code>)</p>"
            )
            body.append(t.shown.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}"))
        for f in s.figures:
            data = base64.b64encode(Path(f.path).read_bytes()).decode()
            body.append(
                f'<figure><img alt="{html.escape(f.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
            )
        body.append(s.html)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )
