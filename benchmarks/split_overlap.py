"""How often a held-out task is also a training task, per environment (the figures in RESULTS.md).

Training draws tasks from the seeds below ``interplay.seeds.EVAL_SEED_START`` and evaluation from
those from it on. Most environments are one generator played at disjoint seeds, so held-out tasks
follow the training tasks' distribution, but where the task space is small the same task can come
up on both sides. This counts, for each setting, the share of ``--eval`` held-out tasks (seeds from
EVAL_SEED_START) identical to one of ``--train`` training tasks (seeds from 0). A task's identity:
the question and answer of feedback tasks, the maze and its start and goal, the state TextArena
records for a game and the first observation.

    OMP_NUM_THREADS=1 python benchmarks/split_overlap.py            # Maze, MathFeedback, CodeBreaker
    OMP_NUM_THREADS=1 python benchmarks/split_overlap.py --textarena --reasoning-gym --train 1000 --eval 200
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's interplay

import gymnasium as gym  # noqa: E402

import interplay  # noqa: E402,F401
from interplay.seeds import EVAL_SEED_START  # noqa: E402


def maze_key(env: Any) -> Any:
    return tuple(env._open), env._start, env._goal


def feedback_key(env: Any) -> Any:
    return env.task.question, env.task.answer


def textarena_key(env: Any, observation: str) -> Any:
    return observation, repr(sorted(env._ta.state.game_state.items(), key=lambda kv: kv[0]))


def overlap(env_id: str, kwargs: dict[str, Any], key: Callable[..., Any], n_train: int, n_eval: int,
            with_observation: bool = False) -> tuple[float, int, int]:
    """(share of held-out tasks that are training tasks, distinct training tasks, distinct held-out tasks)."""
    env = gym.make(env_id, **kwargs).unwrapped

    def keys(seeds: Iterable[int]) -> list[Any]:
        out = []
        for seed in seeds:
            observation, _ = env.reset(seed=seed)
            out.append(key(env, observation) if with_observation else key(env))
        return out

    train = set(keys(range(n_train)))
    held_out = keys(range(EVAL_SEED_START, EVAL_SEED_START + n_eval))
    return sum(k in train for k in held_out) / n_eval, len(train), len(set(held_out))


def report(rows: list[tuple[str, str, tuple[float, int, int], float]], n_train: int, n_eval: int) -> None:
    print(f"\n| environment | kwargs | held-out tasks also in training ({n_eval} vs {n_train}) "
          "| distinct training tasks | distinct held-out | s |")
    print("|---|---|---|---|---|---|")
    for env_id, kwargs, (share, train, held), seconds in rows:
        print(f"| `{env_id}` | {kwargs} | {100 * share:.1f}% | {train} | {held} | {seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=10_000, help="training tasks (seeds from 0)")
    parser.add_argument("--eval", type=int, default=1_000, help="held-out tasks (seeds from EVAL_SEED_START)")
    parser.add_argument("--textarena", action="store_true", help="TextArena's one-player games instead")
    parser.add_argument("--reasoning-gym", action="store_true", help="a few reasoning-gym tasks instead")
    parser.add_argument("--only", nargs="+", help="only the ids that contain one of these strings")
    args = parser.parse_args()
    settings: list[tuple[str, dict[str, Any], Callable[..., Any], bool]] = []
    if args.textarena:
        from interplay.envs.textarena import GAMES

        for base, game in sorted(GAMES.items()):
            env_id = f"interplay/TextArena-{base}-v0"
            if game.players == 1 and env_id in gym.registry:
                settings.append((env_id, {}, textarena_key, True))
    if args.reasoning_gym:
        for task in ("basic_arithmetic", "chain_sum", "coin_flip", "gcd", "leg_counting", "mini_sudoku",
                     "number_sorting", "simple_equations", "spell_backward", "word_sorting"):
            settings.append((f"interplay/ReasoningGym-{task}-v0", {}, feedback_key, False))
    if not (args.textarena or args.reasoning_gym):
        for size in (2, 3, 4, 5):
            settings.append(("interplay/Maze-v0", {"size": size}, maze_key, False))
        for difficulty in (1, 2, 3):
            settings.append(("interplay/MathFeedback-v0", {"difficulty": difficulty}, feedback_key, False))
        for family in ("arithmetic", "linear", "fractions", "word"):
            settings.append(("interplay/MathFeedback-v0", {"difficulty": 1, "families": family}, feedback_key, False))
        settings.append(("interplay/CodeBreaker-v0", {}, feedback_key, False))
    if args.only:
        settings = [s for s in settings if any(part in s[0] for part in args.only)]
    rows = []
    for env_id, kwargs, key, with_observation in settings:
        start = time.perf_counter()
        result = overlap(env_id, kwargs, key, args.train, args.eval, with_observation)
        rows.append((env_id, str(kwargs or ""), result, time.perf_counter() - start))
        print(env_id, kwargs, f"{100 * result[0]:.1f}%", result[1:], flush=True)
    report(rows, args.train, args.eval)


if __name__ == "__main__":
    main()
