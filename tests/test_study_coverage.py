"""The coverage section: checkpoints of both SFT datasets at the smallest budget, and its pair count."""

from __future__ import annotations

import numpy as np

from interplay.study import run_section
from interplay.study.core import SMALLEST, VERDICTS
from interplay.study.coverage import DATASETS, disagreements


def test_disagreements_counts_pairs_the_predictors_order_differently() -> None:
    target = np.array([0.1, 0.5, 0.9])
    assert disagreements(target, 2 * target, target) == 0  # the same order
    assert disagreements(np.array([0.1, 0.9, 0.5]), target, target) == 1  # x swaps the last two
    assert disagreements(target, np.zeros(3), target) == 3  # y ties every pair
    assert disagreements(np.array([0.1, 0.9, 0.5]), target, np.array([0.1, 0.5, 0.5])) == 0  # the target ties there


def test_coverage_section_measures_checkpoints_of_both_datasets(tmp_path) -> None:
    section = run_section("coverage", tmp_path, SMALLEST, log=lambda _: None)
    checkpoints = section.figures["checkpoints"]
    # One checkpoint per dataset and seed at the smallest budget, each on the same held-out tasks.
    assert sorted((c["seed"], c["data"]) for c in checkpoints) == sorted(
        (seed, label) for seed in range(SMALLEST.seeds) for label in DATASETS)
    assert len(section.figures["ce"]) == len(checkpoints)
    assert (tmp_path / "coverage" / "seed0" / "sft-32tasks" / "DONE").exists()
    assert [c.name for c in section.claims] == ["coverage_predicts_pass_at_n", "coverage_predicts_rl_gain",
                                                "select_by_coverage"]
    assert all(c.verdict in VERDICTS for c in section.claims)
    table = "\n".join(section.tables)
    assert "| SFT data |" in table and "| 32 tasks |" in table
    assert set(section.checks) == {f"GRPO from SFT on {label}, step {checkpoints[0]['step']}" for label in DATASETS}
