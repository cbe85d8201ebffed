"""The experiment layer: the cached job runner, its manifest check, and the report's cells and tables."""

from __future__ import annotations

import json
import math

import pytest

from interplay.experiments import (
    Jobs,
    check_manifest,
    checks_table,
    diff_cell,
    grpo_checks,
    mean_checks,
    pct,
    pct_interval,
    seed_cell,
    seed_interval,
    table,
    trl_args,
    with_interval,
)


def test_a_job_runs_once_keeps_its_result_marker_and_log_and_is_redone_under_another_key(tmp_path):
    jobs, calls = Jobs(tmp_path), []

    def compute(folder):
        calls.append(folder)
        (folder / "extra.txt").write_text("made by the job")
        return {"value": len(calls)}

    assert not jobs.done("a/b") and jobs.run("a/b", compute) == {"value": 1}
    folder = tmp_path / "a" / "b"
    assert calls == [folder] and {p.name for p in folder.iterdir()} >= {"DONE", "result.json", "messages.log"}
    assert jobs.done("a/b") and jobs.run("a/b", compute) == {"value": 1} and len(calls) == 1  # resumed: not rerun
    assert jobs.seconds("a/b") >= 0
    # A job whose result is missing (interrupted before it was written) runs again.
    (folder / "result.json").unlink()
    assert jobs.run("a/b", compute) == {"value": 2}
    # Under a key: the same key reads back, another redoes the job.
    assert jobs.run("k", compute, key={"episodes": 2}) == {"value": 3}
    assert jobs.run("k", compute, key={"episodes": 2}) == {"value": 3}
    assert jobs.run("k", compute, key={"episodes": 3}) == {"value": 4} and jobs.done("k", key={"episodes": 3})
    # Markers written before the runner (plain text) still count as done when no key is asked for.
    (folder / "DONE").write_text("2024-01-01 00:00:00\n")
    assert jobs.done("a/b") and not jobs.done("a/b", key=1)


def test_a_directory_made_by_another_config_is_refused(tmp_path):
    def describe(m):
        return f"a run of {m['name']!r}"

    check_manifest(tmp_path / "run", {"name": "x", "sizes": (1, 2)}, describe)
    check_manifest(tmp_path / "run", {"name": "x", "sizes": [1, 2]}, describe)  # the same, as it reads back
    assert json.loads((tmp_path / "run" / "run.json").read_text()) == {"name": "x", "sizes": [1, 2]}
    with pytest.raises(ValueError, match=r"holds a run of 'x', not a run of 'y' .*another --out"):
        check_manifest(tmp_path / "run", {"name": "y", "sizes": [1, 2]}, describe)


def test_trl_args_are_the_library_defaults_with_overrides():
    from interplay.training.grpo import GRPO_DEFAULTS
    from interplay.training.imitation import SFT_DEFAULTS

    grpo = trl_args("grpo", max_steps=3)
    assert grpo["max_steps"] == 3 and grpo["num_generations"] == GRPO_DEFAULTS["num_generations"]
    assert trl_args("sft")["learning_rate"] == SFT_DEFAULTS["learning_rate"] and "bf16" in grpo
    with pytest.raises(ValueError, match="unknown training kind 'ppo'"):
        trl_args("ppo")


def test_cells_intervals_and_tables():
    nan = float("nan")
    assert (pct(0.276), pct(None), pct(nan), pct(1.0, digits=0)) == ("27.6", "–", "–", "100")
    assert pct_interval(0.276, 0.231, 0.321) == "27.6 [23.1, 32.1]" and pct_interval(0.5, None, None) == "50.0"
    assert pct_interval(0.5) == "50.0"
    assert with_interval(0.025, -0.005, 0.055) == "+2.5 [-0.5, +5.5]"
    assert diff_cell(0.025, [-0.005, 0.055]) == "+2.5 [-0.5, +5.5]"
    assert diff_cell(0.042, [0.011, 0.072]) == "+4.2 [+1.1, +7.2] *" and diff_cell(0.01, None) == "+1.0"
    one, two = seed_interval([0.2]), seed_interval([0.2, 0.4])
    assert one["ci95_over_seeds"] is None and seed_cell(one) == "20.0"
    low, high = two["ci95_over_seeds"]
    assert two["mean"] == pytest.approx(0.3) and low < 0.3 < high and two["values"] == [0.2, 0.4]
    assert table(["a", "b"], [[1, "x"]]) == ["| a | b |", "|---|---|", "| 1 | x |"]


def test_grpo_checks_from_a_trainer_log_and_their_table():
    log = [{"entropy": 1.5, "episode/distinct_outcomes_per_group": 2.0, "episode/frac_groups_reward_spread": 0.5},
           {"entropy": 1.0, "episode/distinct_outcomes_per_group": 4.0, "episode/frac_groups_reward_spread": 0.25}]
    checks = grpo_checks(log)
    assert checks == {"reward_spread": 0.375, "distinct_outcomes": 3.0, "start_entropy": 1.5}
    assert all(math.isnan(v) for v in grpo_checks([]).values())
    assert mean_checks([checks, checks])["runs"] == 2.0
    lines = checks_table({"grpo": checks}, "what they measure", label="stage")
    assert lines[2].startswith("| stage | GRPO groups with any reward spread (%) |")
    assert "| grpo | 37.5 | 3.00 | 1.50 |" in lines and "what they measure" in lines
    assert checks_table({}) == []


def test_the_library_never_imports_the_layers_above_it():
    """envs, agents, rollout, training, metrics, evaluation (and the rest of the library) sit below the experiment
    layer and what runs on it: none of their modules imports ``interplay.experiments``, the pipeline, the study
    or the bench."""
    import re
    from pathlib import Path

    import interplay

    root = Path(interplay.__file__).parent
    above = ("experiments", "pipeline", "study", "bench", "cli")
    pattern = re.compile(rf"^\s*(from|import)\s+interplay\.({'|'.join(above)})\b", re.M)
    library = [p for p in root.rglob("*.py") if p.relative_to(root).parts[0].removesuffix(".py") not in above]
    assert len(library) > 20
    offenders = [str(p.relative_to(root)) for p in library if pattern.search(p.read_text())]
    assert offenders == [], offenders


def test_a_directory_with_files_but_no_manifest_is_refused(tmp_path):
    (tmp_path / "section.json").write_text("{}")  # what an older version left
    with pytest.raises(ValueError, match="holds files but no run.json.*another --out"):
        check_manifest(tmp_path, {"budget": 1.0}, lambda m: "a study")
    check_manifest(tmp_path / "fresh", {"budget": 1.0}, lambda m: "a study")  # a new or empty directory is fine
    check_manifest(tmp_path / "fresh", {"budget": 1.0}, lambda m: "a study")


def test_compute_seconds_sum_every_finished_jobs_recorded_time(tmp_path):
    jobs = Jobs(tmp_path)
    for name, seconds in (("a", 2.5), ("a/inner", 1.0), ("b", 4.0)):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / name / "DONE").write_text(json.dumps({"seconds": seconds}))
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "DONE").write_text("2024-01-01 00:00:00\n")  # a marker that does not say: 0
    (tmp_path / "DONE").write_text(json.dumps({"seconds": 100.0}))  # the root's own marker is not a job below it
    assert jobs.compute_seconds() == 7.5
