"""The built-in opponent of two-player games: a uniformly random move among candidates that
TextArena accepts and that do not lose on the spot.

Candidates are the bracketed moves the opponent's view mentions (with placeholders such as
``[attack M O]`` filled in with small numbers), the moves of the game's own generator (its record's
``moves`` in games.py) where TextArena's text does not list them, and small integers.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from interplay.envs.textarena.arena import INVALID_MOVE, UNLIMITED_ERRORS

#: A game's move generator: (TextArena game_state, player id) -> candidate moves.
MoveGenerator = Callable[[Any, int], list[str]]
#: Candidates tried per move, each on a copy of the game (the copies dominate an opponent's time).
MAX_TRIALS = 80

_BRACKETED = re.compile(r"\[[^\[\]\n]{1,40}\]")


def candidate_moves(moves: MoveGenerator | None, game_state: Any, pid: int, seen: str) -> list[str]:
    """What the opponent may try, best guesses first: the generator's moves, then what it saw."""
    found = []
    for move in _BRACKETED.findall(seen):  # "[attack M O]" in the rules -> "[attack 0 1]", ...
        holes = re.findall(r"\b[A-Zx]\b", move) if re.search(r"[a-z]{2}", move) else []
        if 0 < len(holes) <= 2:
            # Split at the holes rather than str.format: seen text (the agent's reply) may hold braces.
            parts = re.split(r"\b[A-Zx]\b", move)
            for values in itertools.product(range(14), repeat=len(holes)):
                found.append(parts[0] + "".join(f"{v}{part}" for v, part in zip(values, parts[1:])))
        else:
            found.append(move)
    if moves is not None:
        with contextlib.suppress(Exception):  # a generator that fails on an odd state adds nothing
            found = moves(game_state, pid) + found
    return found + [f"[{i}]" for i in range(64)] + ["[Accept]", "[Reject]"]


def builtin_move(
    ta_env: Any,
    pid: int,
    moves: MoveGenerator | None,
    seen: str,
    rng: np.random.Generator,
    isolated: Callable[[], contextlib.AbstractContextManager[None]],
) -> str:
    """Player ``pid``'s move: a uniformly random candidate (drawn with ``rng``) that TextArena accepts
    and that does not lose at once, each tested on a copy of ``ta_env`` inside ``isolated()`` (the
    environment's TextArena randomness); a legal but losing move if there is no other.

    The trials draw from TextArena's randomness: the caller restores it afterwards, so that the
    game goes on as if they had not happened.
    """
    candidates = list(dict.fromkeys(candidate_moves(moves, ta_env.state.game_state, pid, seen)))
    order = rng.permutation(len(candidates))
    fallback = candidates[int(order[0])] if candidates else "[0]"
    for i in order[:MAX_TRIALS]:
        trial = copy.deepcopy(ta_env)
        with isolated():
            trial.state.error_allowance = UNLIMITED_ERRORS
            before = len(trial.state.observations[pid])
            try:
                done, _ = trial.step(candidates[i])
                rewards = trial.close()[0] if done else None
            except Exception:
                continue
        new = trial.state.observations[pid][before:]
        if any(INVALID_MOVE in str(text) for _, text, _ in new):
            continue
        if rewards and rewards.get(pid, 0) < max(rewards.values()):
            fallback = candidates[i]  # legal, but it loses at once (or TextArena said so)
            continue
        return candidates[i]
    return fallback


# ---- move generators for games whose rules do not spell out their moves ---------------------------
def nim_moves(game_state: Any, pid: int) -> list[str]:
    return [f"[{i} {q}]" for i, n in enumerate(game_state["piles"]) for q in range(1, n + 1)]


def connect_four_moves(game_state: Any, pid: int) -> list[str]:
    return [f"[col {c}]" for c in range(len(game_state["board"][0]))]


def ultimate_tic_tac_toe_moves(game_state: Any, pid: int) -> list[str]:
    return [f"[{b} {r} {c}]" for b in range(9) for r in range(3) for c in range(3)]


def battleship_moves(game_state: Any, pid: int) -> list[str]:
    return [f"[{chr(65 + r)}{c}]" for r in range(10) for c in range(10)]


def colonel_blotto_moves(game_state: Any, pid: int) -> list[str]:
    return [f"[A{a} B{b} C{20 - a - b}]" for a in range(21) for b in range(21 - a)]


def two_dollar_moves(game_state: Any, pid: int) -> list[str]:
    return [f"[Propose] ${x / 4:.2f}" for x in range(9)]


def new_recruit_moves(game_state: Any, pid: int) -> list[str]:
    return ["[Propose] " + "".join(p) for p in itertools.product("ACE", repeat=8)][::97]


def tak_moves(game_state: Any, pid: int) -> list[str]:
    return [f"[place () {{({r},{c}): [F{pid}]}}]" for r in range(4) for c in range(4)]


def wild_tic_tac_toe_moves(game_state: Any, pid: int) -> list[str]:
    return [f"[{s} {i}]" for s in "XO" for i in range(9)]
