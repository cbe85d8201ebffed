"""Several seeds of one preset: independent runs in ``seed_<S>/`` and a report of every figure over seeds."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interplay.experiments import (
    GRPO_CHECKS_NOTE,
    checks_table,
    diff_cell,
    mean_checks,
    pct,
    pct_interval,
    seed_cell,
    seed_interval,
    table,
)
from interplay.pipeline.presets import Preset, get_preset, seeded_configs, with_overrides
from interplay.pipeline.report import GRPO_STAGES, REPORT_COVERAGE_N
from interplay.pipeline.stages import STAGES


def _stage_over_seeds(per_run: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    grid = [n for n in per_run[0]["coverage"] if all(r["coverage"].get(n) is not None for r in per_run)]
    return {
        "pass_at_1": seed_interval([r["pass_at_1"] for r in per_run]),
        "pass_at_k": seed_interval([r["pass_at_k"] for r in per_run]),
        "coverage": {n: seed_interval([r["coverage"][n] for r in per_run]) for n in grid},
        "mean_turns": seed_interval([r["mean_turns"] for r in per_run]),
        "per_seed": {str(seed): {"pass_at_1": r["pass_at_1"], "pass_at_1_ci95": r["pass_at_1_ci95"],
                                 "pass_at_k": r["pass_at_k"], "pass_at_k_ci95": r["pass_at_k_ci95"]}
                     for seed, r in zip(seeds, per_run)},
    }


def aggregate_seeds(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Figures of several runs (report.json contents by seed) with intervals over seeds.

    Per stage: pass@1, pass@k, Pcov(N) and mean turns as ``{"mean", "ci95_over_seeds", "values"}`` (values in
    seed order), and ``per_seed``: each run's pass@1 / pass@k with its interval over tasks. Per comparison
    (B − A): the paired difference's mean over seeds with its interval over seeds, and each seed's difference
    with its interval over tasks. Per GRPO stage: its manipulation checks averaged over seeds.
    """
    seeds = sorted(runs)
    stages = {stage: _stage_over_seeds([runs[seed]["stages"][stage] for seed in seeds], seeds) for stage in STAGES}
    compared = []
    for i, row in enumerate(runs[seeds[0]]["comparisons"]):
        rows = [runs[seed]["comparisons"][i] for seed in seeds]
        entry: dict[str, Any] = {"a": row["a"], "b": row["b"]}
        for key in (k for k in row if k.startswith("pass_at_")):
            entry[key] = {**seed_interval([r[key]["diff"] for r in rows]),
                          "per_seed": {str(seed): r[key] for seed, r in zip(seeds, rows)}}
        compared.append(entry)
    checks = {stage: mean_checks([runs[seed]["checks"][stage] for seed in seeds])
              for stage in GRPO_STAGES if all(stage in runs[seed].get("checks", {}) for seed in seeds)}
    return {"seeds": seeds, "stages": stages, "comparisons": compared, "checks": checks}


def render_seeds_report(preset: Preset, model: str, aggregated: dict[str, Any], k: int) -> str:
    """report.md of a multi-seed run: figures over seeds, each seed's with its task intervals, paired
    differences over seeds, manipulation checks, and links to each seed's own report."""
    seeds, stages = aggregated["seeds"], aggregated["stages"]
    results = [[name, seed_cell(s["pass_at_1"]), seed_cell(s["pass_at_k"]),
                *(pct(s["coverage"][n]["mean"]) if n in s["coverage"] else "–" for n in REPORT_COVERAGE_N),
                f"{s['mean_turns']['mean']:.2f}"] for name, s in stages.items()]
    per_seed = [[name, *(f"{pct_interval(r['pass_at_1'], *r['pass_at_1_ci95'])} | "
                         f"{pct_interval(r['pass_at_k'], *r['pass_at_k_ci95'])}"
                         for r in (s["per_seed"][str(seed)] for seed in seeds))] for name, s in stages.items()]
    diffs = [[f"{row['b']} − {row['a']}", *(diff_cell(row[f"pass_at_{kk}"]["mean"],
                                                      row[f"pass_at_{kk}"]["ci95_over_seeds"]) for kk in (1, k))]
             for row in aggregated["comparisons"]]
    lines = [
        f"# interplay pipeline report: {preset.env}, {len(seeds)} seeds",
        "",
        f"Preset `{preset.name}` ({preset.description}); model `{model}`; seeds {seeds[0]}..{seeds[-1]}, each an "
        "independent run (its own training tasks, data order and sampling) evaluated on the same held-out tasks. "
        "Numbers are percentages; brackets in the first tables are 95% intervals over seeds (Student's t), in the "
        "per-seed table 95% intervals over tasks.",
        "",
        "## Results over seeds",
        "",
        *table(["stage", "pass@1", f"pass@{k}", *(f"Pcov({n})" for n in REPORT_COVERAGE_N), "mean turns"], results),
        "", "Pcov and mean turns: means over seeds (report.json has their intervals).", "",
        "## Per seed (intervals over tasks)", "",
        "| stage | " + " | ".join(f"seed {seed} pass@1 | seed {seed} pass@{k}" for seed in seeds) + " |",
        "|---|" + "---|---|" * len(seeds),
        *("| " + " | ".join(row) + " |" for row in per_seed),
        "", "## Paired differences over seeds", "",
        *table(["comparison", "Δ pass@1", f"Δ pass@{k}"], diffs),
        "", "`*`: the interval over seeds excludes 0. Each seed's paired difference over tasks is in "
        "report.json (`comparisons[].pass_at_*.per_seed`) and in its own report.", "",
    ]
    if aggregated.get("checks"):
        lines += ["## Manipulation checks", "", *checks_table(aggregated["checks"], GRPO_CHECKS_NOTE, label="stage")]
    lines += ["Each seed's report: " + ", ".join(f"[seed {seed}](seed_{seed}/report.md)" for seed in seeds), ""]
    return "\n".join(lines)


def run_seeds(preset: str | Preset, out: str | Path, seeds: int, model: str | None = None, progress: bool = True,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """``seeds`` independent runs of ``preset`` with seeds ``preset.seed`` .. ``preset.seed + seeds - 1``,
    each in ``out/seed_<S>/`` (a full ``run_pipeline`` directory, resumable), then ``out/report.md`` and
    ``out/report.json`` with every figure over seeds (``aggregate_seeds``).

    Returns report.json's content plus ``report_md`` and ``wall_s``.
    """
    from interplay.pipeline import run_pipeline

    started = time.perf_counter()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be an integer >= 1, got {seeds!r}.")
    model = model or preset.model
    out = Path(out)
    variants = [with_overrides(preset, seed=preset.seed + i) for i in range(seeds)]
    for variant in variants:
        seeded_configs(variant)  # every seed's training tasks fit, checked before the first run starts
    runs: dict[int, dict[str, Any]] = {}
    for i, variant in enumerate(variants, start=1):
        log(f"interplay pipeline: seed {variant.seed} ({i}/{seeds})")
        runs[variant.seed] = run_pipeline(variant, out / f"seed_{variant.seed}", model=model, progress=progress,
                                          log=log)
    aggregated = aggregate_seeds(runs)
    report = {"env": preset.env, "preset": preset.name, "model": model, "k": preset.k,
              "preset_config": dataclasses.asdict(preset), **aggregated,
              "runs": {str(seed): f"seed_{seed}/report.json" for seed in runs}}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(render_seeds_report(preset, model, aggregated, preset.k))
    return {**report, "report_md": str(out / "report.md"), "wall_s": time.perf_counter() - started}
