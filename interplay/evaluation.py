"""Evaluation on held-out seeds: what a model solves, how often, and what it covers.

Sampling-based: ``evaluate`` plays ``n`` held-out tasks ``samples`` times each (a group per task,
same reset seed) and reports the success rate, the unbiased pass@k curve with intervals across
tasks, success by turn (for feedback environments: accuracy within t attempts), distinct outcomes
per task, the mean token entropy of agent tokens, and the distribution of per-task success rates p̂.

Likelihood-based (``coverage=True``): the coverage profile ``Pcov(N)`` of the model against the
environment's expert on the same tasks: the expert plays each task once, ``log π(y|x)`` is a
teacher-forced forward pass over the expert's agent tokens, ``log μ(y|x)`` is 0 for a deterministic
expert and the exact sum of ``expert_action_probs()`` log-probabilities for a seeded-stochastic one.

Episodes are played in batches of ``batch_size`` (each seed ``samples`` times, as a group), so
memory stays bounded and the progress bar moves.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from interplay import metrics
from interplay.agents.base import Agent, ExpertAgent
from interplay.rollout import EnvSpec, Trajectory, rollout
from interplay.seeds import EVAL_SEED_START, eval_seeds, task_key

#: How ``mean_token_entropy`` is computed (it is stored next to the value in the results).
ENTROPY_ESTIMATOR = ("-mean log-prob of the sampled agent tokens: a Monte-Carlo estimate of the per-token "
                     "entropy (nats) of the sampling distribution softmax(logits / temperature)")


def _num(value: float) -> float | None:
    """A JSON-safe float: NaN/inf (e.g. the stderr of one task) become None."""
    return float(value) if math.isfinite(value) else None


def _groups(trajectories: Sequence[Trajectory]) -> list[list[Trajectory]]:
    """Trajectories grouped by task (``task_key``: environment, kwargs and reset seed), in first-seen order."""
    groups: dict[str, list[Trajectory]] = {}
    for t in trajectories:
        groups.setdefault(task_key(t.env_id, t.seed, t.env_kwargs), []).append(t)
    return list(groups.values())


def _interval(values: Sequence[float] | np.ndarray) -> list[float | None]:
    """95% normal interval across tasks, clipped to [0, 1] (the values are probabilities)."""
    interval = metrics.mean_interval(values)
    return [_num(min(max(interval.low, 0.0), 1.0)), _num(min(max(interval.high, 0.0), 1.0))]


def summarize(env_id: str, agent_name: str, trajectories: Sequence[Trajectory],
              entropy_from_logprobs: bool = False) -> dict[str, Any]:
    """The results of ``evaluate`` from its trajectories (see there for the keys).

    ``entropy_from_logprobs``: the trajectories' ``logprobs`` are those of tokens sampled from the
    distribution they were computed under (temperature > 0, no top-k/top-p filtering), so their
    negative mean estimates the entropy; otherwise ``mean_token_entropy`` is None.
    """
    if not trajectories:
        raise ValueError("no trajectories to summarize: evaluate at least one episode.")
    turns = sum(t.turns for t in trajectories)
    n = len(trajectories)
    groups = _groups(trajectories)
    successes = [[t.success for t in group] for group in groups]
    p_hat = metrics.success_rates(successes)
    samples = min(len(group) for group in groups)
    per_k = {k: metrics.per_task_pass_at_k(successes, k) for k in range(1, samples + 1)}
    profile_grid = sorted({g for g in metrics.DEFAULT_SUCCESS_GRID if g <= samples} | {samples})
    distinct = metrics.distinct_outcomes([[t.outcome for t in group] for group in groups])
    entropy = None
    if entropy_from_logprobs and any(any(t.agent_mask) for t in trajectories):
        entropy = metrics.mean_token_entropy(sampled_logprobs=[t.logprobs for t in trajectories],
                                             mask=[t.agent_mask for t in trajectories])
    by_turn = metrics.success_by_turn([t.turns if t.success else None for t in trajectories],
                                      max_turn=max(max(t.turns for t in trajectories), 1))
    return {
        "env": env_id,
        "model": agent_name,
        "n_episodes": n,
        "success_rate": sum(t.success for t in trajectories) / n,
        "mean_turns": turns / n,
        "invalid_rate": sum(t.invalid_actions for t in trajectories) / max(turns, 1),
        "n_tasks": len(groups),
        "samples": samples,
        "seeds": sorted({t.seed for t in trajectories}),
        "success_rate_ci95": _interval(p_hat),
        # Unbiased pass@k (Chen et al. 2021), averaged over tasks, with a 95% interval across tasks.
        "pass_at_k": {str(k): float(v.mean()) for k, v in per_k.items()},
        "pass_at_k_ci95": {str(k): _interval(v) for k, v in per_k.items()},
        # Element t: fraction of episodes solved within t turns (feedback envs: within t attempts).
        "success_by_turn": {str(t + 1): v for t, v in enumerate(by_turn)},
        "distinct_outcomes": float(distinct.mean()),
        "distinct_outcomes_per_task": distinct.tolist(),
        "mean_token_entropy": _num(entropy) if entropy is not None else None,
        "token_entropy_estimator": ENTROPY_ESTIMATOR if entropy is not None else None,
        # The sampling-based twin of the coverage profile: how many tasks have each p̂, and
        # the fraction of tasks with p̂ ≥ 1/N (larger is better).
        "p_hat_counts": {f"{p:g}": c for p, c in sorted(Counter(np.round(p_hat, 6).tolist()).items())},
        "success_profile": {str(g): v for g, v in metrics.success_profile(p_hat, profile_grid).items()},
    }


def _samples_log_probs(agent: Agent) -> bool:
    """Whether the agent's recorded log-probs are those of tokens sampled from that same distribution."""
    params = agent.sampling_params()
    return (
        agent.encoder is not None
        and float(params.get("temperature") or 0) > 0
        and float(params.get("top_p") or 1.0) >= 1.0
        and not params.get("top_k")
    )


def evaluate(
    env_id: str,
    agent: Agent,
    n: int,
    samples: int = 1,
    *,
    env_kwargs: dict[str, Any] | None = None,
    seed_start: int = EVAL_SEED_START,
    max_turns: int | None = None,
    batch_size: int = 64,
    progress: bool = True,
    trajectories: list[Trajectory] | None = None,
    coverage: bool = False,
    coverage_grid: Sequence[float] = metrics.DEFAULT_COVERAGE_GRID,
    env_workers: int = 0,
) -> dict[str, Any]:
    """Play ``n`` held-out tasks (seeds ``seed_start..seed_start+n-1``) ``samples`` times each.

    Returns ``{"env", "model", "n_episodes", "success_rate", "mean_turns", "invalid_rate"}`` over all
    n * samples episodes, and per task group: ``pass_at_k`` ``{"1": .., "K": ..}`` (K = samples) with
    ``pass_at_k_ci95``, ``success_rate_ci95``, ``success_by_turn``, ``distinct_outcomes``,
    ``mean_token_entropy`` (see ``token_entropy_estimator``), ``p_hat_counts`` and
    ``success_profile``. With ``coverage=True`` (a model agent: ``agent.model``/``agent.tokenizer``)
    also the keys of :func:`coverage_report` on the same seeds. Pass a list as ``trajectories`` to
    collect the episodes too. ``env_workers``: as in ``rollout`` (the environments in N local servers).
    """
    if n < 1 or samples < 1 or batch_size < 1:
        raise ValueError(f"n, samples and batch_size must be positive, got {n}, {samples}, {batch_size}.")
    if coverage and agent.model is None:
        raise ValueError(f"coverage needs a model agent (HFAgent: the model's log-likelihood of the expert's "
                         f"replies), got {agent.name!r}; evaluate it without coverage.")
    seeds = eval_seeds(n, seed_start)
    specs = [EnvSpec(env_id, dict(env_kwargs or {}), seed) for seed in seeds]
    per_batch = max(1, batch_size // samples)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n * samples, desc=f"eval {env_id}", unit="ep")
    played: list[Trajectory] = []
    for start in range(0, n, per_batch):
        played += rollout(specs[start : start + per_batch], agent, group_size=samples, max_turns=max_turns,
                          env_workers=env_workers)
        if bar is not None:
            bar.update(len(played) - bar.n)
            bar.set_postfix(success=f"{sum(t.success for t in played) / len(played):.3f}")
    if bar is not None:
        bar.close()
    if trajectories is not None:
        trajectories.extend(played)
    result = summarize(env_id, agent.name, played, entropy_from_logprobs=_samples_log_probs(agent))
    if coverage:
        # The agent's encoder: the expert's replies are encoded with its chat-template kwargs.
        result.update(coverage_report(agent.model, agent.encoder, env_id, seeds, env_kwargs=env_kwargs,
                                      max_turns=max_turns, grid=coverage_grid))
    return result


# ------------------------------------------------------------------------------------------- coverage
def expert_trajectories(env_id: str, seeds: Sequence[int], tokenizer: Any, *,
                        env_kwargs: dict[str, Any] | None = None, max_turns: int | None = None,
                        batch_size: int = 256) -> list[Trajectory]:
    """One expert episode per seed, tokenized with ``tokenizer`` (a tokenizer or a ``ChatEncoder``; so
    ``agent_mask`` marks the expert's reply tokens). Raises ``ValueError`` if the environment has no expert."""
    specs = [EnvSpec(env_id, dict(env_kwargs or {}), int(seed)) for seed in seeds]
    played: list[Trajectory] = []
    for start in range(0, len(specs), batch_size):
        played += rollout(specs[start : start + batch_size], ExpertAgent(), max_turns=max_turns,
                          tokenizer=tokenizer)
    for t in played:
        errors = [info["agent_error"] for info in t.infos if "agent_error" in info]
        if errors:
            raise ValueError(f"{env_id} (seed {t.seed}) has no expert to measure coverage against: {errors[0]}")
    return played


def expert_log_likelihood(trajectories: Sequence[Trajectory]) -> np.ndarray:
    """log μ(y|x) of expert trajectories: the sum over turns of log ``expert_action_probs``[reply]
    where the rollout recorded that distribution, 0 for turns of a deterministic expert."""
    out = np.zeros(len(trajectories))
    for i, t in enumerate(trajectories):
        replies = [m["content"] for m in t.messages if m["role"] == "assistant"]
        for turn, reply in enumerate(replies, start=1):
            probs = t.infos[turn].get("expert_action_probs")
            if probs is None:
                continue
            p = probs.get(reply, 0.0)
            if not p > 0:
                raise ValueError(f"{t.env_id} (seed {t.seed}), turn {turn}: the expert replied {reply!r}, which "
                                 f"has no probability in its own expert_action_probs() {probs}; the "
                                 "environment's expert_action() and expert_action_probs() disagree.")
            out[i] += math.log(p)
    return out


def sequence_log_likelihood(model: Any, trajectories: Sequence[Trajectory], *, temperature: float = 1.0,
                            batch_size: int = 16) -> np.ndarray:
    """log π(y|x) of each trajectory's agent tokens under ``model``: ``interplay.scoring.teacher_forced`` over
    ``prompt_ids + completion_ids``, summing ``log_softmax(logits / temperature)`` where ``agent_mask`` marks."""
    from interplay.scoring import teacher_forced

    for t in trajectories:
        if not t.prompt_ids or len(t.agent_mask) != len(t.completion_ids):
            raise ValueError(f"{t.env_id} (seed {t.seed}) carries no token ids: roll it out with the model's "
                             "tokenizer (rollout(..., tokenizer=...)).")
    return teacher_forced(model, [t.prompt_ids for t in trajectories], [t.completion_ids for t in trajectories],
                          [t.agent_mask for t in trajectories], temperature=temperature,
                          batch_size=batch_size).log_likelihood


def coverage_report(model: Any, tokenizer: Any, env_id: str, seeds: Sequence[int], *,
                    env_kwargs: dict[str, Any] | None = None, max_turns: int | None = None,
                    grid: Sequence[float] = metrics.DEFAULT_COVERAGE_GRID, batch_size: int = 16,
                    trajectories: list[Trajectory] | None = None) -> dict[str, Any]:
    """The coverage profile of ``model`` against the environment's expert on ``seeds`` (one expert
    episode each; a seeded-stochastic expert plays the same episode for the same seed).

    Returns ``coverage`` ``{"<N>": Pcov(N)}`` (smaller is better; Pcov(1) = 1 unless π matches a
    deterministic expert with probability 1), ``log_ratio_quantiles`` ``{"<q>": nats}`` of
    log μ − log π (None for +inf), ``coverage_mean_log_pi``, ``coverage_mean_log_mu`` and
    ``coverage_expert_success`` (how often the expert's own episodes succeeded).
    """
    expert = expert_trajectories(env_id, seeds, tokenizer, env_kwargs=env_kwargs, max_turns=max_turns)
    if trajectories is not None:
        trajectories.extend(expert)
    log_mu = expert_log_likelihood(expert)
    log_pi = sequence_log_likelihood(model, expert, batch_size=batch_size)
    profile = metrics.coverage_profile(log_mu, log_pi, grid)
    quantiles = metrics.log_ratio_quantiles(log_mu, log_pi)
    return {
        "coverage": {str(int(g)) if float(g).is_integer() else str(g): v for g, v in profile.items()},
        "log_ratio_quantiles": {f"{q:g}": _num(v) for q, v in quantiles.items()},
        "coverage_mean_log_pi": float(log_pi.mean()),
        "coverage_mean_log_mu": float(log_mu.mean()),
        "coverage_expert_success": float(np.mean([t.success for t in expert])),
    }


__all__ = [
    "ENTROPY_ESTIMATOR",
    "coverage_report",
    "evaluate",
    "expert_log_likelihood",
    "expert_trajectories",
    "sequence_log_likelihood",
    "summarize",
]
