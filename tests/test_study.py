"""interplay study: the statistics and verdict rule, and the smallest budget end to end."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from interplay.cli import main
from interplay.study import LONGEST_FIRST, SECTIONS, run_study
from interplay.study.core import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOTHING_VARIED,
    REPRODUCED,
    SMALLEST,
    VERDICTS,
    Budget,
    claim,
    ranking_edge,
    ranks,
    spearman,
    two_way_interval,
    verdict,
)


def test_verdict_rule() -> None:
    """The rule on hand-made intervals: reproduced and not reproduced can both happen, against the margin."""
    nan = float("nan")
    # Above 0 with the value at or above the margin: reproduced.
    assert verdict(0.17, 0.03, 0.31, margin=0.10) == REPRODUCED
    assert verdict(0.10, 0.01, 0.20, margin=0.10) == REPRODUCED  # at the margin counts
    assert verdict(0.1, 0.01, 0.2) == REPRODUCED  # margin 0: the interval above 0 is enough
    # Above 0, value below the margin, interval reaching past it: an effect, maybe too small to count.
    assert verdict(0.06, 0.01, 0.12, margin=0.10) == INCONCLUSIVE
    # Wholly below the margin: no effect that counts, even though it is above 0.
    assert verdict(0.04, 0.01, 0.08, margin=0.10) == NOT_REPRODUCED
    assert verdict(0.01, -0.1, 0.02, margin=0.05) == NOT_REPRODUCED
    # Below 0: the opposite effect.
    assert verdict(-0.1, -0.3, -0.01) == NOT_REPRODUCED
    assert verdict(-0.1, -0.3, -0.01, margin=0.05) == NOT_REPRODUCED
    # Straddling 0 and the margin: inconclusive.
    assert verdict(0.05, -0.1, 0.2, margin=0.05) == INCONCLUSIVE
    assert verdict(0.05, -0.1, 0.2) == INCONCLUSIVE
    # Exactly [0, 0]: the arms never differed, which says nothing about the claim either way.
    assert verdict(0.0, 0.0, 0.0, margin=0.02) == NOTHING_VARIED
    assert verdict(0.0, 0.0, 0.0) == NOTHING_VARIED
    assert verdict(0.0, 0.0, 0.07, margin=0.02) == INCONCLUSIVE  # something varied, the value did not move
    assert verdict(0.5, 0.5, 0.5, margin=0.1) == REPRODUCED  # zero width away from 0: every task moved alike
    # NaN anywhere: inconclusive.
    assert verdict(0.1, nan, 0.2) == INCONCLUSIVE
    assert verdict(nan, 0.1, 0.2) == INCONCLUSIVE
    assert verdict(0.0, 0.0, nan, margin=0.1) == INCONCLUSIVE
    assert set(VERDICTS) == {REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOTHING_VARIED}
    c = claim("x", "a claim", "a - b", 0.1, (0.05, 0.15), "tasks")
    assert c.verdict == REPRODUCED and c.interval == (0.05, 0.15)
    assert claim("x", "a claim", "a - b", 0.03, (0.01, 0.05), "tasks", margin=0.1).verdict == NOT_REPRODUCED


def test_ranks_and_spearman() -> None:
    assert ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [5, 5, 5]) == 0.0
    # Pearson on ranks with ties: x ranks 1,2,3,4; y ranks 1.5,1.5,3,4.
    rx, ry = np.array([1, 2, 3, 4.0]), np.array([1.5, 1.5, 3, 4])
    assert spearman([1, 2, 3, 4], [7, 7, 8, 9]) == pytest.approx(np.corrcoef(rx, ry)[0, 1])


def test_ranking_edge_compares_predictors_where_they_disagree() -> None:
    target = [1, 2, 3, 4]
    assert ranking_edge([1, 2, 3, 4], [5, 6, 7, 8], target) == 0.0  # the same order: they never disagree
    # x is right everywhere; y swaps the first two: one pair in dispute, x wins it.
    assert ranking_edge([1, 2, 3, 4], [2, 1, 3, 4], target) == 1.0
    assert ranking_edge([2, 1, 3, 4], [1, 2, 3, 4], target) == -1.0
    # y ties the pair x orders right: half a win. Pairs whose target ties do not count.
    assert ranking_edge([1, 2, 3, 4], [1, 1, 3, 4], target) == 0.5
    assert ranking_edge([1, 2, 3], [2, 1, 3], [5, 5, 6]) == 0.0 and ranking_edge([1, 2, 3], [2, 1, 3], [5, 6, 7]) == 1
    # Both near-perfect rank correlations, yet a full edge where they differ.
    x, y = np.arange(20.0), np.arange(20.0)
    y[[3, 4]] = y[[4, 3]]
    assert spearman(y, np.arange(20)) > 0.99 and ranking_edge(x, y, np.arange(20)) == 1.0


def test_two_way_interval() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0.3, 1.0, size=(3, 200))
    value, low, high = two_way_interval(values)
    assert value == pytest.approx(values.mean()) and low < value < high
    assert 0.05 < high - low < 0.6
    one = two_way_interval(values[0])  # one seed: tasks only, about ±1.96/√200
    assert one[2] - one[1] == pytest.approx(2 * 1.96 * values[0].std() / math.sqrt(200), rel=0.2)
    assert two_way_interval(values) == (value, low, high)  # seeded: the same interval every time
    assert two_way_interval(np.zeros((2, 5))) == (0.0, 0.0, 0.0)


def test_budget() -> None:
    assert Budget(1.0).steps(150) == 150 and Budget(0.02).steps(150) == 3 and Budget(0.001).steps(150) == 2
    assert Budget(1.0).tasks(100) == 100 and SMALLEST.tasks(100) == 8
    assert [Budget(s).seeds for s in (0.02, 1.0, 8.0)] == [2, 3, 5]
    assert Budget(1.0).batch(64) == 64 and SMALLEST.batch(64) == 16
    with pytest.raises(ValueError, match="budget must be a positive number"):
        Budget(0)


def test_workers_start_every_section_in_one_order() -> None:
    assert sorted(LONGEST_FIRST) == sorted(SECTIONS)


def test_unknown_section_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="choose from horizon, coverage, exploration, feedback"):
        run_study(tmp_path, SMALLEST, sections=["horizons"])
    assert main(["study", "--out", str(tmp_path), "--budget", "-1"]) == 2


def test_a_study_directory_of_another_budget_is_refused(tmp_path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"budget": 0.02}))
    with pytest.raises(ValueError, match=r"holds a study at budget 0.02, not a study at budget 1 .*another --out"):
        run_study(tmp_path, Budget(1.0), sections=["horizon"], log=lambda _: None)


def test_smallest_study_end_to_end(tmp_path) -> None:
    """Every section runs at the smallest budget and the report has each section, claim and verdict."""
    started = time.perf_counter()
    result = run_study(tmp_path, SMALLEST, workers=2, log=lambda _: None)
    assert list(result["sections"]) == list(SECTIONS)
    md = (tmp_path / "study.md").read_text()
    data = json.loads((tmp_path / "study.json").read_text())
    assert md.count("**Verdict: ") == len(SECTIONS)
    for key, section in result["sections"].items():
        assert section.claims and section.verdict in VERDICTS
        assert f"## {section.title}" in md and data["sections"][key]["verdict"] == section.verdict
        for c in section.claims:
            low, high = c.interval
            assert c.verdict in VERDICTS and c.over and c.statistic
            # A NaN interval (too little data to bound the statistic) must read inconclusive.
            assert math.isfinite(c.value), (key, c)
            assert (math.isfinite(low) and low <= high) or c.verdict == INCONCLUSIVE, (key, c)
            assert c.statement in md
        assert section.setup and section.tables and section.figures
        assert section.compute_s > 0  # its jobs' recorded run times
        # Manipulation checks: the GRPO arms' reward spread, distinct outcomes and starting entropy (horizon has none).
        assert section.checks and data["sections"][key]["checks"] == section.checks
        wanted = {"expert_turns", "final_loss"} if key == "horizon" else {"reward_spread", "distinct_outcomes",
                                                                         "start_entropy"}
        for row in section.checks.values():
            assert wanted <= set(row) and all(math.isfinite(row[k]) for k in wanted), (key, row)
            assert 0 <= row.get("reward_spread", 0) <= 1
    assert md.count("Manipulation check (") == len(SECTIONS)
    first = time.perf_counter() - started
    # A rerun reads every section back from disk.
    started = time.perf_counter()
    again = run_study(tmp_path, SMALLEST, log=lambda _: None)
    assert time.perf_counter() - started < max(5.0, first / 10)
    assert {k: s.verdict for k, s in again["sections"].items()} == {k: s.verdict for k, s in result["sections"].items()}
