"""MathFeedback-v0: math problems solved over several attempts with a teacher's feedback."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from interplay.envs.feedback import FeedbackEnv, Task
from interplay.envs.parsing import answers_match, normalize_answer, parse_number
from interplay.envs.teachers import Teacher, numeric_hint

DIFFICULTY_NAMES = {"easy": 1, "medium": 2, "hard": 3}


def arithmetic(rng: np.random.Generator, difficulty: int) -> Task:
    """1: a + b or a - b with numbers below 100; 2: three-digit sums/differences or a two-digit
    times one-digit product; 3: four-digit sums/differences or three-digit times two-digit."""
    if difficulty == 1:
        a, b = (int(x) for x in rng.integers(1, 100, size=2))
        op = "+-"[int(rng.integers(2))]
    elif difficulty == 2:
        op = "+-*"[int(rng.integers(3))]
        a, b = (
            (int(rng.integers(10, 100)), int(rng.integers(2, 10)))
            if op == "*"
            else tuple(int(x) for x in rng.integers(100, 1000, size=2))
        )
    else:
        op = "+-*"[int(rng.integers(3))]
        a, b = (
            (int(rng.integers(100, 1000)), int(rng.integers(10, 100)))
            if op == "*"
            else tuple(int(x) for x in rng.integers(1000, 10000, size=2))
        )
    result = a + b if op == "+" else a - b if op == "-" else a * b
    shown = "×" if op == "*" else op
    return Task(f"Compute {a} {shown} {b}.", str(result), f"{a} {shown} {b} = {result}")


def linear(rng: np.random.Generator, difficulty: int) -> Task:
    """1: x + b = c or a·x = c with 0 <= x <= 10; 2: a·x + b = c with -10 <= x <= 10;
    3: a·x + b = c·x + d with -20 <= x <= 20."""
    if difficulty == 1:
        x, b = int(rng.integers(0, 11)), int(rng.integers(1, 10))
        if rng.integers(2):
            return Task(f"Solve for x: x + {b} = {x + b}", str(x), f"x = {x + b} - {b} = {x}")
        return Task(f"Solve for x: {b}x = {b * x}", str(x), f"x = {b * x} / {b} = {x}")
    a, x = (
        int(rng.integers(2, 10)),
        int(rng.integers(-10 if difficulty == 2 else -20, 11 if difficulty == 2 else 21)),
    )
    b = int(rng.integers(-20, 21))
    sign_b = f"+ {b}" if b >= 0 else f"- {-b}"
    if difficulty == 2:
        c = a * x + b
        return Task(f"Solve for x: {a}x {sign_b} = {c}", str(x), f"{a}x = {c - b}, so x = {x}")
    c = int(rng.integers(1, 10))
    c = c if c != a else c + 1  # keep the x terms from cancelling
    d = a * x + b - c * x
    sign_d = f"+ {d}" if d >= 0 else f"- {-d}"
    return Task(f"Solve for x: {a}x {sign_b} = {c}x {sign_d}", str(x), f"{a - c}x = {d - b}, so x = {x}")


def fractions(rng: np.random.Generator, difficulty: int) -> Task:
    """1: a/b + c/b (same denominator up to 9); 2: a/b ± c/d with denominators up to 9;
    3: a/b × c/d or a/b ÷ c/d with denominators up to 12. Answers in lowest terms."""
    top = 9 if difficulty < 3 else 12
    b = int(rng.integers(2, top + 1))
    d = b if difficulty == 1 else int(rng.integers(2, top + 1))
    a, c = int(rng.integers(1, b)), int(rng.integers(1, d))
    ops = "+" if difficulty == 1 else "+-" if difficulty == 2 else "×÷"
    op = ops[int(rng.integers(len(ops)))]
    x, y = Fraction(a, b), Fraction(c, d)
    result = {"+": x + y, "-": x - y, "×": x * y, "÷": x / y}[op]
    shown = f"{x} {op} {y}"  # str(Fraction): "3" or "-1/2"
    return Task(
        f"Compute {shown} in lowest terms.", str(result), f"{shown} = {result}", {"lowest_terms": True}
    )


_NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana"]
_ITEMS = ["apples", "marbles", "stickers", "books", "coins", "pencils"]


def word(rng: np.random.Generator, difficulty: int) -> Task:
    """1: one addition or subtraction; 2: two steps (+, -); 3: groups (×) then a change (±)."""
    name, other = (str(s) for s in rng.choice(_NAMES, size=2, replace=False))
    item = str(rng.choice(_ITEMS))
    if difficulty == 1:
        a, b = int(rng.integers(2, 20)), int(rng.integers(1, 10))
        if rng.integers(2):
            return Task(
                f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?",
                str(a + b),
                f"{a} + {b} = {a + b}",
            )
        a += b
        return Task(
            f"{name} has {a} {item} and gives {b} to {other}. How many {item} does {name} have left?",
            str(a - b),
            f"{a} - {b} = {a - b}",
        )
    if difficulty == 2:
        a, b, c = int(rng.integers(10, 50)), int(rng.integers(2, 20)), int(rng.integers(1, 10))
        return Task(
            f"{name} has {a} {item}, buys {b} more, then gives {c} to {other}. "
            f"How many {item} does {name} have?",
            str(a + b - c),
            f"{a} + {b} - {c} = {a + b - c}",
        )
    groups, size = int(rng.integers(3, 13)), int(rng.integers(3, 13))
    extra = int(rng.integers(1, min(20, groups * size)))
    return Task(
        f"{name} has {groups} boxes with {size} {item} each, then gives {extra} {item} to {other}. "
        f"How many {item} does {name} have?",
        str(groups * size - extra),
        f"{groups} × {size} - {extra} = {groups * size - extra}",
    )


FAMILIES: dict[str, Callable[[np.random.Generator, int], Task]] = {
    "arithmetic": arithmetic,
    "linear": linear,
    "fractions": fractions,
    "word": word,
}


def load_tasks(
    dataset: str | os.PathLike[str] | Iterable[dict[str, Any]],
    question_key: str = "question",
    answer_key: str = "answer",
    solution_key: str = "solution",
) -> list[Task]:
    """Tasks from a JSONL file, a ``datasets.Dataset`` or a list of dicts.

    ``question_key`` and ``answer_key`` name required columns; ``solution_key`` an optional one.
    A ``difficulty`` column, when present, goes to the task's metadata.
    """
    if isinstance(dataset, (str, os.PathLike)):
        path = Path(dataset)
        if not path.is_file():
            raise FileNotFoundError(
                f"dataset file {str(path)!r} not found (expected a JSONL file, one object a line)."
            )
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(
                        f"{path}:{number} is not valid JSON ({e.msg}); expected one object a line."
                    ) from None
    elif hasattr(dataset, "column_names") or isinstance(dataset, Sequence):
        rows = dataset
    else:
        raise TypeError(
            f"dataset must be a JSONL path, a datasets.Dataset or a list of dicts, got {type(dataset).__name__}."
        )
    tasks = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"dataset row {index} is a {type(row).__name__}, expected a dict of columns.")
        for key, kwarg in ((question_key, "question_key"), (answer_key, "answer_key")):
            if key not in row:
                raise ValueError(
                    f"dataset row {index} has no column {key!r} (columns found: {sorted(row)}); "
                    f"pass {kwarg}= to name the column that holds it."
                )
        answer = str(row[answer_key]).strip()
        if not answer:
            raise ValueError(f"dataset row {index} has an empty {answer_key!r}.")
        metadata: dict[str, Any] = {"family": "dataset", "index": index}
        if "difficulty" in row:
            metadata["difficulty"] = row["difficulty"]
        solution = row.get(solution_key)
        tasks.append(
            Task(str(row[question_key]), answer, None if solution is None else str(solution), metadata)
        )
    if not tasks:
        raise ValueError("dataset is empty: it needs at least one row with a question and an answer.")
    return tasks


class MathFeedbackEnv(FeedbackEnv):
    """Solve a math problem in up to ``max_attempts`` attempts, with feedback after wrong ones.

    ## Description

    A generated problem (four families at three difficulties) or a row of a dataset, played as a
    ``FeedbackEnv`` episode: after a wrong answer the teacher says what is wrong without the answer.

    ## Action Space

    Any text (``AnyText``): a reply with the answer in ``\\boxed{}``, on an "Answer: ..." line, or as
    its last number. Integers, decimals, fractions (``3/4``, ``\\frac{3}{4}``), ``x = 3`` are read.
    Fractions must be given in lowest terms.

    ## Observation Space

    Text (``AnyText``): the problem and "Give your final answer as \\boxed{...}."; after a wrong
    attempt the teacher's feedback (rule teacher: too high/low and by how much, wrong sign, which
    digits are right, not in lowest terms, not a number) and the attempts left.

    ## Rewards

    ``discount ** (attempt - 1)`` for a correct answer, else 0.

    ## Starting State

    A family drawn uniformly among ``families``, then a problem of it at ``difficulty``, both from the
    reset seed; with a dataset, a row drawn by the reset seed (``reset(options={"index": i})`` picks
    row i). Info at reset: ``family``, ``difficulty`` (generated problems).

    ## Held-out Tasks

    Held-out problems are the same generator at the held-out seeds (``interplay.seeds``): the same
    distribution as training, at disjoint seeds, but not disjoint problems. The task space is small at
    low difficulty, so many held-out problems are also training problems: of 1,000 held-out
    problems, about 55% at difficulty 1 (every "linear" and "fractions" problem: those families have
    about 200 problems each), 34% at difficulty 2 and 18% at difficulty 3 also occur among 10,000
    training problems (``benchmarks/split_overlap.py``, figures in ``benchmarks/RESULTS.md``). With
    a dataset, train and held-out seeds draw rows of the same dataset: split it yourself.

    ## Episode End

    Termination: correct answer, or attempts used up (an unreadable reply costs one). Never
    truncated.

    ## Arguments

    - ``difficulty``: 1-3 or "easy"/"medium"/"hard" (default 1: numbers below 100).
    - ``families``: a subset of "arithmetic", "linear", "fractions", "word" (default all, drawn
      uniformly).
    - ``dataset``: instead of generated problems, a JSONL path, a ``datasets.Dataset`` or a list of
      dicts; with ``question_key``, ``answer_key``, ``solution_key``.
    - FeedbackEnv's ``max_attempts`` (3), ``teacher`` ("rule"), ``discount`` (1.0),
      ``expert_shows_solution`` (False), ``instructions`` (True), ``render_mode`` ("ansi").

    ## Version History

    - v0: the first version.
    """

    def __init__(
        self,
        difficulty: int | str | None = None,
        families: str | Sequence[str] | None = None,
        dataset: str | os.PathLike[str] | Iterable[dict[str, Any]] | None = None,
        question_key: str = "question",
        answer_key: str = "answer",
        solution_key: str = "solution",
        max_attempts: int = 3,
        teacher: str | Teacher | Callable[[str], str] = "rule",
        discount: float = 1.0,
        expert_shows_solution: bool = False,
        render_mode: str | None = "ansi",
        instructions: bool = True,
    ) -> None:
        super().__init__(max_attempts, teacher, discount, expert_shows_solution, render_mode, instructions)
        if dataset is not None:
            if families is not None or difficulty is not None:
                raise ValueError(
                    "pass either dataset= or families=/difficulty= (generated problems), not both."
                )
            self.tasks: list[Task] | None = load_tasks(dataset, question_key, answer_key, solution_key)
            return
        self.tasks = None
        level = DIFFICULTY_NAMES.get(difficulty, difficulty) if isinstance(difficulty, str) else difficulty
        if level is None:
            level = 1
        if not isinstance(level, int) or level not in (1, 2, 3):
            raise ValueError(
                f"difficulty must be 1, 2, 3 or one of {list(DIFFICULTY_NAMES)}, got {difficulty!r}."
            )
        self.difficulty = level
        names = [families] if isinstance(families, str) else list(families or FAMILIES)
        unknown = [f for f in names if f not in FAMILIES]
        if unknown or not names:
            raise ValueError(f"unknown families {unknown}; choose a non-empty subset of {list(FAMILIES)}.")
        self.families = names

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        if options and "index" in options:
            if self.tasks is None or not 0 <= options["index"] < len(self.tasks):
                raise ValueError(
                    f"options['index'] needs a dataset and 0 <= index < {len(self.tasks or [])}."
                )
            options = {**options, "task": self.tasks[options["index"]]}
        return super()._reset(options)

    def sample_task(self, rng: np.random.Generator) -> Task:
        if self.tasks is not None:
            return self.tasks[int(rng.integers(len(self.tasks)))]
        family = self.families[int(rng.integers(len(self.families)))]
        task = FAMILIES[family](rng, self.difficulty)
        return Task(
            task.question,
            task.answer,
            task.solution,
            {**task.metadata, "family": family, "difficulty": self.difficulty},
        )

    def is_correct(self, task: Task, answer: str) -> bool:
        if task.metadata.get("lowest_terms") and _unreduced(answer):
            return False
        return answers_match(answer, task.answer)

    def rule_hint(self, task: Task, answer: str) -> str:
        ref, att = parse_number(task.answer), parse_number(answer)
        if task.metadata.get("lowest_terms") and att is not None and att == ref and _unreduced(answer):
            return "The value is right, but the fraction is not in lowest terms."
        hint = numeric_hint(task.answer, answer)
        written = normalize_answer(answer)
        if ref is not None and ref.denominator != 1 and "/" in written and att is not None:
            top, bottom = (int(s) for s in written.lstrip("-").split("/"))
            if top == abs(ref.numerator) and bottom != ref.denominator:
                hint += " The numerator is right, the denominator is not."
            elif bottom == ref.denominator and top != abs(ref.numerator):
                hint += " The denominator is right, the numerator is not."
        if task.metadata.get("family") == "linear":
            hint += " Put your x back into the equation to check it."
        return hint


def _unreduced(answer: str) -> bool:
    written = normalize_answer(answer)
    if "/" not in written or parse_number(written) is None:
        return False
    top, bottom = (int(s) for s in written.lstrip("-").split("/"))
    return bottom == 1 or math.gcd(top, bottom) != 1
