"""The imitation -> RL -> exploration pipeline end to end on the "tiny-test" preset (real trainers, real model)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time

import pytest
from PIL import Image

from interplay.cli import main
from interplay.pipeline import PRESETS, STAGES, get_preset, run_pipeline

REPORT_HEADINGS = ("# interplay pipeline report", "## Results", "## Paired differences", "## Manipulation checks",
                   "## Success by attempt", "## Wall time", "## Plots")
STAGE_KEYS = ("pass_at_1", "pass_at_k", "k", "coverage", "mean_turns", "wall_s", "eval", "success_by_turn",
              "log_history")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    lines: list[str] = []
    terminal = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(terminal), contextlib.redirect_stderr(terminal):
        report = run_pipeline("tiny-test", out, progress=False, log=lines.append)
    return out, report, lines, time.perf_counter() - started, terminal.getvalue()


def test_tiny_test_preset_writes_every_section_of_the_report(first_run):
    out, report, lines, seconds, _ = first_run
    assert seconds < 120, f"the tiny-test preset must stay well under two minutes, took {seconds:.0f} s"
    assert [line.split(":")[0] for line in lines if line.startswith("[") and "finished" in line] == [
        f"[{i}/4] {stage}" for i, stage in enumerate(STAGES, start=1)]
    saved = json.loads((out / "report.json").read_text())
    assert saved["env"] == "interplay/CodeBreaker-v0" and saved["preset"] == "tiny-test"
    assert list(saved["stages"]) == list(STAGES)
    k = get_preset("tiny-test").k
    for stage, result in saved["stages"].items():
        assert all(key in result for key in STAGE_KEYS), (stage, sorted(result))
        assert result["k"] == k and 0.0 <= result["pass_at_1"] <= result["pass_at_k"] <= 1.0
        assert result["eval"]["n_tasks"] == get_preset("tiny-test").eval_tasks
        assert result["coverage"]["1"] == 1.0 and result["wall_s"] > 0
    # Trained stages carry their trainer's log; the RL stages start from the SFT checkpoint.
    assert any("loss" in e for e in saved["stages"]["sft"]["log_history"])
    assert any("episode/success_rate" in e for e in saved["stages"]["grpo_explore"]["log_history"])
    assert {c["b"] for c in saved["comparisons"]} == {"sft", "grpo", "grpo_explore"}
    # The GRPO stages' manipulation checks, read from their trainers' logs.
    assert set(saved["checks"]) == {"grpo", "grpo_explore"}
    for row in saved["checks"].values():
        assert 0 <= row["reward_spread"] <= 1 and row["distinct_outcomes"] >= 1 and row["start_entropy"] > 0
    markdown = (out / "report.md").read_text()
    for heading in REPORT_HEADINGS:
        assert heading in markdown
    for stage in STAGES:
        assert f"| {stage} |" in markdown
    assert "GRPO groups with any reward spread (%)" in markdown and "adds the exploration shaping `outcome_count`" in markdown
    for png in ("pass_at_k", "coverage", "success_by_turn", "training_sft", "training_grpo", "training_grpo_explore"):
        with Image.open(out / f"{png}.png") as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 100


def test_rerun_skips_finished_stages_and_reports_the_same_numbers(first_run):
    out, report, _, first_seconds, _ = first_run
    lines: list[str] = []
    started = time.perf_counter()
    again = run_pipeline("tiny-test", out, progress=False, log=lines.append)
    seconds = time.perf_counter() - started
    assert sum("done before, skipped" in line for line in lines) == len(STAGES)
    assert seconds < first_seconds / 2  # only the report and its plots are rewritten
    for stage in STAGES:
        assert again["stages"][stage]["pass_at_k"] == report["stages"][stage]["pass_at_k"]
        assert again["stages"][stage]["coverage"] == report["stages"][stage]["coverage"]


def test_an_interrupted_run_resumes_at_the_first_unfinished_stage(first_run, tmp_path):
    out, report, _, _, _ = first_run
    import shutil

    # A run killed during the last stage: its marker and results are missing, the others are on disk.
    shutil.copytree(out, tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "stages" / "grpo_explore")
    lines: list[str] = []
    resumed = run_pipeline("tiny-test", tmp_path / "run", progress=False, log=lines.append)
    assert sum("done before, skipped" in line for line in lines) == 3
    assert any(line.startswith("[4/4] grpo_explore: finished") for line in lines)
    assert resumed["stages"]["sft"]["pass_at_k"] == report["stages"]["sft"]["pass_at_k"]


def test_bad_preset_and_mismatched_out_dir_give_clear_errors(first_run, capsys):
    with pytest.raises(ValueError, match="unknown preset 'codebreakr'.*codebreaker.*maze.*tiny-test.*gpu"):
        get_preset("codebreakr")
    assert main(["pipeline", "--preset", "nope", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'nope'" in err and all(name in err for name in PRESETS)
    out = first_run[0]
    with pytest.raises(ValueError, match="holds a pipeline run of preset 'tiny-test'"):
        run_pipeline("tiny-test", out, model="some/other-model", progress=False, log=lambda _: None)


def test_the_report_writes_the_turn_limits_its_episodes_were_held_to(first_run):
    from interplay.rollout import load_trajectories

    out = first_run[0]
    saved = json.loads((out / "report.json").read_text())
    task = saved["task"]
    assert (task["env"], task["env_kwargs"], task["max_turns"]) == ("interplay/CodeBreaker-v0", {"instructions": False},
                                                                    None)
    for stage in STAGES:
        played = load_trajectories(out / "stages" / stage / "episodes.jsonl")
        # CodeBreaker's own limit, 4 attempts, is what every evaluation episode was held to.
        assert {t.manifest["turn_limit"] for t in played} == {4} and max(t.turns for t in played) <= 4
        assert saved["stages"][stage]["turn_limit"] == task["turn_limits"][stage] == {"min": 4, "max": 4,
                                                                                       "wrappers": []}
    # The trained stages record the config they ran with: the same task, no outside limit.
    for stage in STAGES[1:]:
        config = saved["stages"][stage]["config"]
        assert (config["env"], config["env_kwargs"], config["max_turns"]) == (task["env"], task["env_kwargs"], None)
    assert saved["stages"]["grpo"]["config"]["exploration"] is None
    assert saved["stages"]["grpo_explore"]["config"]["exploration"]["methods"] == ["outcome_count"]
    assert "held to 4 turns (the environment's own limit)" in (out / "report.md").read_text()


def test_an_outside_turn_limit_is_told_enforced_and_reported():
    from interplay.pipeline import evaluate_checkpoint, task_line, task_report

    base = get_preset("tiny-test")
    capped = dataclasses.replace(base, sft=dataclasses.replace(base.sft, max_turns=2),
                                 grpo=dataclasses.replace(base.grpo, max_turns=2))
    played: list = []
    result = evaluate_checkpoint(capped, "tiny", trajectories=played, progress=False)
    wrapper = {"name": "TurnLimit", "entry_point": "interplay.envs.core:TurnLimit", "kwargs": {"max_turns": 2}}
    assert result["turn_limit"] == {"min": 2, "max": 2, "wrappers": [wrapper]}
    for t in played:
        first = next(m["content"] for m in t.messages if m["role"] == "user")
        assert first.endswith("Turn limit: 2 turns.") and t.turns <= 2
    assert "held to 2 turns (a TurnLimit of 2 on top of the environment's own)" in task_line(
        task_report(capped, {"untrained": result}))


def test_presets_hold_the_real_configs_and_refuse_inconsistent_ones():
    from interplay.training.config import GRPOTrainingConfig, ImitationConfig

    maze = get_preset("maze")
    assert isinstance(maze.sft, ImitationConfig) and isinstance(maze.grpo, GRPOTrainingConfig)
    # The maze preset plays the registered 4x4 id, whose kwargs hold the 12-turn limit GRPO was measured with.
    assert maze.env == maze.grpo.env == "interplay/Maze-4x4-v0" and maze.grpo.max_turns is None
    base = get_preset("tiny-test")
    with pytest.raises(ValueError, match="same task, but their max_turns differ"):
        dataclasses.replace(base, sft=dataclasses.replace(base.sft, max_turns=2))
    with pytest.raises(ValueError, match="grpo.seed_start 0 reuses SFT's training seeds; use 24"):
        dataclasses.replace(base, grpo=dataclasses.replace(base.grpo, seed_start=0))
    with pytest.raises(ValueError, match=r"grpo_args needs \['max_steps'\]"):
        dataclasses.replace(base, grpo_args={"per_device_train_batch_size": 8})


def test_the_terminal_stays_quiet_and_the_full_logs_are_in_the_run_directory(first_run):
    out, report, lines, _, terminal = first_run
    # Without progress bars nothing but the pipeline's own lines: no trainer log dictionaries, library
    # warnings or progress bars of loading and saving.
    assert terminal == "", terminal[:500]
    for stage in STAGES[1:]:
        logged = [json.loads(line) for line in (out / "stages" / stage / "train_log.jsonl").read_text().splitlines()]
        history = [{k: v for k, v in e.items() if k != "time"} for e in logged]
        assert history == report["stages"][stage]["log_history"]
        assert any("loss" in e for e in logged) and any("heldout/success_rate" in e for e in logged)
    assert "FutureWarning" in (out / "stages" / "sft" / "messages.log").read_text()  # TRL's, kept off the terminal


# ---------------------------------------------------------------------------------------------- seeds
#: Keys of a stage's result that are measured figures (not wall times or paths).
FIGURES = ("pass_at_1", "pass_at_1_ci95", "pass_at_k", "pass_at_k_ci95", "coverage", "mean_turns", "success_by_turn",
           "per_task_successes", "heldout")


def _figures(report: dict) -> dict:
    """What a report measured: every stage's figures and training log values, without times."""
    timed = ("runtime", "per_second", "time", "wall", "_s")
    return {"comparisons": report["comparisons"],
            "stages": {name: {**{key: s[key] for key in FIGURES},
                              "log": [{k: v for k, v in e.items() if not any(t in k for t in timed)}
                                      for e in s["log_history"]]}
                       for name, s in report["stages"].items()}}


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory):
    """``interplay pipeline --seeds 2 --seed 0`` on tiny-test: seed 0 repeats first_run's seed in another dir."""
    out = tmp_path_factory.mktemp("seeds")
    terminal = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(terminal), contextlib.redirect_stderr(terminal):
        code = main(["pipeline", "--preset", "tiny-test", "--out", str(out), "--seeds", "2", "--seed", "0"])
    assert code == 0, terminal.getvalue()[-2000:]
    return out, time.perf_counter() - started


def test_the_same_seed_reproduces_the_report_and_another_seed_is_recorded(first_run, seeds_run):
    first = json.loads((first_run[0] / "report.json").read_text())
    again = json.loads((seeds_run[0] / "seed_0" / "report.json").read_text())
    assert first["seed"] == again["seed"] == 0
    assert _figures(again) == _figures(first)
    for stage in STAGES:  # every evaluation episode, token for token (only the checkpoint's path differs)
        played = [(run / "stages" / stage / "episodes.jsonl").read_text().replace(str(run), "OUT")
                  for run in (first_run[0], seeds_run[0] / "seed_0")]
        assert played[0] == played[1], stage
    other = json.loads((seeds_run[0] / "seed_1" / "report.json").read_text())
    assert other["seed"] == other["preset_config"]["seed"] == 1
    assert "seed 1." in (seeds_run[0] / "seed_1" / "report.md").read_text()
    # Seed 1 trained on its own block of tasks, with TRL seeded by it.
    grpo_first, sft_other = first["stages"]["grpo"]["config"], other["stages"]["sft"]["config"]
    assert sft_other["seed_start"] > grpo_first["seed_start"]  # past seed 0's SFT and GRPO tasks
    assert other["stages"]["grpo"]["config"]["seed_start"] - sft_other["seed_start"] == grpo_first["seed_start"]
    assert _figures(other) != _figures(first)


def test_seeds_are_aggregated_with_intervals_over_seeds_and_tasks(seeds_run):
    out, seconds = seeds_run
    report = json.loads((out / "report.json").read_text())
    assert report["seeds"] == [0, 1] and report["runs"] == {"0": "seed_0/report.json", "1": "seed_1/report.json"}
    runs = {seed: json.loads((out / path).read_text()) for seed, path in report["runs"].items()}
    for stage in STAGES:
        agg = report["stages"][stage]
        for key in ("pass_at_1", "pass_at_k"):
            values = [runs[seed]["stages"][stage][key] for seed in ("0", "1")]
            assert agg[key]["values"] == values and agg[key]["mean"] == pytest.approx(sum(values) / 2)
            low, high = agg[key]["ci95_over_seeds"]
            assert low <= agg[key]["mean"] <= high
            for seed in ("0", "1"):
                assert agg["per_seed"][seed][f"{key}_ci95"] == runs[seed]["stages"][stage][f"{key}_ci95"]
    row = report["comparisons"][-1]
    assert (row["a"], row["b"]) == ("grpo", "grpo_explore") and set(row["pass_at_1"]["per_seed"]) == {"0", "1"}
    markdown = (out / "report.md").read_text()
    for heading in ("## Results over seeds", "## Per seed (intervals over tasks)", "## Paired differences over seeds"):
        assert heading in markdown
    assert "seed_0/report.md" in markdown and "| grpo_explore − grpo |" in markdown
    assert report["checks"]["grpo"]["runs"] == 2 and "## Manipulation checks" in markdown


def test_overrides_replace_the_preset_settings_with_clear_errors(capsys):
    from interplay.pipeline import seeded_configs, with_overrides

    base = get_preset("codebreaker")
    p = with_overrides(base, seed=2, sft_steps=7, grpo_steps=3, sft_lr=1e-3, grpo_lr=1e-4, exploration="pkpo:k=4")
    assert (p.seed, p.sft_args["max_steps"], p.grpo_args["max_steps"]) == (2, 7, 3)
    assert (p.sft_args["learning_rate"], p.grpo_args["learning_rate"]) == (1e-3, 1e-4)
    assert p.exploration.methods == ["pkpo"] and p.exploration.params == {"pkpo": {"k": 4}}
    assert base.sft_args["max_steps"] == 100 and "overrides" in p.description
    sft, grpo, sft_args, grpo_args = seeded_configs(p)
    assert sft_args["seed"] == sft_args["data_seed"] == grpo_args["seed"] == 2
    assert sft.seed_start > base.grpo.seed_start and grpo.seed_start > sft.seed_start + sft.episodes - 1
    assert with_overrides(base) is base
    for flags, message in ((["--sft-steps", "0"], "--sft-steps must be an integer >= 1"),
                           (["--grpo-lr", "-1"], "--grpo-lr must be a positive number"),
                           (["--exploration", "bogus"], "unknown exploration method 'bogus'"),
                           (["--seeds", "0"], "--seeds must be an integer >= 1"),
                           (["--seed", "99999999"], "past the training seed range")):
        assert main(["pipeline", "--preset", "tiny-test", "--out", "unused", *flags]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(ValueError, match="sft_args must not set"):
        dataclasses.replace(base, sft_args={**base.sft_args, "seed": 1})


def test_grpo_task_count_counts_processes_for_the_trainer_and_the_pipeline(monkeypatch):
    """One function counts GRPO's training tasks, for the trainer (args.world_size) and the pipeline's seed blocks
    (the launched processes): under several processes the blocks of different seeds stay disjoint."""
    import interplay.pipeline.presets as presets
    import interplay.training.grpo as grpo
    from interplay.pipeline import seeded_configs, with_overrides
    from interplay.training.grpo_tasks import grpo_task_count

    assert grpo.grpo_task_count is grpo_task_count and presets.grpo_task_count is grpo_task_count
    assert grpo_task_count(None, 3, 8, 4, num_processes=1) == 6
    assert grpo_task_count(None, 3, 8, 4, num_processes=2) == 12  # each process plays its own groups
    assert grpo_task_count(None, 3, 8, 4, gradient_accumulation_steps=2, num_processes=2) == 24
    assert grpo_task_count(None, 0, 2, 4, num_processes=1) == 1 and grpo_task_count(50, 3, 8, 4, num_processes=4) == 50
    base = get_preset("codebreaker")
    one = grpo_task_count(None, base.grpo_args["max_steps"], base.grpo_args["per_device_train_batch_size"],
                          base.grpo_args["num_generations"], num_processes=1)
    preset = with_overrides(base, seed=1)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    sft_one, _, _, _ = seeded_configs(preset)
    _, grpo0, _, _ = seeded_configs(with_overrides(base, seed=0))
    assert sft_one.seed_start == grpo0.seed_start + one  # seed 1's block starts where seed 0's GRPO tasks end
    monkeypatch.setenv("WORLD_SIZE", "4")
    sft_four, _, _, _ = seeded_configs(preset)
    # Seed 1's block starts after everything seed 0's GRPO draws on 4 processes (counting one process, it
    # would start inside it).
    assert sft_four.seed_start == grpo0.seed_start + 4 * one > sft_one.seed_start
