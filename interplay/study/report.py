"""study.md: a summary table of verdicts, then per section its question, what ran, its tables and claims."""

from __future__ import annotations

import math
from typing import Any

from interplay.study.core import Claim, Section


def _number(value: float) -> str:
    return f"{value:+.3f}" if math.isfinite(value) else "–"


def claim_cell(claim: Claim) -> str:
    low, high = claim.interval
    return f"{_number(claim.value)} [{_number(low)}, {_number(high)}]"


def cell(text: str) -> str:
    """Text that stays in its markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def claims_table(claims: list[Claim]) -> list[str]:
    lines = ["| claim | statistic (positive = the claim holds) | value [95% interval] | over | verdict |",
             "|---|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {cell(c.statement)} | {cell(c.statistic)} | {claim_cell(c)} | {c.over} | **{c.verdict}** |")
    notes = [f"- {c.name}: {c.note}" for c in claims if c.note]
    return lines + ([""] + notes if notes else [])


def render(header: dict[str, Any], sections: dict[str, Section]) -> str:
    lines = ["# interplay study", "",
             f"`{header['command']}`: budget {header['budget']:g} ({header['seeds']} seeds where a section compares "
             f"methods), {header['wall_s'] / 60:.1f} minutes on {header['machine']}.", "",
             "Every statistic is positive when the finding holds; its 95% interval is a percentile bootstrap over "
             "the seeds and tasks named. Verdicts: **reproduced** (the interval is above 0), **not reproduced** "
             "(the interval excludes an effect of the claim's margin, or shows the opposite), **inconclusive at "
             "this budget** (otherwise).", "",
             "| section | main claim | value [95% interval] | verdict |", "|---|---|---|---|"]
    for s in sections.values():
        main = s.claims[0]
        lines.append(f"| [{s.title}](#{s.key}) | {cell(main.statement)} | {claim_cell(main)} | **{s.verdict}** |")
    for s in sections.values():
        lines += ["", f"<a id=\"{s.key}\"></a>", f"## {s.title}", "", s.question, "", "What ran:", ""]
        lines += [f"- {item}" for item in s.setup]
        lines += ["", *s.tables, "", "Claims:", "", *claims_table(s.claims), "",
                  f"**Verdict: {s.verdict}** ({s.claims[0].statement.rstrip('.')}; {s.wall_s / 60:.1f} minutes)."]
    return "\n".join(lines) + "\n"
