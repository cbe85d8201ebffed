"""Regenerate README.md's figures from the reports the current code wrote.

README.md quotes numbers only inside marked regions (``<!-- figures:NAME -->`` ... ``<!-- /figures:NAME -->``),
and every region is rendered here from a summary in ``docs/figures/NAME.json``, which this script takes from a
report: ``demo`` from ``interplay demo``'s ``report.json``, ``smollm2`` from the real-model preset's pipeline
``report.json``, ``study`` from ``interplay study``'s ``study.json`` (its whole ``study.md`` is copied beside it),
``bench`` from one or more ``interplay bench`` output directories (their ``bench.json``).
Each summary records the command and seed that produced it, and the README says them under each table.
``--reverdict`` re-derives the verdicts of ``docs/figures/study.json`` (and its ``study.md``) from the stored
values, intervals and margins under the current rule (``interplay.study.core.verdict``), without retraining.

    python tools/readme_figures.py --demo runs/demo --study runs/study   # take the reports, rewrite README.md
    python tools/readme_figures.py --bench runs/bench/tiny runs/bench/smollm2-135m
    python tools/readme_figures.py --reverdict                           # the study's verdicts under today's rule
    python tools/readme_figures.py --check                               # README.md matches docs/figures (tests)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"
README = ROOT / "README.md"
DEMO_COVERAGE_N = ("2", "16", "256")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout's interplay, not whichever the interpreter would find first

from interplay.experiments.report import cell, pct, pct_interval, with_interval  # noqa: E402


def _ci(value: float, ci: list[float | None] | None) -> str:
    return pct_interval(value, *(ci or ()))


def demo_summary(report: dict[str, Any], command: str) -> dict[str, Any]:
    """The figures of a pipeline report.json the README shows."""
    stages = {name: {"pass_at_1": s["pass_at_1"], "pass_at_1_ci95": s["pass_at_1_ci95"], "pass_at_k": s["pass_at_k"],
                     "pass_at_k_ci95": s["pass_at_k_ci95"], "coverage": {n: s["coverage"].get(n) for n in DEMO_COVERAGE_N},
                     "mean_turns": s["mean_turns"], "wall_s": s["wall_s"], "success_by_turn": s["success_by_turn"]}
              for name, s in report["stages"].items()}
    return {"command": command, "seed": report["seed"], "preset": report["preset"], "k": report["k"],
            "env": report["env"], "env_kwargs": report["task"]["env_kwargs"],
            "tasks": report["stages"]["untrained"]["eval"]["n_tasks"], "stages": stages,
            "comparisons": report["comparisons"]}


def study_summary(study: dict[str, Any], command: str, timing: str | None = None) -> dict[str, Any]:
    """The figures of a study.json the README shows: every claim of every section. ``timing``: how long it took,
    in words, where the report's own wall time does not say it (sections run by separate commands)."""
    sections = {key: {"title": s["title"], "verdict": s["verdict"], "wall_s": s["wall_s"],
                      "claims": [{k: c[k] for k in ("name", "statement", "statistic", "value", "interval", "over",
                                                    "margin", "verdict")} for c in s["claims"]],
                      "checks": s.get("checks", {})}
                for key, s in study["sections"].items()}
    summary = {"command": command, "budget": study["budget"], "seeds": study["seeds"], "wall_s": study["wall_s"],
               "machine": study["machine"], "sections": sections}
    return {**summary, "timing": timing} if timing else summary


def _core() -> Any:
    """``interplay.study.core`` of this checkout."""
    from interplay.study import core

    return core


REVERDICT_NOTE = ("verdicts were re-derived from the stored values, intervals and margins under the current rule "
                  "(`python tools/readme_figures.py --reverdict`), without retraining")


def reverdict(summary: dict[str, Any], report_md: str | None = None) -> tuple[dict[str, Any], str | None, list[str]]:
    """``summary`` (a study summary) with every claim's verdict re-derived by ``core.verdict`` from its stored
    value, interval and margin, each section's verdict its first claim's; ``report_md`` (the run's study.md) with
    the same verdicts and the rule's statement; and the changes, ``section: statement: old -> new``."""
    core = _core()
    changes = []
    sections = {}
    for key, section in summary["sections"].items():
        claims = []
        for c in section["claims"]:
            if "margin" not in c:
                raise ValueError(f"study.json's claim {c['statement']!r} has no margin: re-verdicting needs one.")
            new = core.verdict(c["value"], c["interval"][0], c["interval"][1], c["margin"])
            if new != c["verdict"]:
                changes.append(f"{key}: {c['statement']} {c['verdict']} -> {new}")
                if report_md is not None:
                    row = f"| {cell(c['statement'])} | {cell(c['statistic'])} |"
                    report_md = "\n".join(line.replace(f"| **{c['verdict']}** |", f"| **{new}** |")
                                          if line.startswith(row) else line for line in report_md.split("\n"))
            claims.append({**c, "verdict": new})
        sections[key] = {**section, "claims": claims, "verdict": claims[0]["verdict"]}
        if report_md is not None and section["verdict"] != claims[0]["verdict"]:
            old, new = section["verdict"], claims[0]["verdict"]
            lines = report_md.split("\n")
            lines = [line.replace(f"| **{old}** |", f"| **{new}** |") if line.startswith(f"| [{section['title']}](#{key})")
                     else line for line in lines]
            anchor = lines.index(f'<a id="{key}"></a>')
            at = next(i for i in range(anchor, len(lines)) if lines[i].startswith(f"**Verdict: {old}**"))
            lines[at] = lines[at].replace(f"**Verdict: {old}**", f"**Verdict: {new}**", 1)
            report_md = "\n".join(lines)
    if report_md is not None:
        lines = report_md.split("\n")
        at = next(i for i, line in enumerate(lines) if line.startswith("Every statistic is positive when the finding holds"))
        lines[at] = ("Every statistic is positive when the finding holds; its 95% interval is a percentile bootstrap "
                     f"over the seeds and tasks named. Verdicts: {core.RULE} This run's {REVERDICT_NOTE}; it ran "
                     "before the study recorded manipulation checks.")
        report_md = "\n".join(lines)
    return {**summary, "sections": sections, "verdicts_note": REVERDICT_NOTE}, report_md, changes


def bench_summary(reports: list[dict[str, Any]], commands: list[str]) -> dict[str, Any]:
    """The figures of several ``interplay bench`` runs of one suite version, one entry per model."""
    versions = {r["suite_version"] for r in reports}
    if len(versions) != 1:
        raise ValueError(f"bench reports of different suite versions {sorted(versions)} do not compare.")
    keep = ("task", "success", "success_ci95", "success_by_attempt", "invalid_rate", "agent_tokens_per_episode",
            "seconds")
    return {"suite_version": versions.pop(),
            "models": [{"model": r["model"], "command": command, "episodes": r["episodes"], "sampling": r["sampling"],
                        "rows": [{k: row[k] for k in keep} for row in r["rows"]]}
                       for r, command in zip(reports, commands)]}


def render_bench(d: dict[str, Any]) -> str:
    models = d["models"]
    rows = {row["task"]: {} for m in models for row in m["rows"]}
    for m in models:
        for row in m["rows"]:
            rows[row["task"]][m["model"]] = row
    lines = ["| task | " + " | ".join(f"`{m['model']}` success % [95% CI] · invalid %" for m in models) + " |",
             "|---|" + "---|" * len(models)]
    for task, by_model in rows.items():
        cells = []
        for m in models:
            row = by_model.get(m["model"])
            cells.append("–" if row is None else f"{pct_interval(row['success'], *row['success_ci95'], digits=0)} · "
                         f"{pct(row['invalid_rate'], digits=0)}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    lines.append("")
    for m in models:
        minutes = sum(row["seconds"] for row in m["rows"]) / 60
        lines.append(f"`{m['model']}`: produced by `{m['command']}` (suite v{d['suite_version']}, {m['episodes']} "
                     f"held-out episodes per task, temperature {m['sampling']['temperature']:g}, at most "
                     f"{m['sampling']['max_new_tokens']} new tokens a reply) in {minutes:.0f} minutes.  ")
    lines.append("Intervals: Wilson 95% over episodes. Invalid: the share of replies the environment could not read.")
    return "\n".join(lines)


def render_demo(d: dict[str, Any]) -> str:
    k = d["k"]
    lines = [f"| stage | pass@1 | pass@{k} | " + " | ".join(f"Pcov({n})" for n in DEMO_COVERAGE_N) + " | mean turns | wall s |",
             "|---|---|---|" + "---|" * len(DEMO_COVERAGE_N) + "---|---|"]
    for name, s in d["stages"].items():
        cov = " | ".join(pct(s["coverage"][n]) for n in DEMO_COVERAGE_N)
        lines.append(f"| {name} | {_ci(s['pass_at_1'], s['pass_at_1_ci95'])} | {_ci(s['pass_at_k'], s['pass_at_k_ci95'])} "
                     f"| {cov} | {s['mean_turns']:.2f} | {s['wall_s']:.0f} |")
    lines += ["", f"| paired difference (same tasks) | pass@1 | pass@{k} |", "|---|---|---|"]
    for c in d["comparisons"]:
        cells = [with_interval(c[key]["diff"], *c[key]["ci95"]) for key in ("pass_at_1", f"pass_at_{k}")]
        lines.append(f"| {c['b']} − {c['a']} | {cells[0]} | {cells[1]} |")
    lines += ["", f"Produced by `{d['command']}` (seed {d['seed']}): {d['tasks']} held-out tasks × {k} samples at "
                  "temperature 1; percentages, 95% intervals across tasks."]
    return "\n".join(lines)


def render_study(d: dict[str, Any]) -> str:
    lines = ["| section | claim | statistic | value [95% interval] | over | verdict |", "|---|---|---|---|---|---|"]
    for s in d["sections"].values():
        for i, c in enumerate(s["claims"]):
            title = s["title"] if i == 0 else ""
            value = with_interval(c["value"], *c["interval"], scale=1.0, digits=3)
            lines.append(f"| {title} | {cell(c['statement'])} | {cell(c['statistic'])} | {value} | {c['over']} | "
                         f"**{c['verdict']}** |")
    timing = d.get("timing") or f"in {d['wall_s'] / 60:.0f} minutes"
    lines += ["", f"Produced by `{d['command']}` (budget {d['budget']:g}; sections that compare seeds train with "
                  f"seeds 0–{d['seeds'] - 1}, and the column \"over\" says which intervals include them) {timing} "
                  f"on {d['machine']}. Rates are fractions (0.05 = 5 points)."
                  + (f" Its {d['verdicts_note']}." if d.get("verdicts_note") else "")]
    return "\n".join(lines)


def render_real_model(d: dict[str, Any]) -> str:
    """The real-model preset's report: the demo's tables, then success by attempt per stage."""
    attempts = max(len(s["success_by_turn"]) for s in d["stages"].values())
    lines = [render_demo(d), "", "| stage | " + " | ".join(f"solved within {t} attempt{'s' * (t > 1)}"
                                                         for t in range(1, attempts + 1)) + " |",
             "|---|" + "---|" * attempts]
    for name, s in d["stages"].items():
        by = list(s["success_by_turn"].values())
        lines.append(f"| {name} | " + " | ".join(pct(v) for v in by) + " |")
    lines += ["", f"![pass@k by stage](docs/figures/{REAL_MODEL_PLOT})"]
    return "\n".join(lines)


RENDER = {"demo": render_demo, "study": render_study, "bench": render_bench, "smollm2": render_real_model}
REAL_MODEL_PLOT = "smollm2_pass_at_k.png"


def _region(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- figures:{name} -->\n)(.*?)(<!-- /figures:{name} -->)", re.S)


def rendered_readme(readme: str) -> str:
    """README text with every figures region rendered from docs/figures."""
    for name, render in RENDER.items():
        pattern = _region(name)
        if not pattern.search(readme) and not (FIGURES / f"{name}.json").exists():
            continue  # a figure not produced yet (no summary) and not quoted
        if not pattern.search(readme):
            raise ValueError(f"README.md has no figures region {name!r} (<!-- figures:{name} --> ... "
                             f"<!-- /figures:{name} -->).")
        body = render(json.loads((FIGURES / f"{name}.json").read_text())) + "\n"
        readme = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(3), readme)
    return readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", help="an `interplay demo` output directory (its report.json)")
    parser.add_argument("--demo-command", default="interplay demo")
    parser.add_argument("--study", help="an `interplay study` output directory (its study.json)")
    parser.add_argument("--study-command", default="make study")
    parser.add_argument("--study-timing", help="how long the study took, in words (default: its report's wall time)")
    parser.add_argument("--reverdict", action="store_true",
                        help="re-derive docs/figures/study.json's (and study.md's) verdicts under the current rule")
    parser.add_argument("--smollm2", metavar="DIR", help="the smollm2-math preset's pipeline output (report.json)")
    parser.add_argument("--bench", nargs="+", metavar="DIR", help="`interplay bench` output directories (bench.json)")
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md differs from docs/figures")
    args = parser.parse_args(argv)
    FIGURES.mkdir(parents=True, exist_ok=True)
    if args.demo:
        report = json.loads((Path(args.demo) / "report.json").read_text())
        (FIGURES / "demo.json").write_text(json.dumps(demo_summary(report, args.demo_command), indent=1) + "\n")
    if args.study:
        study = json.loads((Path(args.study) / "study.json").read_text())
        (FIGURES / "study.json").write_text(json.dumps(study_summary(study, args.study_command, args.study_timing), indent=1) + "\n")
        (FIGURES / "study.md").write_text((Path(args.study) / "study.md").read_text())  # the whole report
    if args.reverdict:
        summary, report_md, changes = reverdict(json.loads((FIGURES / "study.json").read_text()),
                                                (FIGURES / "study.md").read_text())
        (FIGURES / "study.json").write_text(json.dumps(summary, indent=1) + "\n")
        (FIGURES / "study.md").write_text(report_md)
        print("\n".join(changes) or "no verdict changed")
    if args.smollm2:
        report = json.loads((Path(args.smollm2) / "report.json").read_text())
        summary = demo_summary(report, "OMP_NUM_THREADS=1 interplay pipeline --preset smollm2-math --out runs/smollm2-math")
        (FIGURES / "smollm2.json").write_text(json.dumps(summary, indent=1) + "\n")
        shutil.copyfile(Path(args.smollm2) / "pass_at_k.png", FIGURES / REAL_MODEL_PLOT)
    if args.bench:
        reports = [json.loads((Path(d) / "bench.json").read_text()) for d in args.bench]
        commands = [f"OMP_NUM_THREADS=1 interplay bench {r['model']} --episodes {r['episodes']}" for r in reports]
        (FIGURES / "bench.json").write_text(json.dumps(bench_summary(reports, commands), indent=1) + "\n")
    text = README.read_text()
    new = rendered_readme(text)
    if args.check:
        if new != text:
            print("README.md's figures differ from docs/figures: run python tools/readme_figures.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    print(f"README.md figures regenerated from {', '.join(sorted(RENDER))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
