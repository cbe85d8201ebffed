"""study.md: a summary table of verdicts, then per section its question, what ran, its tables and claims."""

from __future__ import annotations

import math
from typing import Any

from interplay.study.core import CHECKS, NOTHING_VARIED, RULE, Claim, Section, pct


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
    notes += [f"- {c.name}: nothing varied: the arms compared gave the same outcome on every task, so the claim is "
              "not tested here (the manipulation check above shows what the arms were given to differ on)"
              for c in claims if c.verdict == NOTHING_VARIED]
    return lines + ([""] + notes if notes else [])


def _check_value(key: str, value: float) -> str:
    if not math.isfinite(value):
        return "–"
    if key == "runs":
        return f"{value:.0f}"
    return pct(value) if CHECKS[key][1] else f"{value:.2f}"


def checks_table(section: Section) -> list[str]:
    """The section's manipulation checks: one row per arm, one column per check it has."""
    if not section.checks:
        return []
    keys = [k for k in CHECKS if any(k in row for row in section.checks.values())]
    lines = ["Manipulation check (did the arms get what they were meant to differ on?):", "",
             "| arm | " + " | ".join(CHECKS[k][0] for k in keys) + " |", "|---|" + "---|" * len(keys)]
    for arm, row in section.checks.items():
        lines.append(f"| {cell(arm)} | " + " | ".join(_check_value(k, row[k]) if k in row else "–" for k in keys) + " |")
    return lines + (["", section.checks_note] if section.checks_note else []) + [""]


def render(header: dict[str, Any], sections: dict[str, Section]) -> str:
    lines = ["# interplay study", "",
             f"`{header['command']}`: budget {header['budget']:g} ({header['seeds']} seeds where a section compares "
             f"methods), {header['wall_s'] / 60:.1f} minutes on {header['machine']}.", "",
             "Every statistic is positive when the finding holds; its 95% interval is a percentile bootstrap over "
             f"the seeds and tasks named. Verdicts: {RULE}", "",
             "| section | main claim | value [95% interval] | verdict |", "|---|---|---|---|"]
    for s in sections.values():
        main = s.claims[0]
        lines.append(f"| [{s.title}](#{s.key}) | {cell(main.statement)} | {claim_cell(main)} | **{s.verdict}** |")
    for s in sections.values():
        lines += ["", f"<a id=\"{s.key}\"></a>", f"## {s.title}", "", s.question, "", "What ran:", ""]
        lines += [f"- {item}" for item in s.setup]
        lines += ["", *s.tables, "", *checks_table(s), "Claims:", "", *claims_table(s.claims), "",
                  f"**Verdict: {s.verdict}** ({s.claims[0].statement.rstrip('.')}; {s.wall_s / 60:.1f} minutes)."]
    return "\n".join(lines) + "\n"
