"""Teachers of feedback episodes and the leak guard between them and the student.

A teacher knows the reference answer and says something about a wrong attempt; the leak guard
(``guarded_feedback``) makes sure what reaches the student never states the answer. The
environment that plays the episode is ``interplay.envs.feedback.FeedbackEnv``.

Teachers: :class:`RuleTeacher` (deterministic hints from the task family, e.g. ``numeric_hint``),
:class:`ModelTeacher` (any prompt -> text callable: a function, an HF model, an agent),
:class:`NoTeacher` ("Incorrect, try again."), :class:`SelfCritique` (the student is asked to
critique its own answer) and :class:`DecoyTeacher` (the rule teacher's hints about another task: the
same format, no information, a control). ``Teacher.informative`` says whether a teacher's text carries
information about the attempt (the rule and model teachers) or not (the other three).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import numpy as np

from interplay.envs.parsing import clean_math_text, normalize_answer, parse_number

if TYPE_CHECKING:
    from interplay.envs.feedback import Task

#: Teacher feedback longer than this is cut before it reaches the student.
MAX_FEEDBACK_CHARS = 2000


@runtime_checkable
class Teacher(Protocol):
    """Feedback on wrong attempts. Subclass it (``informative`` then defaults to True) or give any
    object both members."""

    #: Whether the feedback carries information about the attempt (a critique the student can learn
    #: to predict: GRPO's critique loss) rather than a fixed prompt such as "Incorrect, try again.".
    informative: ClassVar[bool] = True

    def feedback(self, task: Task, attempt_text: str, extracted_answer: str, attempt_index: int) -> str:
        """Feedback on a wrong attempt (``attempt_index`` counts from 1)."""
        ...


class NoTeacher(Teacher):
    """Only "Incorrect, try again." — the self-correction baseline."""

    informative = False

    def feedback(self, task: Task, attempt_text: str, extracted_answer: str, attempt_index: int) -> str:
        return "Incorrect, try again."


class SelfCritique(Teacher):
    """No teacher: after a wrong attempt the student is asked to critique its own answer, then retry.

    The student's next reply holds its critique and a new answer; the answer is read from it as
    usual (the last one). The self-correction baseline with an explicit reflection step.
    """

    informative = False
    prompt = "Incorrect. Say what was wrong with your answer, then try again."

    def feedback(self, task: Task, attempt_text: str, extracted_answer: str, attempt_index: int) -> str:
        return self.prompt


class RuleTeacher(Teacher):
    """Deterministic feedback from ``hint(task, extracted_answer)``, supplied by the task family."""

    def __init__(self, hint: Callable[[Task, str], str]) -> None:
        self.hint = hint

    def feedback(self, task: Task, attempt_text: str, extracted_answer: str, attempt_index: int) -> str:
        return self.hint(task, extracted_answer)


class DecoyTeacher(Teacher):
    """The rule teacher's hints, about a decoy task instead of the episode's: feedback in exactly the
    rule teacher's format that says nothing about this task's answer. A control for learning from
    feedback: a model that reads the hints' content loses its gain from them here.

    The decoy is drawn by ``sample(rng)`` (the task family's sampler) from a generator seeded by the
    task itself, so one task always gets the same decoy and the episode's hints are self-consistent
    (they describe one other task) and reproducible, without touching the environment's random stream.
    """

    informative = False

    def __init__(self, hint: Callable[[Task, str], str], sample: Callable[[np.random.Generator], Task]) -> None:
        self.hint = hint
        self.sample = sample

    def decoy(self, task: Task) -> Task:
        key = hashlib.blake2b(f"decoy:{task.question}:{task.answer}".encode(), digest_size=8).digest()
        rng = np.random.default_rng(int.from_bytes(key, "little"))
        for _ in range(100):  # a family with one possible answer cannot have a decoy: the last draw stands
            other = self.sample(rng)
            if other.answer != task.answer:
                break
        return other

    def feedback(self, task: Task, attempt_text: str, extracted_answer: str, attempt_index: int) -> str:
        return self.hint(self.decoy(task), extracted_answer)


MODEL_TEACHER_PROMPT = """You are a teacher. A student is solving this problem:
{question}

Reference answer (secret): {answer}
{solution}
The student's attempt {attempt_index}:
{attempt}

The student's final answer was {extracted}, which is wrong. In one or two sentences, tell the \
student what to check or fix. Never state the reference answer or the final result."""


class ModelTeacher(Teacher):
    """Feedback from any callable ``fn(prompt: str) -> str``: a plain function, an HF model, an agent.

    The prompt (``template``, formatted with question, answer, solution, attempt, extracted,
    attempt_index) includes the reference answer, so what comes back goes through the leak guard.
    Wrap an agent with e.g. ``ModelTeacher(lambda p: agent.reply(p))``.
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


def make_teacher(teacher: str | Teacher | Callable[[str], str], hint: Callable[[Task, str], str],
                 sample: Callable[[np.random.Generator], Task] | None = None) -> Teacher:
    """``"rule"`` -> RuleTeacher(hint), ``"none"`` -> NoTeacher, ``"self"`` -> SelfCritique, ``"decoy"`` ->
    DecoyTeacher(hint, sample), a Teacher as is, a callable -> ModelTeacher."""
    if teacher == "rule":
        return RuleTeacher(hint)
    if teacher == "decoy":
        if sample is None:
            raise ValueError("teacher='decoy' needs the task family's sampler; this environment gives none.")
        return DecoyTeacher(hint, sample)
    if teacher == "none":
        return NoTeacher()
    if teacher == "self":
        return SelfCritique()
    if isinstance(teacher, Teacher):
        return teacher
    if callable(teacher):
        return ModelTeacher(teacher)
    raise ValueError(
        "teacher must be 'rule', 'none', 'self', 'decoy', a Teacher (a subclass of interplay.envs.teachers.Teacher, "
        "or an object with .feedback(task, attempt_text, extracted_answer, attempt_index) and .informative) "
        f"or a callable prompt -> feedback text; got {teacher!r:.80}."
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


def guarded_feedback(
    teacher: Teacher,
    task: Task,
    attempt_text: str,
    extracted_answer: str,
    attempt_index: int,
    reveals: Callable[[Task, str], bool],
    hint: Callable[[Task, str], str],
) -> tuple[str, bool]:
    """The teacher's feedback as the student may see it: (text, whether it had to be replaced).

    The text is cut to ``MAX_FEEDBACK_CHARS`` and its whitespace collapsed; empty feedback becomes
    NoTeacher's. Feedback that ``reveals(task, text)`` is replaced by the rule hint
    ``hint(task, extracted_answer)``, or by NoTeacher's text where the hint reveals the answer too.
    ``reveals`` and ``hint`` are the task family's (``FeedbackEnv.reveals_answer``/``rule_hint``).
    """
    plain = NoTeacher().feedback(task, attempt_text, extracted_answer, attempt_index)
    text = teacher.feedback(task, attempt_text, extracted_answer, attempt_index)
    text = " ".join(str(text)[:MAX_FEEDBACK_CHARS].split()) or plain
    if not reveals(task, text):
        return text, False
    safe = hint(task, extracted_answer)
    return (plain if reveals(task, safe) else safe), True
