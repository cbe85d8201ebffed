"""study.md: a summary table of verdicts, then per section its question, what ran, its tables, manipulation
checks and claims (cells and tables: ``interplay.experiments``)."""

from __future__ import annotations

from typing import Any

from interplay.experiments import cell, checks_table, table, with_interval
from interplay.study.core import NOTHING_VARIED, RULE, Claim, Section


def claim_cell(claim: Claim) -> str:
    """A claim's statistic with its interval, as fractions: ``+0.170 [+0.030, +0.310]``."""
    return with_interval(claim.value, *claim.interval, scale=1.0, digits=3)


def claims_table(claims: list[Claim]) -> list[str]:
    rows = [[cell(c.statement), cell(c.statistic), claim_cell(c), c.over, f"**{c.verdict}**"] for c in claims]
    lines = table(["claim", "statistic (positive = the claim holds)", "value [95% interval]", "over", "verdict"], rows)
    notes = [f"- {c.name}: {c.note}" for c in claims if c.note]
    notes += [f"- {c.name}: nothing varied: the arms compared gave the same outcome on every task, so the claim is "
              "not tested here (the manipulation check above shows what the arms were given to differ on)"
              for c in claims if c.verdict == NOTHING_VARIED]
    return lines + ([""] + notes if notes else [])


#: How much more than this run's wall time a section's or study's recorded cost must be to be reported apart.
COST_SHOWN_ABOVE_S = 60.0


def cost_s(section: Section) -> float:
    """What a section's results cost: its jobs' run times in the runs that made them, or this run's wall time."""
    return max(section.compute_s, section.wall_s)


def timing(section: Section) -> str:
    """This run's wall time and, where it differs (a resumed or read-back run), the compute its results cost."""
    wall = f"{section.wall_s / 60:.1f} minutes"
    if cost_s(section) > section.wall_s + COST_SHOWN_ABOVE_S:
        return f"{wall} this run; its jobs took {section.compute_s / 60:.0f} minutes of compute in the runs that made them"
    return wall


def _compute(sections: dict[str, Section], header: dict[str, Any]) -> str:
    """The sections' summed cost, each by the runs that made its results, where that differs from this run's."""
    total = sum(cost_s(s) for s in sections.values())
    if total > header["wall_s"] + COST_SHOWN_ABOVE_S:
        return f"; the sections took {total / 60:.0f} minutes in all in the runs that made them"
    return ""


def render(header: dict[str, Any], sections: dict[str, Section]) -> str:
    summary = [[f"[{s.title}](#{s.key})", cell(s.claims[0].statement), claim_cell(s.claims[0]), f"**{s.verdict}**"]
               for s in sections.values()]
    lines = ["# interplay study", "",
             f"`{header['command']}`: budget {header['budget']:g} ({header['seeds']} seeds where a section compares "
             f"methods), {header['wall_s'] / 60:.1f} minutes on {header['machine']}{_compute(sections, header)}.", "",
             "Every statistic is positive when the finding holds; its 95% interval is a percentile bootstrap over "
             f"the seeds and tasks named. Verdicts: {RULE}", "",
             *table(["section", "main claim", "value [95% interval]", "verdict"], summary)]
    for s in sections.values():
        lines += ["", f"<a id=\"{s.key}\"></a>", f"## {s.title}", "", s.question, "", "What ran:", ""]
        lines += [f"- {item}" for item in s.setup]
        lines += ["", *s.tables, "", *checks_table(s.checks, s.checks_note), "Claims:", "", *claims_table(s.claims), "",
                  f"**Verdict: {s.verdict}** ({s.claims[0].statement.rstrip('.')}; {timing(s)})."]
    return "\n".join(lines) + "\n"
