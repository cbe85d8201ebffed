"""``interplay study``: four findings about multi-turn training, measured with seeds, each ending in a verdict.

Sections (one module each, ``run(lab) -> Section``):

- ``horizon``: imitation against the horizon (maze size): success, per-step error on the expert's own
  states, the success compounding errors predict, DAgger, the privileged expert against the observation-only one.
- ``coverage``: SFT checkpoints along training: does the coverage profile predict pass@N and what GRPO
  reaches better than the held-out loss does (the Coverage Principle)?
- ``exploration``: where the starting model rarely succeeds, GRPO against each exploration method at equal
  sampled episodes, pass@k to 64, over seeds.
- ``feedback``: training with the rule teacher against a no-information teacher and single-turn training:
  success by attempt, in-context plasticity, on held-out tasks and an environment not trained on.

Each claim gets a statistic that is positive when the finding holds, a 95% interval (over seeds and tasks
where the section has seeds) and a verdict (``core.verdict``, symmetric in the claim's margin): reproduced,
not reproduced, inconclusive: nothing varied (the arms never differed), or inconclusive at this budget; each
section records manipulation checks (``Section.checks``: for GRPO arms the share of groups with any reward
spread, distinct outcomes per group, the starting policy's entropy). ``run_study`` writes ``study.md`` and
``study.json``; every section, training and evaluation is a cached job of the experiment layer
(``interplay.experiments.Jobs``) in the section's folder, so a rerun resumes, and an output directory made at
another budget is refused (its ``run.json``).

Usage::

    run_study("runs/study")                          # or: interplay study --out runs/study
    run_study("runs/study-gpu", budget=Budget(8.0))  # --budget 8
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from interplay.experiments import Jobs, check_manifest
from interplay.study.core import SMALLEST, VERDICTS, Budget, Claim, Lab, Section

#: Section keys in report order, and the module that runs each.
SECTIONS = ("horizon", "coverage", "exploration", "feedback")
#: The order workers start them: longest first, so that two workers end together (compute at budget 1:
#: exploration 71, horizon 44, coverage 15, feedback 11 minutes, measured on 2 CPU cores).
LONGEST_FIRST = ("exploration", "horizon", "coverage", "feedback")


def run_section(key: str, out: str | Path, budget: Budget, log: Callable[[str], None] = print) -> Section:
    """Run one section, the job ``<out>/<key>/`` whose folder is its :class:`Lab`'s (or read it back when done)."""
    import importlib

    if key not in SECTIONS:
        raise ValueError(f"unknown study section {key!r}; choose from {', '.join(SECTIONS)}.")
    jobs = Jobs(out)
    if jobs.done(key):
        return Section.from_json(jobs.result(key))

    def compute(folder: Path) -> dict[str, Any]:
        started = time.perf_counter()
        lab = Lab(folder, budget, log=lambda message: log(f"[{key}] {message}"))
        section = importlib.import_module(f"interplay.study.{key}").run(lab)
        section.wall_s = time.perf_counter() - started
        section.compute_s = lab.jobs.compute_seconds()
        return section.to_json()

    section = Section.from_json(jobs.run(key, compute))
    log(f"[{key}] finished in {section.wall_s:.0f} s: {section.verdict}")
    return section


def _worker(key: str, out: str, scale: float) -> dict[str, Any]:
    """A worker process runs one section on one torch thread (two threads on a shared 2-core machine ran
    the tiny model 40-90x slower)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    return run_section(key, out, Budget(scale), log=lambda message: print(message, flush=True)).to_json()


DEFAULT_BUDGET = Budget()


def run_study(out: str | Path, budget: Budget = DEFAULT_BUDGET, sections: Sequence[str] = SECTIONS, workers: int = 1,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the study's ``sections`` (``workers`` processes run sections side by side) and write the report.

    Returns ``{"report_md": path, "report_json": path, "sections": {key: Section}}``.
    """
    unknown = [key for key in sections if key not in SECTIONS]
    if unknown or not sections:
        raise ValueError(f"unknown study section(s) {unknown}; choose from {', '.join(SECTIONS)}.")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}.")
    out = Path(out)
    check_manifest(out, {"budget": budget.scale}, lambda m: f"a study at budget {m['budget']:g}")
    started = time.perf_counter()
    log(f"interplay study: {', '.join(sections)} at budget {budget.scale:g} into {out} ({workers} worker(s))")
    if workers == 1:
        results = {key: run_section(key, out, budget, log) for key in sections}
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {key: pool.submit(_worker, key, str(out), budget.scale)
                       for key in sorted(sections, key=LONGEST_FIRST.index)}
            results = {key: Section.from_json(futures[key].result()) for key in sections}
    wall_s = time.perf_counter() - started
    return write_report(out, budget, results, wall_s)


def write_report(out: Path, budget: Budget, sections: dict[str, Section], wall_s: float) -> dict[str, Any]:
    from interplay.study.report import render

    header = {"budget": budget.scale, "seeds": budget.seeds, "wall_s": wall_s, "machine": _machine(),
              "command": f"interplay study --out {out} --budget {budget.scale:g}"}
    md, js = out / "study.md", out / "study.json"
    md.write_text(render(header, sections))
    js.write_text(json.dumps({**header, "sections": {k: s.to_json() for k, s in sections.items()}}, indent=1))
    return {"report_md": str(md), "report_json": str(js), "sections": sections, "wall_s": wall_s}


def _machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores, {device}, torch {torch.__version__}, Python {platform.python_version()}"


__all__ = ["SECTIONS", "SMALLEST", "VERDICTS", "Budget", "Claim", "Lab", "Section", "run_section", "run_study"]
