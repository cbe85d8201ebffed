"""`interplay bench`: the versioned suite, its table and resumable runs."""

from __future__ import annotations

import json

import pytest

from interplay import bench, metrics
from interplay.agents import from_spec
from interplay.cli import main


def test_wilson_interval_is_never_of_zero_width_and_stays_in_0_1():
    none = metrics.proportion_interval(0, 16)
    assert none.low == 0 and 0.19 < none.high < 0.20  # the normal interval would claim [0, 0]
    half = metrics.proportion_interval(8, 16)
    assert half.mean == 0.5 and half.low == pytest.approx(1 - half.high) and half.low == pytest.approx(0.2800, abs=1e-4)
    assert metrics.proportion_interval(16, 16).high == 1 and metrics.proportion_interval(16, 16).low > 0.8
    with pytest.raises(ValueError, match="successes <= n"):
        metrics.proportion_interval(3, 2)


def test_suite_has_the_promised_coverage_and_unique_names():
    envs = [task.env for task in bench.SUITE]
    assert len(bench.SUITE) >= 12 and len(bench.TASKS) == len(bench.SUITE)
    assert sum("TextArena" in e for e in envs) >= 4 and sum("ReasoningGym" in e for e in envs) >= 3
    assert {task.env_kwargs.get("difficulty") for task in bench.SUITE if "MathFeedback" in task.env} == {1, 2, 3}
    with pytest.raises(ValueError, match="unknown bench task"):
        bench.select(["no-such-task"])


def test_expert_solves_the_tasks_with_experts_and_a_rerun_resumes(tmp_path):
    names = ["math-1", "codebreaker", "maze-3x3", "mastermind", "rg-chain-sum"]
    report = bench.run_bench(from_spec("expert"), tmp_path, episodes=3, tasks=names)
    assert [row["task"] for row in report["rows"]] == names
    for row in report["rows"]:
        assert row["success"] == 1.0 and row["episodes"] == 3 and row["invalid_rate"] == 0
        assert row["success_ci95"][0] > 0.2 and row["success_ci95"][1] == 1.0
    assert report["rows"][0]["success_by_attempt"]["1"] == 1.0  # feedback task: solved at the first attempt
    assert report["rows"][2]["success_by_attempt"] is None  # a maze has no attempts
    table = (tmp_path / "bench.md").read_text()
    assert "| math-1 | 100 [44, 100] |" in table and f"suite v{bench.SUITE_VERSION}" in table
    assert "interplay bench: expert" in (tmp_path / "episodes.html").read_text()
    # A rerun with the same settings reads every row back, wall time included; other settings replay.
    again = bench.run_bench(from_spec("expert"), tmp_path, episodes=3, tasks=names)
    assert again["rows"] == report["rows"]
    fewer = bench.run_bench(from_spec("expert"), tmp_path, episodes=2, tasks=names[:1])
    assert fewer["rows"][0]["episodes"] == 2


def test_cli_bench_with_a_model_on_a_reduced_suite(tmp_path, capsys):
    assert main(["bench", "tiny", "--episodes", "2", "--tasks", "math-1", "guess-the-number", "--max-new-tokens",
                 "8", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| math-1 |" in out and "| guess-the-number |" in out
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["model"] == "tiny" and report["sampling"]["max_new_tokens"] == 8
    games = report["rows"][1]
    assert games["max_turns"] == bench.GAME_TURNS and games["mean_turns"] <= bench.GAME_TURNS
    assert games["agent_tokens_per_episode"] > 0
