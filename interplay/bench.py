"""A baseline table for any model: ``interplay bench MODEL`` plays a fixed, versioned suite of tasks.

Every model plays the same held-out seeds of the same tasks with the same limits, so two tables of
one suite version compare row by row. A row gives the success rate with Wilson's 95% interval over
episodes, success within each attempt where the task gives feedback (math, code breaking,
reasoning-gym: attempt t = turn t), the invalid-reply rate (the share of turns the environment could
not read), agent tokens per episode and the task's wall time.

Runs resume: each task is a cached job (``interplay.experiments.Jobs``), its row, episodes and log written
as soon as it finishes under ``<out>/tasks/<task>/``, keyed by the suite version and the settings; a rerun
with the same settings skips what is there, one with other settings plays the task again. The whole run writes ``bench.json``, ``bench.md`` and ``episodes.html`` (the viewer).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from interplay import metrics
from interplay.agents.base import Agent
from interplay.evaluation import evaluate
from interplay.experiments import Jobs, pct, pct_interval, table
from interplay.rollout import Trajectory, load_trajectories, save_trajectories
from interplay.seeds import EVAL_SEED_START

#: A task's episodes, in its job's folder.
EPISODES = "episodes.jsonl"
#: Bump whenever a task, its kwargs or its turn limit changes: tables of different versions do not compare.
SUITE_VERSION = 1
#: TextArena's single-player games allow 100 turns; the suite caps them (a TurnLimit, in every manifest)
#: at what their experts need with room to spare, so a weak model's episodes do not dominate the run.
GAME_TURNS = 10


@dataclass(frozen=True)
class BenchTask:
    """One row of the suite: an environment id with its kwargs and turn limit."""

    name: str
    env: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    max_turns: int | None = None  # None: the environment's own limit
    feedback: bool = False  # replies after a wrong answer carry feedback: turn t is attempt t


SUITE: tuple[BenchTask, ...] = (
    BenchTask("math-1", "interplay/MathFeedback-v0", {"difficulty": 1}, feedback=True),
    BenchTask("math-2", "interplay/MathFeedback-v0", {"difficulty": 2}, feedback=True),
    BenchTask("math-3", "interplay/MathFeedback-v0", {"difficulty": 3}, feedback=True),
    BenchTask("codebreaker", "interplay/CodeBreaker-v0", feedback=True),
    BenchTask("maze-3x3", "interplay/Maze-v0", {"size": 3}),
    BenchTask("maze-4x4", "interplay/Maze-4x4-v0"),
    BenchTask("guess-the-number", "interplay/TextArena-GuessTheNumber-v0", max_turns=GAME_TURNS),
    BenchTask("mastermind", "interplay/TextArena-Mastermind-v0", max_turns=GAME_TURNS),
    BenchTask("tower-of-hanoi", "interplay/TextArena-TowerOfHanoi-v0", max_turns=GAME_TURNS),
    BenchTask("frozen-lake", "interplay/TextArena-FrozenLake-v0", max_turns=GAME_TURNS),
    BenchTask("rg-basic-arithmetic", "interplay/ReasoningGym-basic_arithmetic-v0", feedback=True),
    BenchTask("rg-chain-sum", "interplay/ReasoningGym-chain_sum-v0", feedback=True),
    BenchTask("rg-letter-counting", "interplay/ReasoningGym-letter_counting-v0", feedback=True),
    BenchTask("rg-spell-backward", "interplay/ReasoningGym-spell_backward-v0", feedback=True),
)
TASKS = {task.name: task for task in SUITE}


def select(names: Sequence[str] | None) -> list[BenchTask]:
    """The suite's tasks named in ``names`` (all of them for None), in suite order."""
    if not names:
        return list(SUITE)
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ValueError(f"unknown bench task(s) {unknown}; the suite (version {SUITE_VERSION}) has: "
                         f"{', '.join(TASKS)}.")
    return [task for task in SUITE if task.name in names]


def settings_key(agent: Agent, episodes: int, seed_start: int) -> dict[str, Any]:
    """What a task's result depends on besides the task: a saved result is reused only when this matches."""
    key = {"suite_version": SUITE_VERSION, "model": agent.name, "sampling": agent.sampling_params(),
           "episodes": episodes, "seed_start": seed_start}
    return json.loads(json.dumps(key))  # as it reads back from a saved row (tuples become lists)


def task_row(task: BenchTask, result: dict[str, Any], trajectories: Sequence[Trajectory],
             seconds: float) -> dict[str, Any]:
    """The table's row for one task, from ``evaluate``'s result and the episodes it played."""
    n = len(trajectories)
    wins = sum(t.success for t in trajectories)
    interval = metrics.proportion_interval(wins, n)
    row = {"task": task.name, "env": task.env, "env_kwargs": task.env_kwargs, "max_turns": task.max_turns,
           "episodes": n, "success": wins / n, "success_ci95": [interval.low, interval.high],
           "invalid_rate": result["invalid_rate"], "mean_turns": result["mean_turns"],
           "agent_tokens_per_episode": sum(sum(t.agent_mask) for t in trajectories) / n,
           "seconds": seconds, "success_by_attempt": None}
    if task.feedback:
        row["success_by_attempt"] = result["success_by_turn"]
    return row


def run_task(task: BenchTask, agent: Agent, episodes: int, seed_start: int, out: Path) -> dict[str, Any]:
    """Play one task, the job ``<out>/tasks/<task>/`` (row and episodes), or read its row back when it was played
    with the same settings (``settings_key``)."""
    def compute(folder: Path) -> dict[str, Any]:
        played: list[Trajectory] = []
        started = time.perf_counter()
        result = evaluate(task.env, agent, episodes, env_kwargs=task.env_kwargs, seed_start=seed_start,
                          max_turns=task.max_turns, trajectories=played, progress=True)
        save_trajectories(folder / EPISODES, played)
        return task_row(task, result, played, time.perf_counter() - started)

    return Jobs(out / "tasks").run(task.name, compute, key=settings_key(agent, episodes, seed_start))


def run_bench(agent: Agent, out: str | Path, *, episodes: int = 16, tasks: Sequence[str] | None = None,
              seed_start: int = EVAL_SEED_START, viewer_episodes: int = 4) -> dict[str, Any]:
    """Play the suite (or the named ``tasks``) with ``agent``: ``episodes`` held-out seeds per task.

    Writes ``bench.json`` (settings and rows), ``bench.md`` (the table) and ``episodes.html`` (the first
    ``viewer_episodes`` episodes of every task) under ``out``, and returns the JSON's content.
    """
    from tqdm.auto import tqdm

    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}.")
    out = Path(out)
    chosen = select(tasks)
    rows = []
    for task in tqdm(chosen, desc=f"bench {agent.name}", unit="task"):
        rows.append(run_task(task, agent, episodes, seed_start, out))
    report = {**settings_key(agent, episodes, seed_start), "tasks": [asdict(t) for t in chosen], "rows": rows}
    (out / "bench.json").write_text(json.dumps(report, indent=1))
    (out / "bench.md").write_text(markdown(report))
    from interplay.viewer import write_html

    shown = [t for task in chosen for t in load_trajectories(out / "tasks" / task.name / EPISODES)[:viewer_episodes]]
    write_html(out / "episodes.html", shown, title=f"interplay bench: {agent.name}")
    return report


def _by_attempt(row: dict[str, Any]) -> str:
    by = row["success_by_attempt"]
    return " / ".join(pct(v, digits=0) for v in by.values()) if by else "–"


def markdown(report: dict[str, Any]) -> str:
    """The bench table in Markdown, with the settings it was measured under."""
    sampling = ", ".join(f"{k}={v}" for k, v in report["sampling"].items() if v is not None)
    rows = [[row["task"], pct_interval(row["success"], *row["success_ci95"], digits=0), _by_attempt(row),
             pct(row["invalid_rate"], digits=0), f"{row['agent_tokens_per_episode']:.0f}", f"{row['seconds']:.0f}"]
            for row in report["rows"]]
    header = ["task", "success % [95% CI]", "success by attempt %", "invalid replies %", "agent tokens / episode",
              "wall s"]
    return "\n".join([
        f"Model `{report['model']}`, suite v{report['suite_version']}, {report['episodes']} held-out episodes "
        f"per task (seeds from {report['seed_start']}), {sampling}.",
        "",
        *table(header, rows),
    ]) + "\n"
