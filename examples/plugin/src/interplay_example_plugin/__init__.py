"""An example interplay plugin: guess a secret number, told "higher" or "lower" after each guess."""

from __future__ import annotations

import re
from typing import Any

from interplay import register
from interplay.envs.core import TextEnv

_INTEGER = re.compile(r"-?\d{1,12}")


class GuessNumberEnv(TextEnv):
    """Guess a secret integer in [1, high]; after each wrong guess the reply says higher or lower.

    Observation: "guess 1-100" at reset, then "higher", "lower" or a format hint.
    Action: any text; the last integer in it is the guess.
    Reward: 1.0 when the guess is right (terminated), else 0.
    Truncation: after ``max_turns`` guesses.
    Kwargs: ``high`` (default 100), ``max_turns`` (default 7, enough for binary search on 1-100).
    """

    system_prompt = "Guess the secret number. Reply with one integer."

    def __init__(self, high: int = 100, max_turns: int = 7, render_mode: str | None = "ansi") -> None:
        if not isinstance(high, int) or high < 2:
            raise ValueError(f"high must be an integer >= 2, got {high!r}.")
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.high = high
        self.low_bound, self.high_bound = 1, high
        self.secret = 1
        self.last_guess: int | None = None

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        self.secret = int(self.np_random.integers(1, self.high + 1))
        self.low_bound, self.high_bound = 1, self.high
        self.last_guess = None
        return f"guess 1-{self.high}", {}

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        numbers = _INTEGER.findall(action[-10_000:])
        if not numbers:
            return f"no number found; reply with one integer in 1-{self.high}", 0.0, False, {
                "invalid_action": True
            }
        guess = int(numbers[-1])
        self.last_guess = guess
        if guess == self.secret:
            return "correct", 1.0, True, {"success": True}
        if guess < self.secret:
            self.low_bound = max(self.low_bound, guess + 1)
            return "higher", 0.0, False, {}
        self.high_bound = min(self.high_bound, guess - 1)
        return "lower", 0.0, False, {}

    def _render(self) -> str:
        return f"secret {self.secret}, last guess {self.last_guess}, turn {self.turn}/{self.max_turns}"

    def outcome(self) -> str:
        return str(self.last_guess)

    def expert_action(self) -> str:
        return str((self.low_bound + self.high_bound) // 2)  # binary search


def register_envs() -> None:
    register(
        "example/GuessNumber-v0",
        GuessNumberEnv,
        "Guess a number in 1-100 with higher/lower hints (example plugin).",
    )
