"""The study's machinery, one home for each part: the budget, cached training and evaluation jobs, the
statistics (paired and two-way intervals, rank correlation) and the verdict rule.

A section (``interplay.study.horizon`` and its siblings) is a function ``run(lab) -> Section``: it trains
and evaluates through its :class:`Lab` (every job cached on disk under the section's folder, so a rerun
skips what is done and an interrupted study resumes), computes :class:`Claim` s with :func:`claim`, and
returns tables and claims. Nothing here knows which finding a section tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interplay.experiments import Jobs, grpo_checks

#: The verdicts a claim can get (``verdict``); a section's verdict is its first claim's.
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive at this budget"
NOTHING_VARIED = "inconclusive: nothing varied"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOTHING_VARIED)
#: The rule in words, as the reports state it.
RULE = ("**reproduced**: the whole 95% interval is above 0 and the value is at least the claim's margin (the "
        "smallest effect that counts); **not reproduced**: the whole interval is below the margin (no effect that "
        "counts, or the opposite effect); **inconclusive: nothing varied**: the interval is exactly [0, 0], the arms "
        "compared did not differ on any task in any resample (see the section's manipulation check); "
        "**inconclusive at this budget**: otherwise.")
#: Resamples behind every bootstrap interval of the study (seeded: a rerun gives the same intervals).
BOOTSTRAP_DRAWS = 2000


# ------------------------------------------------------------------------------------------ budget
@dataclass(frozen=True)
class Budget:
    """How much compute the study spends. ``scale`` multiplies every training's optimizer steps and every
    evaluation's number of held-out tasks (1.0: the default, the sizes each section's claims were designed at;
    0.02: the smallest, every section end to end in about a minute, for tests; above 1 for a
    GPU). Seeds grow with the budget: 2 below 0.5, 3 up to 2.0, 5 beyond."""

    scale: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not 0 < self.scale < 1e4:
            raise ValueError(f"budget must be a positive number (1.0 the default, 0.02 the smallest run), "
                             f"got {self.scale!r}.")

    def steps(self, base: int, least: int = 2) -> int:
        """Optimizer steps for a training that takes ``base`` steps at budget 1."""
        return max(least, round(base * self.scale))

    def tasks(self, base: int, least: int = 8) -> int:
        """Held-out tasks for an evaluation that plays ``base`` tasks at budget 1."""
        return max(least, round(base * self.scale))

    def batch(self, base: int, group: int = 8) -> int:
        """Episodes per optimizer step: ``base``, a quarter of it (whole groups) at the smallest budget."""
        return base if not self.smallest else max(group, base // 4 // group * group)

    @property
    def seeds(self) -> int:
        """Independent training seeds where a section compares methods."""
        return 2 if self.scale < 0.5 else 3 if self.scale <= 2 else 5

    @property
    def smallest(self) -> bool:
        return self.scale < 0.1


SMALLEST = Budget(0.02)


# ------------------------------------------------------------------------------------ claims, verdict
@dataclass
class Claim:
    """One finding of the literature, as a prediction with the statistic that tests it.

    ``statistic`` names what was measured so that a positive value supports the claim; ``value`` and
    ``interval`` (95%) are its measurement, ``over`` what the interval is over (tasks, seeds and tasks);
    ``margin`` the smallest effect that counts; ``verdict`` from :func:`verdict`.
    """

    name: str
    statement: str
    statistic: str
    value: float
    interval: tuple[float, float]
    over: str
    margin: float
    verdict: str
    note: str = ""


def verdict(value: float, low: float, high: float, margin: float = 0.0) -> str:
    """The verdict of a claim whose statistic is positive when the claim holds, symmetric in the margin.

    - reproduced: the whole interval is above 0 (``low > 0``) and the value is at least ``margin``, the
      smallest effect that counts;
    - not reproduced: the whole interval is below ``margin`` (``high < margin``): any effect is smaller than
      what counts, or opposite (with ``margin=0``: the interval is below 0);
    - inconclusive, nothing varied: the interval is exactly [0, 0] (and so is the value): the arms compared
      gave the same outcome on every task, so the data cannot speak to the claim either way;
    - inconclusive at this budget: otherwise, and whenever a bound or the value is NaN (too few values).

    An interval above 0 whose value is below the margin is inconclusive unless it is also wholly below the
    margin (then: not reproduced); an interval reaching above the margin whose value is below it: inconclusive.
    """
    if not (math.isfinite(value) and math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    if low == high == value == 0:
        return NOTHING_VARIED
    if low > 0 and value >= margin:
        return REPRODUCED
    if high < margin:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def claim(name: str, statement: str, statistic: str, value: float, interval: Sequence[float], over: str,
          margin: float = 0.0, note: str = "") -> Claim:
    low, high = float(interval[0]), float(interval[1])
    return Claim(name, statement, statistic, float(value), (low, high), over, margin, verdict(float(value), low, high, margin), note)


# ------------------------------------------------------------------------------------------- statistics
def two_way_interval(values: Any, statistic: Callable[[np.ndarray], float] | None = None, seed: int = 0,
                     draws: int = BOOTSTRAP_DRAWS) -> tuple[float, float, float]:
    """Estimate and 95% percentile-bootstrap interval of ``statistic`` (default: the mean) of a
    ``[seeds, tasks]`` array, resampling seeds and tasks independently (every seed played the same tasks,
    so one task resample serves all seeds). One seed: tasks only. Returns ``(value, low, high)``."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    stat = statistic or (lambda a: float(a.mean()))
    rng = np.random.default_rng(seed)
    boots = np.empty(draws)
    for i in range(draws):
        rows = rng.integers(0, x.shape[0], x.shape[0]) if x.shape[0] > 1 else np.zeros(1, dtype=int)
        cols = rng.integers(0, x.shape[1], x.shape[1])
        boots[i] = stat(x[np.ix_(rows, cols)])
    low, high = np.quantile(boots, [0.025, 0.975])
    return stat(x), float(low), float(high)


def over(seeds: int) -> str:
    """What a two-way interval is over, in words."""
    return "tasks" if seeds == 1 else f"{seeds} seeds and tasks"


def ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        r[tied] = r[tied].mean()
    return r


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's on the ranks); 0 when either side is constant."""
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def ranking_edge(x: Sequence[float], y: Sequence[float], target: Sequence[float]) -> float:
    """How much better ``x`` than ``y`` orders ``target``, where the two order differently.

    Over the pairs (i, j) whose ``target`` differs, each predictor scores +1 when it orders the pair as ``target``
    does, −1 when the other way, 0 on a tie; over the pairs where the two predictors' scores differ, the mean of
    (score_x − score_y) / 2, in [−1, 1]: +1 when ``x`` is right on every pair they disagree on. Unlike a
    difference of two rank correlations near 1, it has room to show a difference; 0 when they never disagree
    (nothing tells them apart: a claim whose every resample gives 0 reads "inconclusive: nothing varied").
    """
    x, y, t = (np.asarray(v, dtype=np.float64) for v in (x, y, target))
    i, j = np.triu_indices(len(t), 1)
    sign = np.sign(t[i] - t[j])
    a, b = np.sign(x[i] - x[j]) * sign, np.sign(y[i] - y[j]) * sign
    differ = (sign != 0) & (a != b)
    return float(((a - b) / 2)[differ].mean()) if differ.any() else 0.0


# ---------------------------------------------------------------------------------------------- section
@dataclass
class Section:
    """What a section returns: its question, what it ran, markdown tables and its claims (first = main), and
    its manipulation checks: per arm (a row label) the values of ``CHECKS`` keys, with ``checks_note`` saying
    what they measure."""

    key: str
    title: str
    question: str
    setup: list[str]
    tables: list[str]
    claims: list[Claim]
    figures: dict[str, Any] = field(default_factory=dict)
    #: wall_s: this run of the section; compute_s: its jobs' summed run times, from whichever run made them.
    wall_s: float = 0.0
    compute_s: float = 0.0
    checks: dict[str, dict[str, float]] = field(default_factory=dict)
    checks_note: str = ""

    @property
    def verdict(self) -> str:
        return self.claims[0].verdict

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Section:
        data = {k: v for k, v in data.items() if k != "verdict"}
        data["claims"] = [Claim(**{**c, "interval": tuple(c["interval"])}) for c in data["claims"]]
        return cls(**data)


# --------------------------------------------------------------------------------------------------- lab
class Lab:
    """A section's workbench under ``root``: cached training and evaluation jobs (``interplay.experiments.Jobs``:
    each named job a folder with its result, a ``DONE`` marker and its logs), and a log.

    Asking for a finished job again reads it back. So a study resumes where it stopped, and the report can
    always be rebuilt from what is on disk. A training job's folder is its model's.
    """

    def __init__(self, root: str | Path, budget: Budget, log: Callable[[str], None] = print) -> None:
        self.jobs = Jobs(root)
        self.root = self.jobs.root
        self.budget = budget
        self._log = log

    def log(self, message: str) -> None:
        self._log(message)

    def _run(self, name: str, run: Callable[[], Any]) -> Any:
        fresh = not self.jobs.done(name)
        result = run()
        if fresh:
            self.log(f"{name}: {self.jobs.seconds(name):.0f} s")
        return result

    def cached(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``'s JSON result, the job ``name``; read back when it is done."""
        return self._run(name, lambda: self.jobs.run(name, lambda folder: compute()))

    def sft(self, name: str, config: Any, steps: int, *, seed: int = 0, batch: int = 64, lr: float = 2e-3,
            save_every: int | None = None) -> Path:
        """Train ``config`` (an ``ImitationConfig``) by SFT for ``steps`` optimizer steps; the final model in
        ``<name>/``, and with ``save_every`` the intermediate ones in ``<name>/checkpoint-<step>/`` (kept)."""
        args = {"max_steps": steps, "per_device_train_batch_size": batch, "learning_rate": lr,
                "warmup_steps": min(30, steps // 5), "seed": seed, "data_seed": seed,
                "logging_steps": max(1, steps // 10), "save_strategy": "steps" if save_every else "no",
                "save_steps": save_every or steps, "save_total_limit": None}
        self._run(name, lambda: self.jobs.train(name, "sft", config, args))
        return self.root / name

    def grpo(self, name: str, config: Any, steps: int, *, seed: int = 0, batch: int = 64, group: int = 8,
             lr: float = 3e-4, **extra: Any) -> Path:
        """Train ``config`` (a ``GRPOTrainingConfig``) by multi-turn GRPO for ``steps`` optimizer steps of
        ``batch`` episodes in groups of ``group``; the final model in ``<name>/``. ``extra``: more
        ``GRPOConfig`` fields."""
        args = {"max_steps": steps, "per_device_train_batch_size": batch, "num_generations": group,
                "learning_rate": lr, "seed": seed, "data_seed": seed, "logging_steps": 1, "save_strategy": "no",
                **extra}
        self._run(name, lambda: self.jobs.train(name, "grpo", config, args))
        return self.root / name

    def train_log(self, name: str) -> list[dict[str, Any]]:
        """The log entries of a finished training (TRL's ``log_history``)."""
        return self.jobs.result(name)["log_history"]

    def grpo_checks(self, name: str) -> dict[str, float]:
        """The manipulation checks (``interplay.experiments.grpo_checks``) of the finished GRPO training ``name``."""
        return grpo_checks(self.train_log(name))


# ------------------------------------------------------------------------------------------ evaluation
def play(model: str | Path, env: str, env_kwargs: dict[str, Any], tasks: int, samples: int = 1, *,
         max_new_tokens: int, temperature: float = 1.0, seed: int = 0, max_turns: int | None = None) -> dict[str, Any]:
    """``model`` plays the first ``tasks`` held-out tasks ``samples`` times each (temperature 0: greedy).

    Returns per task (in seed order) ``successes`` (0/1 per sample) and ``success_turn`` (the turn of
    success, or None), and ``mean_turns`` and ``invalid_rate`` (replies the environment could not read) over
    all episodes: JSON, so that :meth:`Lab.cached` keeps it.
    """
    from interplay.agents import HFAgent
    from interplay.evaluation import evaluate

    played: list[Any] = []
    agent = HFAgent(str(model), temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    result = evaluate(env, agent, tasks, samples, env_kwargs=dict(env_kwargs), max_turns=max_turns,
                      trajectories=played, progress=False)
    by_task: dict[int, list[Any]] = {}
    for t in played:
        by_task.setdefault(t.seed, []).append(t)
    order = sorted(by_task)
    return {
        "successes": [[int(t.success) for t in by_task[s]] for s in order],
        "success_turn": [[t.turns if t.success else None for t in by_task[s]] for s in order],
        "mean_turns": result["mean_turns"],
        "invalid_rate": result["invalid_rate"],
    }


def expert_forcing(model: str | Path, env: str, env_kwargs: dict[str, Any], tasks: int, *,
                   max_turns: int | None = None) -> dict[str, Any]:
    """``model`` teacher-forced on the expert's own episodes of the first ``tasks`` held-out tasks.

    Per task: ``log_pi`` (the model's log-likelihood of the expert's reply tokens), ``log_mu`` (the expert's
    own, 0 for a deterministic expert), ``tokens`` (expert reply tokens), ``expert_turns`` and
    ``step_errors``: per expert turn, 1 when the model's most likely first reply token is not the first token
    of a move the expert would make there (its ``expert_action_probs`` support, else its reply). Measured on
    the expert's states, so a failed episode's repeated bumps do not count.
    """
    from interplay.agents import HFAgent
    from interplay.evaluation import expert_log_likelihood, expert_trajectories
    from interplay.scoring import teacher_forced
    from interplay.seeds import eval_seeds

    agent = HFAgent(str(model), temperature=1.0, max_new_tokens=1)
    expert = expert_trajectories(env, eval_seeds(tasks), agent.encoder, env_kwargs=dict(env_kwargs),
                                 max_turns=max_turns)
    first_token = {}

    def first(reply: str) -> int:
        if reply not in first_token:
            first_token[reply] = agent.tokenizer.encode(reply, add_special_tokens=False)[0]
        return first_token[reply]

    forced = teacher_forced(agent.model, [t.prompt_ids for t in expert], [t.completion_ids for t in expert],
                            [t.agent_mask for t in expert], reply_openings=True)
    out: dict[str, list[Any]] = {"log_pi": forced.log_likelihood.tolist(),
                                 "log_mu": expert_log_likelihood(expert).tolist(), "tokens": forced.tokens.tolist(),
                                 "expert_turns": [], "step_errors": []}
    for t, openings in zip(expert, forced.reply_openings):
        replies = [m["content"] for m in t.messages if m["role"] == "assistant"]
        errors = []
        for turn, (guess, actual) in enumerate(openings[: len(replies)], start=1):
            probs = t.infos[turn].get("expert_action_probs") if turn < len(t.infos) else None
            allowed = {first(r) for r, q in probs.items() if q > 0} if probs else {actual}
            errors.append(int(guess not in allowed))
        out["step_errors"].append(errors)
        out["expert_turns"].append(len(replies))
    return out
