"""Evaluation: pass@k, success by turn, coverage against the expert, plots, the eval CLI."""

import json
import math

import numpy as np
import pytest

from interplay import metrics, models
from interplay.agents import ExpertAgent, TextAgent
from interplay.agents.hf import HFAgent
from interplay.cli import main
from interplay.evaluation import (
    coverage_report,
    evaluate,
    expert_log_likelihood,
    expert_trajectories,
    sequence_log_likelihood,
)
from interplay.plots import plot_training_curves
from interplay.registry import make

MAZE = "interplay/Maze-v0"
SMALL = json.dumps({"size": 2})  # 2x2 mazes: an untrained model solves some, so curves are not all 0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000, (path, len(data))
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(path).shape
    assert height > 300 and width > 500


def test_eval_cli_reports_pass_at_k_success_by_turn_and_coverage(tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = main(["eval", "--env", MAZE, "--env-kwargs", SMALL, "-n", "6", "--samples", "4", "--max-new-tokens", "3",
               "--coverage", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert {"env", "model", "n_episodes", "success_rate", "mean_turns", "invalid_rate"} <= set(result)
    assert result["n_episodes"] == 24 and result["n_tasks"] == 6 and result["samples"] == 4
    curve = [result["pass_at_k"][str(k)] for k in range(1, 5)]
    assert set(result["pass_at_k"]) == {"1", "2", "3", "4"}
    assert all(0 <= v <= 1 for v in curve) and curve == sorted(curve)
    assert math.isclose(curve[0], result["success_rate"])  # pass@1 is the success rate (equal groups)
    low, high = result["pass_at_k_ci95"]["1"]
    assert 0 <= low <= curve[0] <= high <= 1
    by_turn = list(result["success_by_turn"].values())
    assert by_turn == sorted(by_turn) and math.isclose(by_turn[-1], result["success_rate"])
    assert sum(result["p_hat_counts"].values()) == 6
    assert 1 <= result["distinct_outcomes"] <= 4
    assert result["success_profile"]["1"] <= result["success_profile"]["4"]
    assert result["mean_token_entropy"] > 0 and "Monte-Carlo" in result["token_entropy_estimator"]
    # Coverage of the untrained tiny model against the BFS expert: probabilities, non-increasing in N.
    grid = [str(n) for n in metrics.DEFAULT_COVERAGE_GRID]
    assert list(result["coverage"]) == grid
    pcov = [result["coverage"][n] for n in grid]
    assert all(0 <= v <= 1 for v in pcov) and pcov == sorted(pcov, reverse=True)
    assert pcov[0] == 1.0  # a deterministic expert: only π(y|x) = 1 would leave Pcov(1) < 1
    assert result["coverage_mean_log_mu"] == 0.0 and result["coverage_mean_log_pi"] < 0
    quantiles = list(result["log_ratio_quantiles"].values())
    assert quantiles == sorted(quantiles) and quantiles[0] > 0


def test_teacher_forced_log_likelihood_matches_sampled_logprobs():
    model, tokenizer = models.load("tiny")
    agent = HFAgent(model, tokenizer, seed=1, max_new_tokens=4)
    played = []
    evaluate(MAZE, agent, 3, 2, env_kwargs={"size": 3}, max_turns=3, progress=False, trajectories=played)
    recorded = [sum(lp for lp, m in zip(t.logprobs, t.agent_mask) if m) for t in played]
    forced = sequence_log_likelihood(model, played, batch_size=4)
    np.testing.assert_allclose(forced, recorded, rtol=0, atol=1e-3)


def test_copying_the_stochastic_expert_gives_zero_coverage_gap():
    tokenizer = models.load_tokenizer("tiny")
    kwargs = {"size": 5, "loops": 0.6}
    expert = expert_trajectories(MAZE, range(40), tokenizer, env_kwargs=kwargs)
    log_mu = expert_log_likelihood(expert)
    assert all(t.success for t in expert) and (log_mu < 0).any()  # several shortest paths somewhere
    for t, value in zip(expert, log_mu):  # replay: log μ is the sum of log(1 / #optimal moves)
        env = make(MAZE, **kwargs)
        env.reset(seed=t.seed)
        expected = 0.0
        for message in t.messages:
            if message["role"] == "assistant":
                expected += math.log(env.unwrapped.expert_action_probs()[message["content"]])
                env.step(message["content"])
        assert math.isclose(value, expected)
    profile = metrics.coverage_profile(log_mu, log_mu)  # π = μ exactly
    assert profile[1] == 1.0 and all(v == 0.0 for n, v in profile.items() if n > 1)
    deterministic = expert_log_likelihood(expert_trajectories(MAZE, range(5), tokenizer, env_kwargs={"size": 5}))
    assert (deterministic == 0).all()


def test_tiny_model_coverage_on_stochastic_maze():
    model, tokenizer = models.load("tiny")
    report = coverage_report(model, tokenizer, MAZE, range(10), env_kwargs={"size": 3, "loops": 0.5})
    pcov = list(report["coverage"].values())
    assert all(0 <= v <= 1 for v in pcov) and pcov == sorted(pcov, reverse=True)
    assert report["coverage_expert_success"] == 1.0 and report["coverage_mean_log_mu"] <= 0


class WrongFirstAgent(TextAgent):
    """Answers nonsense on the first attempt, then the expert's answer."""

    name = "wrong-first"
    wants_expert_actions = True

    def reply(self, history, expert_action):
        return "\\boxed{x}" if not any(m["role"] == "assistant" for m in history) else expert_action


def test_success_by_attempt_on_math_feedback():
    expert = evaluate("interplay/MathFeedback-v0", ExpertAgent(), 5, 2, progress=False)
    assert expert["success_by_turn"]["1"] == 1.0 and set(expert["pass_at_k"].values()) == {1.0}
    assert expert["mean_token_entropy"] is None  # a text agent has no log-probs
    late = evaluate("interplay/MathFeedback-v0", WrongFirstAgent(), 5, progress=False)
    assert late["success_by_turn"] == {"1": 0.0, "2": 1.0}


def test_models_comparison_writes_plots_and_results(tmp_path, capsys):
    plots = tmp_path / "plots"
    rc = main(["eval", "--env", MAZE, "--env-kwargs", SMALL, "-n", "4", "--samples", "2", "--max-new-tokens", "3",
               "--models", "tiny", "expert", "random", "--coverage", "--plots", str(plots)])
    assert rc == 0, capsys.readouterr().err
    assert "'expert' is not a model" in capsys.readouterr().out  # coverage skipped for text agents
    results = json.loads((plots / "results.json").read_text())
    assert list(results) == ["tiny", "expert", "random"]
    assert len({tuple(r["seeds"]) for r in results.values()}) == 1  # the same tasks for every model
    assert results["expert"]["pass_at_k"] == {"1": 1.0, "2": 1.0}
    assert "coverage" in results["tiny"] and "coverage" not in results["expert"]
    for name in ("pass_at_k.png", "success_by_turn.png", "coverage.png"):
        _assert_png(plots / name)


def test_training_curves_plot(tmp_path):
    # The shape of a TRL trainer's state.log_history: periodic logs, then a summary entry.
    history = [{"loss": 2.0 / (s + 1), "grad_norm": 1.0, "learning_rate": 1e-3, "epoch": s / 10, "step": s}
               for s in range(1, 11)] + [{"train_runtime": 3.2, "train_loss": 0.5, "epoch": 1.0, "step": 10}]
    _assert_png(plot_training_curves(history, tmp_path / "train.png"))
    with pytest.raises(ValueError, match="numeric keys logged"):
        plot_training_curves(history, tmp_path / "x.png", keys=["reward"])


def test_bad_input_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="coverage needs a model agent"):
        evaluate(MAZE, ExpertAgent(), 2, coverage=True, progress=False)
    assert main(["eval", "--env", MAZE, "-n", "2", "--models", "expert", "expert"]) == 2
    assert "lists a model twice" in capsys.readouterr().err
