"""Feedback episodes: a single-turn verifiable task + a teacher -> a multi-turn episode.

A teacher who knows the answer critiques each wrong attempt without giving the answer away; the
student retries up to ``max_attempts`` times. The teachers and the leak guard that every teacher's
text passes are in ``interplay.envs.teachers``; this module holds the task and the episode.

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
  ``teachers.reveals_answer`` is too strict (e.g. one-letter multiple-choice answers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from interplay.envs.core import TextEnv
from interplay.envs.parsing import answers_match, extract_answer, normalize_answer, parse_number
from interplay.envs.teachers import Teacher, guarded_feedback, make_teacher, numeric_hint, reveals_answer

#: What ``outcome()`` returns when no answer was read from the last reply.
NO_ANSWER = "<none>"


@dataclass(frozen=True)
class Task:
    """A single-turn verifiable task. ``metadata`` (e.g. family, difficulty) goes to reset's info."""

    question: str
    answer: str
    solution: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class FeedbackEnv(TextEnv):
    """A single-turn task played over up to ``max_attempts`` attempts with a teacher's feedback.

    ## Description

    The base of the feedback environments (MathFeedback, CodeBreaker, reasoning-gym tasks): a task
    family supplies ``sample_task`` and the verifier, and the episode is the question, the agent's
    attempts and a teacher's feedback after each wrong one. Not registered itself.

    ## Action Space

    Any text (``AnyText``): the agent's whole reply; the answer is read by ``extract_answer``.

    ## Observation Space

    Text (``AnyText``): first the question and a one-line answer-format instruction; after a wrong
    attempt the teacher's feedback and the attempts left; after a reply with no readable answer, the
    accepted formats.

    ## Rewards

    ``discount ** (attempt - 1)`` when an attempt is correct, else 0.

    ## Starting State

    A task from ``sample_task(self.np_random)``, seeded by reset (or ``options={"task": Task(...)}``).
    Info at reset: the task's ``metadata``; every step ``attempt``, ``correct``, ``extracted_answer``,
    ``teacher_leak`` (the teacher's text revealed the answer and was replaced) and
    ``teacher_feedback``: the critique text the observation starts with when an informative teacher
    (``Teacher.informative``: rule or model) gave one, else "" (the target of GRPO's critique loss).

    ## Held-out Tasks

    A family's held-out tasks are what ``sample_task`` draws at the held-out seeds
    (``interplay.seeds``), unless the family splits its task space itself (CodeBreaker does). Each
    family's docstring says which, and how often a held-out task is also a training task.

    ## Episode End

    Termination: on a correct answer or when the attempts are used up (an unreadable reply costs an
    attempt too). Never truncated.

    ## Arguments

    - ``max_attempts``: K, default 3.
    - ``teacher``: "rule", "none" (only "incorrect"), "self" (the student is asked to critique its own
      answer before retrying), "decoy" (the rule teacher's hints about another task of the family: the
      same format, no information; a control), a Teacher, or a callable prompt -> feedback that becomes
      a ModelTeacher.
    - ``discount``: 0 < d <= 1, default 1.0.
    - ``expert_shows_solution``: expert replies include the solution; default False: short replies are
      easier for a tiny model to imitate.
    - ``instructions``: default True; False drops the system prompt, the answer-format line and the
      "(n attempts left)" notes: every character is a token a small character-level model must read,
      so shorter episodes train faster.
    - ``render_mode``: "ansi" (default) or None.

    ## Version History

    - v0: the first version.
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
        self.teacher = make_teacher(teacher, self.rule_hint, self.sample_task)
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
            observation, info["teacher_leak"] = guarded_feedback(
                self.teacher, self.task, action, answer, attempt, self.reveals_answer, self.rule_hint
            )
            if self.teacher.informative:
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
