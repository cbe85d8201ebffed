"""Feedback episodes: a single-turn verifiable task + a teacher -> a multi-turn episode.

DESIGN.md, "Feedback episodes". A teacher who knows the answer critiques each wrong attempt
without giving the answer away; the student retries up to ``max_attempts`` times. Every teacher's
text passes a leak guard that replaces feedback revealing the reference answer.

Building a new task family on :class:`FeedbackEnv` (math, reasoning-gym, a user's dataset):

- ``sample_task(rng) -> Task`` (required): draw a task with the given numpy Generator only, so
  that seeding works. ``reset(options={"task": Task(...)})`` plays a given task instead.
- ``extract_answer(reply) -> str | None``: read the final answer; None makes the reply invalid.
  Default: ``\\boxed{...}``, else an "Answer: ..." line, else the last number. Override it (and
  ``answer_instruction``/``format_help``) for answers that are not numbers.
- ``is_correct(task, answer) -> bool``: the verifier. Default: numbers compared exactly, other
  answers through a guarded math-verify (``parsing.answers_match``).
- ``rule_hint(task, answer) -> str``: what the rule teacher says about a wrong answer. Default:
  ``numeric_hint`` (direction, closeness, sign, digits) for numeric references, else a plain
  "incorrect". It must not contain the answer; the guard catches it if it does.
- ``reveals_answer(task, text) -> bool``: the leak detector; override for answers where
  ``reveals_answer`` (below) is too strict (e.g. one-letter multiple-choice answers).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from interplay.envs.core import TextEnv
from interplay.envs.parsing import (
    answers_match,
    clean_math_text,
    extract_answer,
    normalize_answer,
    parse_number,
)

#: What ``outcome()`` returns when no answer was read from the last reply.
NO_ANSWER = "<none>"
#: Teacher feedback longer than this is cut before it reaches the student.
MAX_FEEDBACK_CHARS = 2000


@dataclass(frozen=True)
class Task:
    """A single-turn verifiable task. ``metadata`` (e.g. family, difficulty) goes to reset's info."""

    question: str
    answer: str
    solution: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Teacher(Protocol):
    def feedback(self, task: Task, attempt_text: str, extracted_answer: str, attempt_index: int) -> str:
        """Feedback on a wrong attempt (``attempt_index`` counts from 1)."""
        ...


class NoTeacher:
    """Only "Incorrect, try again." — the self-correction baseline."""

    def feedback(self, task: Task, attempt_text: str, extracted_answer: str, attempt_index: int) -> str:
        return "Incorrect, try again."


class SelfCritique:
    """No teacher: after a wrong attempt the student is asked to critique its own answer, then retry.

    The student's next reply holds its critique and a new answer; the answer is read from it as
    usual (the last one). The self-correction baseline with an explicit reflection step.
    """

    prompt = "Incorrect. Say what was wrong with your answer, then try again."

    def feedback(self, task: Task, attempt_text: str, extracted_answer: str, attempt_index: int) -> str:
        return self.prompt


class RuleTeacher:
    """Deterministic feedback from ``hint(task, extracted_answer)``, supplied by the task family."""

    def __init__(self, hint: Callable[[Task, str], str]) -> None:
        self.hint = hint

    def feedback(self, task: Task, attempt_text: str, extracted_answer: str, attempt_index: int) -> str:
        return self.hint(task, extracted_answer)


MODEL_TEACHER_PROMPT = """You are a teacher. A student is solving this problem:
{question}

Reference answer (secret): {answer}
{solution}
The student's attempt {attempt_index}:
{attempt}

The student's final answer was {extracted}, which is wrong. In one or two sentences, tell the \
student what to check or fix. Never state the reference answer or the final result."""


class ModelTeacher:
    """Feedback from any callable ``fn(prompt: str) -> str``: a plain function, an HF model, an agent.

    The prompt (``template``, formatted with question, answer, solution, attempt, extracted,
    attempt_index) includes the reference answer, so the environment's leak guard checks what
    comes back. Wrap an agent with e.g. ``ModelTeacher(lambda p: agent.reply(p))``.
    """

    def __init__(
        self, fn: Callable[[str], str], template: str = MODEL_TEACHER_PROMPT, max_attempt_chars: int = 2000
    ) -> None:
        if not callable(fn):
            raise TypeError(
                f"ModelTeacher needs a callable prompt -> feedback text, got {type(fn).__name__}."
            )
        self.fn = fn
        self.template = template
        self.max_attempt_chars = max_attempt_chars

    def prompt(self, task: Task, attempt_text: str, extracted_answer: str, attempt_index: int) -> str:
        return self.template.format(
            question=task.question,
            answer=task.answer,
            solution=f"Reference solution: {task.solution}\n" if task.solution else "",
            attempt=attempt_text[-self.max_attempt_chars :],  # the end holds the final answer
            extracted=extracted_answer,
            attempt_index=attempt_index,
        )

    def feedback(self, task: Task, attempt_text: str, extracted_answer: str, attempt_index: int) -> str:
        text = self.fn(self.prompt(task, attempt_text, extracted_answer, attempt_index))
        if not isinstance(text, str):
            raise TypeError(f"the ModelTeacher's function must return a str, got {type(text).__name__}.")
        return text


def make_teacher(teacher: str | Teacher | Callable[[str], str], hint: Callable[[Task, str], str]) -> Teacher:
    """``"rule"`` -> RuleTeacher(hint), ``"none"`` -> NoTeacher, ``"self"`` -> SelfCritique, a Teacher as is,
    a callable -> ModelTeacher."""
    if teacher == "rule":
        return RuleTeacher(hint)
    if teacher == "none":
        return NoTeacher()
    if teacher == "self":
        return SelfCritique()
    if isinstance(teacher, Teacher):
        return teacher
    if callable(teacher):
        return ModelTeacher(teacher)
    raise ValueError(
        f"teacher must be 'rule', 'none', 'self', a Teacher (an object with .feedback(task, attempt_text, "
        f"extracted_answer, attempt_index)) or a callable prompt -> feedback text; got {teacher!r:.80}."
    )


# ---- the rule teacher's numeric hints ----------------------------------------------------------


def numeric_hint(reference: str, answer: str) -> str:
    """Feedback on a wrong numeric ``answer``: sign, direction, closeness, whole-number-ness and
    which digits are right. Written without digits or number words (except a digit mask of the
    student's own right digits, which is shorter than the answer), so it cannot reveal it."""
    ref, att = parse_number(reference), parse_number(answer)
    if ref is None:
        return "That is not the answer."
    if att is None:
        return "That is not a number; the answer is a number."
    if att == ref:
        return "The value is right, but not in the form asked for."
    if att == -ref:
        return "The size is right, but the sign is wrong."
    hints = []
    if ref != 0 and att != 0 and (att < 0) != (ref < 0):
        hints.append(f"Check the sign: the answer is {'negative' if ref < 0 else 'positive'}.")
    direction = "too high" if att > ref else "too low"
    if ref == 0:
        hints.append(f"Your answer is {direction}.")
    else:
        error = abs(att - ref) / abs(ref)
        closeness = (
            "very close (within a percent)"
            if error <= Fraction(1, 100)
            else "close (within a tenth)"
            if error <= Fraction(1, 10)
            else "off by less than half"
            if error <= Fraction(1, 2)
            else "far off"
        )
        hints.append(f"Your answer is {direction}, {closeness}.")
    if ref.denominator == 1 and att.denominator != 1:
        hints.append("The answer is a whole number.")
    elif ref.denominator != 1 and att.denominator == 1:
        hints.append("The answer is not a whole number.")
    elif ref.denominator == 1:
        hints.append(_digit_hint(abs(ref.numerator), abs(att.numerator)))
    return " ".join(h for h in hints if h)


def _digit_hint(ref: int, att: int) -> str:
    r, a = str(ref), str(att)
    if len(a) != len(r):
        return f"The answer has {'more' if len(r) > len(a) else 'fewer'} digits."
    mask = "".join(x if x == y else "_" for x, y in zip(a, r))
    # Some but not all digits right: the mask has a gap, so no digit run in it is the answer.
    return f"Digits already right: {mask}" if mask.strip("_") and "_" in mask else ""


# ---- the leak guard ---------------------------------------------------------------------------

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen \
sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = [(10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")]
_TEXT_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_TEXT_FRACTION = re.compile(r"(\d+)\s*/\s*(\d+)")


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 10**12: 1234 -> "one thousand two hundred thirty four"."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for scale, name in _SCALES:
        if n >= scale:
            rest = n % scale
            return f"{number_to_words(n // scale)} {name}" + (f" {number_to_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def reveals_answer(reference: str, text: str) -> bool:
    """Whether ``text`` states the reference answer, in any common spelling.

    Numeric references: any number in the text (after joining "1,234"/"1 234", reading
    ``\\frac{a}{b}`` and "a/b") with the answer's absolute value, a decimal that rounds to it,
    its digits split by spaces or commas, or its value in words. Other references: the normalised
    answer as a whole word, ignoring case and spaces. Deliberately strict: a false alarm costs a
    generic message, a miss gives the answer away.
    """
    value = parse_number(reference)
    cleaned = clean_math_text(text)
    if value is None:
        ref = " ".join(normalize_answer(reference).casefold().split())
        if not ref:
            return False
        flat = " ".join(cleaned.casefold().split())
        if re.search(rf"(?<!\w){re.escape(ref)}(?!\w)", flat):
            return True
        # "x^2 + 1" written "x^2+1"; word-like answers only as whole words ("paris" is in "comparison").
        return not ref.isalnum() and "".join(ref.split()) in "".join(flat.split())
    target = abs(value)
    joined = re.sub(r"(?<=\d)[, ](?=\d{3}(?!\d))", "", cleaned)
    for m in _TEXT_FRACTION.finditer(joined):
        if int(m[2]) != 0 and len(m[0]) < 100 and Fraction(int(m[1]), int(m[2])) == target:
            return True
    for m in _TEXT_NUMBER.finditer(joined):
        if len(m[0]) > 100:
            continue
        number = Fraction(m[0])
        decimals = len(m[0].partition(".")[2])
        if number == target or (decimals >= 2 and abs(number - target) <= Fraction(1, 2 * 10**decimals)):
            return True
    if target.denominator == 1:
        digits = str(target.numerator)
        spread = re.sub(r"(?<=\d)[\s,.'_-]+(?=\d)", "", cleaned)
        if len(digits) > 1 and re.search(rf"(?<!\d){digits}(?!\d)", spread):
            return True
        if target < 10**12:
            words = " ".join(re.sub(r"[^a-z]+", " ", cleaned.lower().replace(" and ", " ")).split())
            return re.search(rf"(?<![a-z]){number_to_words(target.numerator)}(?![a-z])", words) is not None
    return False


# ---- the environment --------------------------------------------------------------------------


class FeedbackEnv(TextEnv):
    """A single-turn task played over up to ``max_attempts`` attempts with a teacher's feedback.

    Observation: first the question and a one-line answer-format instruction; after a wrong
    attempt the teacher's feedback and the attempts left; after a reply with no readable answer,
    the accepted formats.
    Action: the agent's whole reply; the answer is read by ``extract_answer``.
    Reward: ``discount ** (attempt - 1)`` when an attempt is correct, else 0.
    Termination: on a correct answer or when the attempts are used up (an unreadable reply costs
    an attempt too). Never truncated.
    Info: reset has the task's ``metadata``; every step ``attempt``, ``correct``,
    ``extracted_answer``, ``teacher_leak`` (the teacher's text revealed the answer and was
    replaced) and ``teacher_feedback``: the critique text the observation starts with when an
    informative teacher (rule or model) gave one, else "" (the target of GRPO's critique loss).

    Kwargs: ``max_attempts`` (K, default 3), ``teacher`` ("rule", "none": only "incorrect", "self":
    the student is asked to critique its own answer before retrying, a Teacher, or a callable
    prompt -> feedback that becomes a ModelTeacher), ``discount`` (0 < d <= 1, default
    1.0), ``expert_shows_solution`` (expert replies include the solution; default False: short
    replies are easier for a tiny model to imitate), ``instructions`` (default True; False drops the
    system prompt, the answer-format line and the "(n attempts left)" notes: every character is a
    token a small character-level model must read, and on CodeBreaker this made SFT learn ~3x faster
    per step on ~3x shorter sequences).
    """

    system_prompt = (
        "Solve the problem and end your reply with the final answer in \\boxed{}. "
        "If it is wrong, you get feedback and can try again."
    )
    #: Appended to the question in the first observation.
    answer_instruction: ClassVar[str] = "Give your final answer as \\boxed{...}."
    #: Said when no answer could be read from a reply.
    format_help: ClassVar[str] = "Write your final answer as \\boxed{42} or on a line 'Answer: 42'."

    def __init__(
        self,
        max_attempts: int = 3,
        teacher: str | Teacher | Callable[[str], str] = "rule",
        discount: float = 1.0,
        expert_shows_solution: bool = False,
        render_mode: str | None = "ansi",
        instructions: bool = True,
    ) -> None:
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts must be a positive integer, got {max_attempts!r}.")
        if not isinstance(discount, (int, float)) or not 0 < discount <= 1:
            raise ValueError(f"discount must be a number in (0, 1], got {discount!r}.")
        super().__init__(max_turns=max_attempts, render_mode=render_mode)
        self.max_attempts = max_attempts
        self.teacher = make_teacher(teacher, self.rule_hint)
        self.discount = float(discount)
        self.expert_shows_solution = expert_shows_solution
        self.instructions = bool(instructions)
        if not self.instructions:
            self.system_prompt = ""
        self.task: Task | None = None
        self._answer: str | None = None
        self._log: list[str] = []

    # ---- hooks for task families ------------------------------------------------------------
    def sample_task(self, rng: np.random.Generator) -> Task:
        """Draw a task using only ``rng`` (seeded by reset)."""
        raise NotImplementedError

    def extract_answer(self, reply: str) -> str | None:
        return extract_answer(reply)

    def is_correct(self, task: Task, answer: str) -> bool:
        return answers_match(answer, task.answer)

    def rule_hint(self, task: Task, answer: str) -> str:
        if parse_number(task.answer) is not None:
            return numeric_hint(task.answer, answer)
        return "That is not the answer."

    def reveals_answer(self, task: Task, text: str) -> bool:
        return reveals_answer(task.answer, text)

    # ---- TextEnv ----------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        task = (options or {}).get("task") or self.sample_task(self.np_random)
        if not isinstance(task, Task):
            raise TypeError(f"options['task'] must be a feedback.Task, got {type(task).__name__}.")
        self.task, self._answer = task, None
        observation = task.question
        if self.instructions and self.answer_instruction:
            observation += f"\n{self.answer_instruction}"
        self._log = [observation]
        return observation, dict(task.metadata)

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        assert self.task is not None
        attempt, left = self.turn, self.max_attempts - self.turn
        answer = self._answer = self.extract_answer(action)
        correct = answer is not None and self.is_correct(self.task, answer)
        info: dict[str, Any] = {
            "attempt": attempt,
            "correct": correct,
            "extracted_answer": answer,
            "teacher_leak": False,
            "teacher_feedback": "",
            "invalid_action": answer is None,
        }
        if correct:
            observation, reward = "Correct!", self.discount ** (attempt - 1)
        elif answer is None:
            observation, reward = f"I could not find an answer in your reply. {self.format_help}", 0.0
        elif left > 0:
            observation, info["teacher_leak"] = self._feedback(action, answer, attempt)
            if not isinstance(self.teacher, (NoTeacher, SelfCritique)):
                info["teacher_feedback"] = observation
            reward = 0.0
        else:
            observation, reward = "Incorrect.", 0.0
        done = correct or left <= 0
        if done:
            info["success"] = correct
            if not correct:
                observation += " No attempts left."
        else:
            if self.instructions:
                observation += f" ({left} attempt{'s' if left > 1 else ''} left)"
        self._log.append(f"[attempt {attempt}] answer: {answer or NO_ANSWER}\n{observation}")
        return observation, reward, done, info

    def _feedback(self, reply: str, answer: str, attempt: int) -> tuple[str, bool]:
        """The teacher's feedback behind the leak guard: (text, whether it had to be replaced)."""
        assert self.task is not None
        text = self.teacher.feedback(self.task, reply, answer, attempt)
        text = " ".join(str(text)[:MAX_FEEDBACK_CHARS].split()) or NoTeacher().feedback(
            self.task, reply, answer, attempt
        )
        if not self.reveals_answer(self.task, text):
            return text, False
        safe = self.rule_hint(self.task, answer)
        if self.reveals_answer(self.task, safe):
            safe = NoTeacher().feedback(self.task, reply, answer, attempt)
        return safe, True

    def _render(self) -> str:
        return "\n".join(self._log)

    def outcome(self) -> str:
        """The normalised final answer (at most 100 characters), or ``NO_ANSWER``."""
        return normalize_answer(self._answer)[:100] if self._answer is not None else NO_ANSWER

    def expert_action(self) -> str | None:
        if self.task is None:
            return None
        boxed = f"\\boxed{{{self.task.answer}}}"
        return (
            f"{self.task.solution}\n{boxed}" if self.expert_shows_solution and self.task.solution else boxed
        )
