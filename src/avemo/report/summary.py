"""The report's opening section: its answer first, as its verdicts say, then links down.

Every number is read from the pipeline's files (metrics JSONs, compare.json) through the same
functions the sections below use; the data's name is ``Data.name`` and the protocol's hash is
the hash of the file the verdicts were decided under.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import diagnosis as dx
from ..evaluation import sensitivity
from ..evaluation.protocol import Protocol
from . import diagnosis, findings
from .findings import Data
from .inputs import ReportInputs
from .render import Section, anchor
from .tables import fmt_stats, stats

TITLE = "Summary"


def _model(inp: ReportInputs, group: str, label: str) -> str | None:
    sel = inp.best.get(group)
    if not sel:
        return None
    m = sel["model"]
    return (f"{label} (chosen on dev): `{m}`, test emotion weighted F1 "
            f"{fmt_stats(stats(inp.metrics[m], 'emotion', 'weighted_f1'))} (mean ± std over "
            "seeds [marginal interval of the seed-mean])")


def summary_section(inp: ReportInputs, data: Data, proto: Protocol,
                    small: bool = False, planted: Mapping[str, Any] | None = None) -> Section:
    """The answer to "why did the fusion fail" as the verdicts say, the best single stream
    and the best fusion with intervals, the data's name, the protocol's hash. ``small``: too
    few test utterances, so the answer carries no verdict. ``planted``: the planted check's
    record (avemo.evaluation.sensitivity): its first sentence says what the protocol detects
    where the cause is known."""
    section = Section(TITLE)
    section.paragraphs.append(
        f"**Data: {data.name}.** Verdicts under the diagnosis protocol `{proto.hash}` "
        f"(alpha {proto.alpha:g}, Holm-adjusted, equivalence margin ±{proto.margin:g} weighted "
        "F1; docs/diagnosis.md): each effect reads effect, equivalent or inconclusive.")
    if small:
        section.paragraphs.append("**Too few test utterances for statistics: no verdict below "
                                  "is evidence of anything.**")
    lines = [x for x in (_model(inp, "single_stream", "Best single stream"),
                         _model(inp, "fusion", "Best fusion")) if x]
    section.paragraphs += [f"{x}." for x in lines]
    study, best = dx.STUDY_MODEL, (inp.best.get("single_stream") or {}).get("model")
    pair = inp.pair(study, best) if best and study in inp.models.fusion else None
    if pair is not None and not small:
        t = pair["tests"]["emotion"]["weighted_f1"]
        section.paragraphs.append(data.finding(
            f"the study's fusion is {findings.relation(t, proto.alpha)} the best single stream: "
            f"{findings.describe(t, pair['a'], pair['b'], proto.alpha)}"))
    if inp.models.diagnosis and study in inp.models.fusion:
        df = diagnosis.effects_table(inp, proto)
        why = diagnosis.summary(df, proto.alpha, proto.collapse_share,
                                diagnosis.study_collapse(inp, proto))
        if why:
            section.paragraphs.append("**Why the fusion failed, as the verdicts say:**")
            section.paragraphs += [data.finding(s) for s in why]
            section.paragraphs.append(sensitivity.paragraph(planted, proto.hash, first=True))
    return section


def add_links(section: Section, below: list[Section]) -> None:
    """A line of links to every section below (report.md and report.html alike)."""
    links = " · ".join(f"[{s.title}](#{anchor(s.title)})" for s in below)
    section.paragraphs.append(f"Sections: {links}")
