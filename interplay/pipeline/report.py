"""The pipeline's report: ``report.md`` (results, paired differences, manipulation checks, success by attempt,
timings, plots), ``report.json`` and the PNG plots, with cells and tables from ``interplay.experiments``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from interplay.experiments import (
    GRPO_CHECKS_NOTE,
    checks_table,
    diff_cell,
    grpo_checks,
    pct,
    pct_interval,
    table,
)
from interplay.pipeline.presets import Preset
from interplay.pipeline.stages import STAGES, task_line, task_report

#: Pcov(N) columns of the report table (the JSON has the whole grid).
REPORT_COVERAGE_N = ("2", "16", "256", "65536")
#: The stages compared pairwise (B − A on the same tasks), and the GRPO stages whose training is checked.
PAIRS = (("untrained", "sft"), ("sft", "grpo"), ("sft", "grpo_explore"), ("grpo", "grpo_explore"))
GRPO_STAGES = ("grpo", "grpo_explore")


def comparisons(stages: dict[str, dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Paired differences (B − A, same tasks) of pass@1 and pass@k with 95% intervals across tasks."""
    from interplay.metrics import compare_pass_at_k

    rows = []
    for a, b in ((a, b) for a, b in PAIRS if a in stages and b in stages):
        row: dict[str, Any] = {"a": a, "b": b}
        for kk in (1, k):
            diff = compare_pass_at_k(stages[a]["per_task_successes"], stages[b]["per_task_successes"], kk)
            row[f"pass_at_{kk}"] = {"diff": diff.mean, "ci95": [diff.low, diff.high]}
        rows.append(row)
    return rows


def checks(stages: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The manipulation checks of the GRPO stages, from their trainers' logs (``grpo_checks``)."""
    return {name: grpo_checks(stages[name]["log_history"]) for name in GRPO_STAGES if name in stages}


def exploration_line(preset: Preset) -> str:
    """What ``grpo_explore`` adds to ``grpo``, in words."""
    e = preset.exploration
    return (f"`grpo_explore` adds the exploration shaping `{'+'.join(e.methods)}` (weights {json.dumps(e.weights)}, "
            f"params {json.dumps(e.params)}; the library's defaults for the rest) to `grpo`; nothing else differs.")


def render_report(env: str, preset: Preset, model: str, stages: dict[str, dict[str, Any]]) -> str:
    """``report.md``: the results table, paired comparisons, manipulation checks, success by attempt, timings,
    plots."""
    sections = (_header(env, preset, model, stages), _results_table(stages, preset.k),
                _comparisons_table(stages, preset.k), _checks_section(stages), _success_by_attempt_table(stages),
                _wall_time_table(stages), _plots_section(stages))
    return "\n".join(line for section in sections for line in section)


def _header(env: str, preset: Preset, model: str, stages: dict[str, dict[str, Any]]) -> list[str]:
    first = stages[STAGES[0]]["eval"]
    return [
        f"# interplay pipeline report: {env}",
        "",
        f"Preset `{preset.name}` ({preset.description}); model `{model}`; seed {preset.seed}. Every checkpoint played "
        f"the same {first['n_tasks']} held-out tasks (seeds from {min(first['seeds'])}) {preset.k} times each, "
        "sampling at temperature 1. Numbers are percentages; brackets are 95% intervals across tasks.",
        "",
        task_line(task_report(preset, stages)),
        "",
        exploration_line(preset),
        "",
    ]


def _ci(value: float, interval: list[float | None] | None) -> str:
    return pct_interval(value, *(interval or ()))


def _results_table(stages: dict[str, dict[str, Any]], k: int) -> list[str]:
    """Per stage: pass@1, pass@k, the coverage profile at ``REPORT_COVERAGE_N``, mean turns, wall time."""
    header = ["stage", "pass@1", f"pass@{k}", *(f"Pcov({n})" for n in REPORT_COVERAGE_N), "mean turns", "wall s"]
    rows = [[name, _ci(s["pass_at_1"], s["pass_at_1_ci95"]), _ci(s["pass_at_k"], s["pass_at_k_ci95"]),
             *(pct(s["coverage"].get(n)) for n in REPORT_COVERAGE_N), f"{s['mean_turns']:.2f}", f"{s['wall_s']:.0f}"]
            for name, s in stages.items()]
    return ["## Results", "", *table(header, rows), "",
            "pass@1: chance that one sampled episode solves a task. pass@k: chance that at least one of k does "
            "(unbiased estimator). Pcov(N): share of the expert's episodes that the model finds at least N times "
            "less likely than the expert does (lower is better: the model covers the expert's behaviour).", ""]


def _comparisons_table(stages: dict[str, dict[str, Any]], k: int) -> list[str]:
    """Paired differences of pass@1 and pass@k between stages (``comparisons``), ``*`` where significant."""
    rows = [[f"{row['b']} − {row['a']}", *(diff_cell(row[f"pass_at_{kk}"]["diff"], row[f"pass_at_{kk}"]["ci95"])
                                          for kk in (1, k))] for row in comparisons(stages, k)]
    return ["## Paired differences (same tasks)", "", *table(["comparison", "Δ pass@1", f"Δ pass@{k}"], rows), "",
            "`*`: the interval excludes 0. Otherwise the difference is within noise at this task count.", ""]


def _checks_section(stages: dict[str, dict[str, Any]]) -> list[str]:
    found = checks(stages)
    return ["## Manipulation checks", "", *checks_table(found, GRPO_CHECKS_NOTE, label="stage")] if found else []


def _success_by_attempt_table(stages: dict[str, dict[str, Any]]) -> list[str]:
    """Per stage, the share of episodes solved within t turns, for every t any stage reached."""
    turns = sorted({int(t) for s in stages.values() for t in s["success_by_turn"]})
    rows = []
    for name, s in stages.items():
        by_turn = s["success_by_turn"]
        # Past a stage's longest episode its success stays what it was at the last turn it reached.
        rows.append([name, *(pct(by_turn.get(str(t), by_turn[max(by_turn, key=int)])) for t in turns)])
    return ["## Success by attempt", "", "Share of episodes solved within t turns (in a feedback game: within t "
            "attempts).", "", *table(["stage", *(f"t≤{t}" for t in turns)], rows), ""]


def _wall_time_table(stages: dict[str, dict[str, Any]]) -> list[str]:
    """Seconds per stage: training, evaluation, total; and the whole run."""
    rows = [[name, f"{s['train_s']:.0f}", f"{s['eval_s']:.0f}", f"{s['wall_s']:.0f}"] for name, s in stages.items()]
    rows.append(["all", "", "", f"{sum(s['wall_s'] for s in stages.values()):.0f}"])
    return ["## Wall time", "", *table(["stage", "train s", "eval s", "total s"], rows), ""]


def _plots_section(stages: dict[str, dict[str, Any]]) -> list[str]:
    """Links to the plots ``write_report`` draws and to each stage's page of evaluation episodes."""
    return [
        "## Plots",
        "",
        "![pass@k](pass_at_k.png) ![coverage](coverage.png) ![success by turn](success_by_turn.png)",
        "",
        "Training curves: " + ", ".join(f"[{n}](training_{n}.png)" for n in STAGES[1:] if n in stages),
        "",
        "Evaluation episodes, one page per stage (open in a browser): "
        + ", ".join(f"[{n}]({n}_episodes.html)" for n in stages),
        "",
    ]


def write_report(out: Path, preset: Preset, model: str, stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``report.md``, ``report.json`` and the PNG plots in ``out``; returns report.json's content."""
    from interplay.plots import plot_all, plot_training_curves

    report = {"env": preset.env, "preset": preset.name, "model": model, "k": preset.k, "seed": preset.seed,
              "task": task_report(preset, stages), "preset_config": dataclasses.asdict(preset), "stages": stages,
              "comparisons": comparisons(stages, preset.k), "checks": checks(stages)}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    plot_all({name: s["eval"] for name, s in stages.items()}, out)
    for name in STAGES[1:]:
        history = [e for e in stages[name]["log_history"] if "step" in e] if name in stages else []
        if history:
            plot_training_curves(history, out / f"training_{name}.png")
    (out / "report.md").write_text(render_report(preset.env, preset, model, stages))
    return report
