"""The imitation → RL → exploration pipeline: one command that tells the whole story on one environment.

Stages, each from the previous checkpoint, all evaluated on the same held-out tasks (EVAL seeds):

1. ``untrained``: the starting model as it is.
2. ``sft``: imitation, SFT on expert episodes (``interplay.training.imitation``).
3. ``grpo``: multi-turn GRPO from the SFT checkpoint (``interplay.training.grpo``).
4. ``grpo_explore``: GRPO + an exploration shaper, from the SAME SFT checkpoint, at the SAME budget
   (steps, episodes per step, learning rate, training tasks), so the two RL stages differ only by it.

Each checkpoint plays every held-out task ``k`` times (sampling at temperature 1): pass@1 and the
unbiased pass@k with 95% intervals across tasks, success by turn (by attempt in feedback games), mean
turns, and the coverage profile Pcov(N) against the expert (``interplay.evaluation.evaluate``).
Stage-to-stage differences get paired intervals (``interplay.metrics.compare_pass_at_k``).
Every stage plays one task (the preset's env id and kwargs, its turn limit included); report.json's
``task`` names it and the turn limits the episodes were held to, read from their manifests.

A run is a study-like run on the experiment layer's cached job runner (``interplay.experiments``): every
stage is a named job (``interplay.pipeline.stages``), TRL's configs are built from the library's defaults,
and the report's cells, tables and manipulation checks (for the GRPO stages, from their trainers' logs: the
share of groups with any reward spread, distinct outcomes per group, the starting policy's entropy) are the
study's. The output directory holds ``pipeline.json`` (the preset and model it was made with: a rerun with
others is refused), ``report.md``, ``report.json``, PNG plots, and per stage ``<name>_episodes.html`` (its
evaluation episodes, ``interplay.viewer``), ``stages/<name>/`` (``result.json``, ``episodes.jsonl`` + a
``DONE`` marker; ``train_log.jsonl``, every log entry of the stage's trainer; ``messages.log``, the
libraries' warnings and messages) and ``checkpoints/<name>/``. The terminal gets a line per stage event and
progress bars only. A rerun skips finished stages and resumes an interrupted training from its last saved TRL
checkpoint.

Seeds and studies: ``Preset.seed`` drives everything random in a run (``seeded_configs``), and
``with_overrides`` replaces the seed, steps, learning rates and exploration of a preset (the CLI's
``--seed``, ``--sft-steps``, ``--grpo-steps``, ``--sft-lr``, ``--grpo-lr``, ``--exploration``).
``run_seeds`` (``--seeds N``) makes N independent runs in ``seed_<S>/`` sub-directories and writes a
report with every figure's mean and 95% interval over seeds beside each seed's intervals over tasks.

Usage::

    result = run_pipeline("codebreaker", "runs/demo")      # or: interplay pipeline --preset codebreaker --out DIR
    print(result["report_md"])
    run_seeds(with_overrides(get_preset("maze"), grpo_steps=40), "runs/maze-seeds", seeds=3)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interplay.experiments import check_manifest
from interplay.pipeline.presets import OVERRIDES, PRESETS, Preset, get_preset, seeded_configs, with_overrides
from interplay.pipeline.report import REPORT_COVERAGE_N, comparisons, render_report, write_report
from interplay.pipeline.seeds import aggregate_seeds, render_seeds_report, run_seeds
from interplay.pipeline.stages import (
    STAGES,
    evaluate_checkpoint,
    run_stage,
    task_line,
    task_report,
    turn_limits,
)


def _describe(manifest: dict[str, Any]) -> str:
    preset = manifest["preset"]
    return (f"a pipeline run of preset {preset['name']!r} with model {manifest['model']!r} and seed "
            f"{preset.get('seed', 0)}")


def run_pipeline(preset: str | Preset, out: str | Path, model: str | None = None, progress: bool = True,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) every stage of ``preset`` into ``out`` and write the report there.

    Returns report.json's content plus ``report_md`` (the path of report.md) and ``wall_s`` (this call).
    """
    started = time.perf_counter()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    model = model or preset.model
    out = Path(out)
    seeded_configs(preset)  # the seed's training tasks fit: fail before anything is written
    check_manifest(out, {"preset": dataclasses.asdict(preset), "model": model}, _describe, "pipeline.json")
    log(f"interplay pipeline: preset {preset.name!r} on {preset.env} with model {model!r} -> {out} "
        f"(full logs: {out / 'stages'}/<stage>/)")
    stages = {stage: run_stage(preset, stage, out, model, progress=progress, log=log) for stage in STAGES}
    report = write_report(out, preset, model, stages)
    return {**report, "report_md": str(out / "report.md"), "wall_s": time.perf_counter() - started}


__all__ = ["OVERRIDES", "PRESETS", "REPORT_COVERAGE_N", "STAGES", "Preset", "aggregate_seeds", "comparisons",
           "evaluate_checkpoint", "get_preset", "render_report", "render_seeds_report", "run_pipeline", "run_seeds",
           "run_stage", "seeded_configs", "task_line", "task_report", "turn_limits", "with_overrides", "write_report"]
