"""Experts: cheap solvers that read a TextArena game's state and return the next reply.

Each takes ``(ta_env, player, rng)``: the unwrapped TextArena env, the agent's seat, and the
environment's generator (for seeded choices among equally good moves). A game's record in
games.py names its expert; ``TextArenaEnv.expert_action`` calls it.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

Expert = Callable[[Any, int, np.random.Generator], str]


def hanoi_expert(ta_env: Any, player: int, rng: np.random.Generator) -> str:
    """Optimal next move from any legal position: move the largest misplaced disk to its target,
    after parking every smaller disk on the third tower."""
    towers = ta_env.state.game_state["towers"]
    where = {disk: name for name, disks in towers.items() for disk in disks}
    target = "C"
    for disk in sorted(where, reverse=True):
        if where[disk] == target:
            continue
        source = where[disk]
        spare = ({"A", "B", "C"} - {source, target}).pop()
        smaller = [d for d in where if d < disk]
        if all(where[d] == spare for d in smaller):
            return f"[{source} {target}]"
        target = spare  # first bring the smaller disks to the spare tower
    raise AssertionError("Tower of Hanoi expert called on a solved puzzle")


def guess_expert(ta_env: Any, player: int, rng: np.random.Generator) -> str:
    """Binary search over the numbers the hints so far allow (uses only what the agent saw)."""
    low, high = ta_env.min_number, ta_env.max_number
    for guess, hint in ta_env.state.game_state["guess_history"]:
        if "higher" in hint:
            low = max(low, guess + 1)
        elif "lower" in hint:
            high = min(high, guess - 1)
    return f"[{(low + high) // 2}]"


def _pegs(code: tuple[int, ...], guess: tuple[int, ...]) -> tuple[int, int]:
    black = sum(c == g for c, g in zip(code, guess))
    common = sum(min(code.count(d), guess.count(d)) for d in set(guess))
    return black, common - black


def mastermind_expert(ta_env: Any, player: int, rng: np.random.Generator) -> str:
    """Play a random code consistent with every feedback so far (uses only what the agent saw)."""
    game_state = ta_env.state.game_state
    length, numbers = game_state["code_length"], game_state["num_numbers"]
    digits = range(1, numbers + 1)
    codes = (
        itertools.product(digits, repeat=length)
        if game_state["duplicate_numbers"]
        else itertools.permutations(digits, length)
    )
    history = [(tuple(h["guess"]), (h["black"], h["white"])) for h in game_state["history"]]
    consistent = [c for c in codes if all(_pegs(c, g) == fb for g, fb in history)]
    choice = consistent[int(rng.integers(len(consistent)))]
    return "[" + " ".join(map(str, choice)) + "]"


def nim_expert(ta_env: Any, player: int, rng: np.random.Generator) -> str:
    """Bouton's theorem: move to a position whose nim-sum is 0; from a lost position take one."""
    piles = ta_env.state.game_state["piles"]
    total = 0
    for n in piles:
        total ^= n
    winning = [(i, n - (n ^ total)) for i, n in enumerate(piles) if total and (n ^ total) < n]
    if winning:
        i, q = winning[int(rng.integers(len(winning)))]
        return f"[{i} {q}]"
    nonempty = [i for i, n in enumerate(piles) if n > 0]
    return f"[{nonempty[int(rng.integers(len(nonempty)))]} 1]"


def rush_hour_expert(ta_env: Any, player: int, rng: np.random.Generator) -> str:
    """Breadth-first search over car positions; the first move of a shortest solution."""
    vehicles = ta_env.state.game_state["vehicles"]
    cars = {vid: (v.row, v.col, v.length, v.horizontal) for vid, v in vehicles.items()}
    names = sorted(cars)
    start = tuple((cars[n][0], cars[n][1]) for n in names)

    def moves(positions: tuple[tuple[int, int], ...]) -> Iterator[tuple[str, tuple[tuple[int, int], ...]]]:
        grid = set()
        for name, (r, c) in zip(names, positions):
            length, horizontal = cars[name][2], cars[name][3]
            grid.update((r + (0 if horizontal else i), c + (i if horizontal else 0)) for i in range(length))
        for k, (name, (r, c)) in enumerate(zip(names, positions)):
            length, horizontal = cars[name][2], cars[name][3]
            for sign, step in (("+", 1), ("-", -1)):
                front = (r, c + (length if step > 0 else -1)) if horizontal else (r + (length if step > 0 else -1), c)
                exits = name == "X" and step > 0 and front == (2, 6)
                if exits or (0 <= front[0] < 6 and 0 <= front[1] < 6 and front not in grid):
                    moved = (r, c + step) if horizontal else (r + step, c)
                    yield f"[{name}{sign}]", positions[:k] + (moved,) + positions[k + 1 :]

    x = names.index("X")
    first: dict[tuple[tuple[int, int], ...], str | None] = {start: None}
    queue = deque([start])
    while queue:
        positions = queue.popleft()
        for move, nxt in moves(positions):
            if nxt in first:
                continue
            first[nxt] = first[positions] or move
            if nxt[x][0] == 2 and nxt[x][1] >= 6 - cars["X"][2]:
                return first[nxt]
            queue.append(nxt)
    raise AssertionError("Rush Hour expert: no solution from this position")
