"""CodeBreaker-v0: find a secret digit code from a teacher's digit-by-digit hints.

The cheapest honest demo of learning from feedback: the reply after each wrong guess carries
information the agent must use in context, and a small model learns the 3-digit version quickly.
Built on the feedback-episode mechanism like MathFeedback.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np

from interplay.envs.feedback import FeedbackEnv, Task
from interplay.seeds import EVAL_SEED_START

SPLITS = ("by_seed", "all", "train", "eval")
OUTCOMES = ("guess", "hints")
#: One code in HELD_OUT_EVERY belongs to the "eval" split, the others to "train".
HELD_OUT_EVERY = 5
#: The key of the permutation that draws the held-out codes (fixed: the split is part of the task).
SPLIT_KEY = 20250419
_ROUNDS = 6


def _round(key: int, digits: int, round_: int, half: int) -> int:
    data = f"{key}:{digits}:{round_}:{half}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def code_rank(code: str, key: int = SPLIT_KEY) -> int:
    """The code's place in a fixed pseudo-random permutation of all ``10**len(code)`` codes.

    The permutation is a keyed Feistel network over the smallest even number of bits that holds
    every code, walked in cycles until it lands back among the codes, so it is a bijection of
    ``range(10**digits)`` computed one code at a time (no table of 10**8 codes for 8 digits).
    """
    digits, size = len(code), 10 ** len(code)
    bits = (size - 1).bit_length()
    half_bits = (bits + 1) // 2
    mask = (1 << half_bits) - 1
    x = int(code)
    while True:  # cycle walking: at most a few passes, 10**d fills more than a quarter of 4**half_bits
        left, right = x >> half_bits, x & mask
        for r in range(_ROUNDS):
            left, right = right, left ^ (_round(key, digits, r, right) & mask)
        x = (left << half_bits) | right
        if x < size:
            return x


def code_split(code: str) -> str:
    """The split a code belongs to: the first fifth of all codes in a fixed pseudo-random
    permutation (``code_rank``) is held out ("eval"), the rest is "train". Exactly
    ``10**digits // 5`` codes are held out, drawn without regard to their digits, so every digit
    position takes every value about equally often in both parts."""
    return "eval" if code_rank(code) < 10 ** len(code) // HELD_OUT_EVERY else "train"


def digit_hints(secret: str, guess: str) -> str:
    """Per digit: ``=`` right, ``+`` the secret digit is higher, ``-`` it is lower."""
    return "".join("=" if g == s else "+" if s > g else "-" for s, g in zip(secret, guess))


class CodeBreakerEnv(FeedbackEnv):
    """Guess a secret code of ``digits`` digits; after a wrong guess, a hint per digit.

    ## Description

    A secret code of ``digits`` digits is drawn at reset. Each wrong guess gets a hint per digit, so the
    agent must use what the earlier replies told it. Built on ``FeedbackEnv`` (the rule teacher gives
    the digit hints).

    ## Action Space

    Any text (``AnyText``); the last run of exactly ``digits`` digits in it is the guess.

    ## Observation Space

    Text (``AnyText``): ``code 3 digits`` at reset; after a wrong guess the hint string, one character
    per digit (``=`` right, ``+`` the secret digit is higher, ``-`` lower) and the attempts left, e.g.
    ``+=- (3 attempts left)``.

    ## Rewards

    1.0 for finding the code (``discount ** (attempt - 1)`` with a discount), else 0.

    ## Starting State

    A code drawn uniformly from the codes of the episode's split (below) by the reset seed. Info at
    reset: ``split``, the part the code belongs to.

    ## Held-out Tasks

    Codes come from a fixed partition of all ``10**digits`` codes: the first fifth of a fixed
    pseudo-random permutation (``code_split``, ``code_rank``) is held out ("eval"), the other four
    fifths are "train", so no held-out code is ever a training code, and every digit position takes
    every value about equally often in both parts (``tests/test_codebreaker.py`` checks it). With
    ``split="by_seed"`` the held-out seeds (``interplay.seeds.EVAL_SEED_START`` and up) draw "eval"
    codes and the others "train" codes.

    ## Episode End

    Termination: the code is found or the attempts are used up (an unreadable reply costs one).

    ## Expert

    Bisects each digit's remaining range using only the hints seen so far, so it is imitable from the
    observations (it solves every 3-digit code within 4 attempts).

    ## Arguments

    - ``digits``: 1 to 8 (default 3).
    - ``max_attempts``: default 4.
    - ``split``: "by_seed" (default, see Held-out Tasks), or "train", "eval" or "all" to fix the part
      whatever the seed.
    - ``teacher``: "rule" (the digit hints), "none" (only "incorrect"), "self" (asked to critique its
      own guess before retrying), "decoy" (the digit hints of the guess against another code: same
      format, no information about the secret; a control) or a model teacher.
    - ``outcome``: what ``info["outcome"]`` names at the end: "guess" (default; the last guess, one of
      ``10**digits``) or "hints" (the last guess's hint pattern, one of ``3**digits``, "=" per digit
      when solved): a small outcome space for outcome-count exploration bonuses.
    - ``discount``: default 1.0.
    - ``instructions``: default True; False drops the system prompt and the "(n attempts left)"
      notes, for small character-level models (see ``FeedbackEnv``).
    - ``render_mode``: "ansi" (default) or None.

    ## Version History

    - v0: the held-out fifth is a pseudo-random permutation's first fifth. (Before, a code was held
      out when ``(7919 n + digits) % 5 == 0``: exactly the codes ending in two of the ten digits, a
      shifted distribution; figures measured on CodeBreaker before the change used that split.)
    """

    system_prompt = (
        "Find the secret code. Reply with a guess of all its digits. After a wrong guess each digit "
        "gets a hint: = right, + the secret digit is higher, - it is lower."
    )
    answer_instruction = ""
    format_help = "Reply with the digits of your guess, e.g. 123."

    def __init__(
        self,
        digits: int = 3,
        max_attempts: int = 4,
        split: str = "by_seed",
        teacher: Any = "rule",
        discount: float = 1.0,
        render_mode: str | None = "ansi",
        instructions: bool = True,
        outcome: str = "guess",
    ) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome={outcome!r} is not an outcome kind; use one of {OUTCOMES}.")
        if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 8:
            raise ValueError(f"digits must be an integer from 1 to 8, got {digits!r}.")
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not a split; use one of {SPLITS}.")
        super().__init__(max_attempts=max_attempts, teacher=teacher, discount=discount, render_mode=render_mode,
                         instructions=instructions)
        self.digits = digits
        self.split = split
        self.outcome_kind = outcome
        self._guess_pattern = re.compile(rf"(?<!\d)\d{{{digits}}}(?!\d)")
        self.format_help = f"Reply with the {digits} digits of your guess, e.g. {'123456789'[:digits]}."
        self._ranges: list[tuple[int, int]] = []
        self._split = split

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        if self.split == "by_seed":
            self._split = "eval" if seed is not None and seed >= EVAL_SEED_START else "train"
        return super().reset(seed=seed, options=options)

    def sample_task(self, rng: np.random.Generator) -> Task:
        while True:  # rejection sampling: the split holds ~80% or ~20% of the codes
            code = "".join(str(d) for d in rng.integers(0, 10, size=self.digits))
            if self._split == "all" or code_split(code) == self._split:
                return Task(f"code {self.digits} digits", code, metadata={"split": code_split(code)})

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        self._ranges = [(0, 9)] * self.digits
        return super()._reset(options)

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        result = super()._step(action)
        guess = self._answer
        if guess is not None and self.task is not None:  # narrow the expert's per-digit ranges
            for i, (s, g) in enumerate(zip(self.task.answer, guess)):
                low, high = self._ranges[i]
                g_int = int(g)
                self._ranges[i] = (g_int, g_int) if s == g else (max(low, g_int + 1), high) if s > g else (
                    low, min(high, g_int - 1))
        return result

    def extract_answer(self, reply: str) -> str | None:
        guesses = self._guess_pattern.findall(reply[-10_000:])
        return guesses[-1] if guesses else None

    def is_correct(self, task: Task, answer: str) -> bool:
        return answer == task.answer

    def rule_hint(self, task: Task, answer: str) -> str:
        return digit_hints(task.answer, answer)

    def outcome(self) -> str:
        if self.outcome_kind == "hints" and self._answer is not None and self.task is not None:
            return digit_hints(self.task.answer, self._answer)
        return super().outcome()

    def reveals_answer(self, task: Task, text: str) -> bool:
        return task.answer in text

    def expert_action(self) -> str | None:
        if self.task is None:
            return None
        return "".join(str((low + high) // 2) for low, high in self._ranges)
