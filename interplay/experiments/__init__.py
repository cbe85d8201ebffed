"""The experiment layer: what the pipeline (``interplay.pipeline``), the study (``interplay.study``) and the
bench (``interplay.bench``) share, on top of the library (which never imports it).

- ``jobs``: the cached job runner (named jobs, ``DONE`` markers, per-job logs, resume, a manifest that
  refuses a directory made by another config) and the one place TRL configs are built from the defaults.
- ``report``: percent cells, intervals, paired differences, figures over seeds, Markdown tables.
- ``checks``: the manipulation checks of GRPO trainings, read from their logs.
"""

from interplay.experiments.checks import CHECKS, GRPO_CHECKS_NOTE, checks_table, grpo_checks, mean_checks
from interplay.experiments.jobs import Jobs, check_manifest, train, trl_args
from interplay.experiments.report import (
    cell,
    diff_cell,
    pct,
    pct_interval,
    seed_cell,
    seed_interval,
    signed,
    table,
    with_interval,
)

__all__ = ["CHECKS", "GRPO_CHECKS_NOTE", "Jobs", "cell", "check_manifest", "checks_table", "diff_cell", "grpo_checks",
           "mean_checks", "pct", "pct_interval", "seed_cell", "seed_interval", "signed", "table",
           "train", "trl_args", "with_interval"]
