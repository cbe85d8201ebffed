"""reasoning-gym tasks as feedback episodes: ``interplay/ReasoningGym-<task>-v0``.

reasoning-gym (Stojanovski et al., 2025, "Reasoning Gym") generates ~100 procedural tasks, each
entry a question, a reference answer and metadata, with a ``score_answer`` verifier. Every task
becomes a multi-turn episode through :class:`FeedbackEnv`, like MathFeedback. Ids keep
reasoning-gym's own snake_case task names verbatim, so they map one to one onto
``reasoning_gym.create_dataset(<task>)``: ``interplay/ReasoningGym-countdown-v0``,
``interplay/ReasoningGym-gsm_symbolic-v0``, ``interplay/ReasoningGym-sudoku-v0``.
``composite`` (a mixture of other tasks) is not registered; ``ReasoningGymEnv(task="composite",
config={...})`` plays it.

Registration does not import reasoning_gym (it pulls in sympy and matplotlib); the
task names come from ``_TASKS``, measured for the version in ``_LISTED_VERSION`` (the tests check
the list against reasoning-gym's registry). Under another version ``register_reasoning_gym()``
imports reasoning_gym once to read its registry.

Several reasoning-gym scorers ``eval()`` the answer text or hand it to sympy's ``parse_expr``
(which evals too): an agent's reply reaches them only after ``safe_to_score`` has accepted it.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import functools
import io
import json
import os
import re
import signal
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

from interplay.envs.feedback import FeedbackEnv, Task
from interplay.envs.parsing import extract_boxed, extract_tagged, last_answer_line, parse_number
from interplay.envs.teachers import Teacher
from interplay.seeds import GlobalRNG

_LISTED_VERSION = "0.1.25"
INSTALL_HINT = "pip install interplay[reasoning-gym]"

# category -> task names, as registered by reasoning-gym 0.1.25 (without "composite").
_TASKS: dict[str, tuple[str, ...]] = {
    "algebra": (
        "complex_arithmetic intermediate_integration polynomial_equations polynomial_multiplication "
        "simple_equations simple_integration"
    ).split(),
    "algorithmic": (
        "ab base_conversion binary_alternation binary_matrix caesar_cipher count_primes cryptarithm "
        "game_of_life game_of_life_halting graph_color group_anagrams isomorphic_strings jugs "
        "letter_counting letter_jumble manipulate_matrix number_filtering number_sorting "
        "palindrome_generation palindrome_partitioning pool_matrix ransom_note rotate_matrix "
        "rotten_oranges sentence_reordering spell_backward spiral_matrix string_insertion "
        "string_manipulation string_splitting string_synthesis word_ladder word_sequence_reversal "
        "word_sorting"
    ).split(),
    "arc": "arc_1d arc_agi rearc".split(),
    "arithmetic": (
        "basic_arithmetic bitwise_arithmetic calendar_arithmetic chain_sum count_bits decimal_arithmetic "
        "decimal_chain_sum dice fraction_simplification gcd gsm_symbolic lcm leg_counting number_format "
        "power_function prime_factorization products time_intervals"
    ).split(),
    "code": "bf codeio".split(),
    "cognition": (
        "color_cube_rotation figlet_font modulo_grid needle_haystack number_sequence rectangle_count "
        "rubiks_cube"
    ).split(),
    "games": (
        "boxnet countdown emoji_mystery futoshiki kakurasu knight_swap mahjong_puzzle maze mini_sudoku "
        "n_queens puzzle24 rush_hour sokoban sudoku survo tower_of_hanoi tsumego"
    ).split(),
    "geometry": "advanced_geometry simple_geometry".split(),
    "graphs": "course_schedule family_relationships largest_island path_star quantum_lock shortest_path".split(),
    "induction": "acre list_functions".split(),
    "logic": "aiw circuit_logic knights_knaves propositional_logic self_reference syllogism zebra_puzzles".split(),
    "probability": ("coin_flip",),
}
#: Tasks whose entries carry no reference answer (the scorer checks a solution against the
#: puzzle): the episode works, but there is no expert and the leak guard has nothing to guard.
NO_REFERENCE = frozenset({"boxnet", "graph_color", "propositional_logic", "rubiks_cube", "rush_hour"})

# Scorers that eval() a non-exact answer (to accept Python lists): only literals reach them.
_EVAL_SCORERS = frozenset({"binary_matrix", "n_queens", "spiral_matrix", "string_insertion"})
# Scorers that parse the answer with sympy's parse_expr (an eval): only plain expressions reach them.
_SYMPY_SCORERS = frozenset(
    {"countdown", "puzzle24", "polynomial_multiplication", "simple_integration", "intermediate_integration"}
)
_SYMPY_CHARS = re.compile(r"[0-9A-Za-z\s+\-*/^().,]*")
_SYMPY_NAMES = frozenset(
    "sin cos tan cot sec csc asin acos atan sinh cosh tanh exp log ln sqrt pi Abs Integral".split()
)
_POWER = re.compile(r"\*\*|\^")
_NEXT_POWER = re.compile(r"\s*(?:\*\*|\^)")
_SMALL_EXPONENT = re.compile(r"\s*(?:[A-Za-z]\b|\(?\s*-?\d{1,2}(?:\s*/\s*\d{1,2})?\s*\)?)")
#: Seconds a scorer may run (main thread only: signals cannot interrupt other threads).
SCORE_TIMEOUT = 2.0


def installed_version() -> str | None:
    try:
        return metadata.version("reasoning_gym")
    except metadata.PackageNotFoundError:
        return None


def task_names() -> dict[str, str]:
    """Every reasoning-gym task this version registers (without ``composite``): name -> category."""
    if installed_version() == _LISTED_VERSION:
        return {name: category for category, names in _TASKS.items() for name in names}
    from reasoning_gym.factory import DATASETS

    return {
        name: cls.__module__.split(".")[1] for name, (cls, _) in DATASETS.items() if name != "composite"
    }


def register_reasoning_gym() -> None:
    """Register every reasoning-gym task as ``interplay/ReasoningGym-<task>-v0`` (no dataset is
    created); without reasoning-gym installed, list them as unavailable with the install hint."""
    from interplay.registry import register, register_unavailable

    if installed_version() is None:
        for names in _TASKS.values():
            for name in names:
                register_unavailable(f"interplay/ReasoningGym-{name}-v0", f"needs reasoning-gym: {INSTALL_HINT}")
        return
    for name, category in sorted(task_names().items()):
        note = " No reference answer: the scorer checks the solution; no expert." if name in NO_REFERENCE else ""
        register(
            f"interplay/ReasoningGym-{name}-v0",
            "interplay.envs.reasoning_gym:ReasoningGymEnv",
            f"[reasoning-gym {category}] {name.replace('_', ' ')}, in up to 3 attempts with feedback.{note}",
            kwargs={"task": name},
        )


# ---- generating and scoring entries -------------------------------------------------------------
def _import_reasoning_gym() -> Any:
    try:
        import reasoning_gym
    except ImportError:
        raise ImportError(f"reasoning-gym tasks need the reasoning_gym package: {INSTALL_HINT}") from None
    return reasoning_gym


def _create_dataset(task: str, config_json: str, seed: int) -> Any:
    reasoning_gym = _import_reasoning_gym()
    from reasoning_gym.factory import DATASETS

    if task not in DATASETS:
        raise ValueError(f"unknown reasoning-gym task {task!r}; known tasks: {', '.join(sorted(DATASETS))}.")
    config = json.loads(config_json)
    try:
        return reasoning_gym.create_dataset(task, seed=seed, size=1, **config)
    except (TypeError, ValueError, AssertionError) as error:
        fields = ", ".join(f for f in DATASETS[task][1].__dataclass_fields__ if f not in ("seed", "size"))
        raise ValueError(
            f"reasoning-gym rejected config={config} for task {task!r} ({type(error).__name__}: {error}). "
            f"Accepted keys: {fields}."
        ) from None


# Tasks whose dataset __init__ loads data files and uses the seed only to store it: a
# loaded dataset is copied with a new seed instead (tests check it gives the same entries).
_RESEEDABLE = frozenset({"arc_agi", "codeio", "figlet_font", "group_anagrams", "spell_backward", "word_ladder"})


@functools.lru_cache(maxsize=32)
def _loaded_dataset(task: str, config_json: str) -> Any:
    return _create_dataset(task, config_json, 0)


def _dataset(task: str, config_json: str, seed: int) -> Any:
    if task not in _RESEEDABLE:
        return _create_dataset(task, config_json, seed)
    dataset = copy.copy(_loaded_dataset(task, config_json))
    dataset.seed, dataset.config = seed, dataclasses.replace(dataset.config, seed=seed)
    return dataset


#: Dataset seeds tried for one entry before ``_entry`` gives up.
GENERATION_TRIES = 20


@functools.lru_cache(maxsize=1024)
def _entry(task: str, config_json: str, seed: int) -> dict[str, Any]:
    """Entry 0 of the task's dataset created with ``seed`` (cached: GRPO groups and tests reset the
    same seed many times, and some generators are slow).

    A few generators fail on some seeds: codeio runs code samples, a few of which need modules that
    are not installed (scipy) or an older NumPy, or return values that ``json`` cannot write (sympy's
    Integer). Such a seed is replaced by seeds drawn from it in turn (``_retry_seed``), so every
    seed gives a valid task, the same one every time. What generators print is swallowed.
    """
    failure: BaseException | None = None
    for attempt in range(GENERATION_TRIES):
        dataset_seed = seed if attempt == 0 else _retry_seed(seed, attempt)
        # A few generators also draw from the global generators: seed those too.
        with GlobalRNG(dataset_seed).active(), _silenced(), _scratch_directory(task):
            dataset = _dataset(task, config_json, dataset_seed)
            try:
                entry = dataset[0]
            except Exception as error:  # a generator bug on this seed, not an invalid task or config
                failure = error
                continue
        if not _placeholder(task, entry):
            return entry
        failure = ValueError("the generator returned a placeholder entry")
    raise RuntimeError(
        f"reasoning-gym could not generate a {task!r} entry from dataset seed {seed} or the "
        f"{GENERATION_TRIES - 1} seeds drawn from it; last failure: {type(failure).__name__}: {failure}"
    ) from failure


def _retry_seed(seed: int, attempt: int) -> int:
    return int(np.random.default_rng([seed, attempt]).integers(2**31 - 1))


def _placeholder(task: str, entry: dict[str, Any]) -> bool:
    """Whether a generator handed back a placeholder instead of a task: codeio does when running its
    code sample raised (empty input and output data; no working sample has both empty)."""
    if task != "codeio":
        return False
    data = entry.get("metadata") or {}
    return data.get("input_data") == {} and data.get("output_data") == {}


_CWD_LOCK = threading.Lock()


@contextlib.contextmanager
def _scratch_directory(task: str) -> Iterator[None]:
    """codeio runs its code samples to make a task, and some samples write files (``file_43.txt``,
    ``test_dir/``, ...) into the working directory: run them in a temporary one instead. The working
    directory is the process's, so generations that change it take turns."""
    if task != "codeio":
        yield
        return
    with _CWD_LOCK, tempfile.TemporaryDirectory(prefix="interplay-codeio-") as scratch:
        here = os.getcwd()
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(here)


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    # Generators print progress and their own errors (codeio: "Error generating I/O pair: ..."), and
    # compiling codeio's samples warns ('"is" with a literal'): an environment's output is its caller's.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            yield


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(*_: Any) -> None:
        raise TimeoutError(f"scorer ran over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def safe_to_score(task: str, answer: str, reference: str) -> bool:
    """Whether ``answer`` may be passed to the task's scorer. Scorers that eval the text get Python
    literals only; those that use sympy get plain expressions: digits, single letters, known
    function names, + - * / ( ) and small exponents (no factorials, no power towers)."""
    if task in _EVAL_SCORERS and answer != reference:
        try:
            with warnings.catch_warnings():  # "1if x": compiling agent text warns, and it is not ours to show
                warnings.simplefilter("ignore", SyntaxWarning)
                ast.literal_eval(answer)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
    if task in _SYMPY_SCORERS:
        if not _SYMPY_CHARS.fullmatch(answer):
            return False
        if any(len(w) > 1 and w not in _SYMPY_NAMES for w in re.findall(r"[A-Za-z]+", answer)):
            return False
        for power in _POWER.finditer(answer):
            exponent = _SMALL_EXPONENT.match(answer, power.end())
            if not exponent:
                return False
            if _NEXT_POWER.match(answer, exponent.end()) or _numeric_tower(answer[: power.start()]):
                return False  # 9**9**9 is 9**(9**9)
    return True


def _numeric_tower(before: str) -> bool:
    """Whether the base ending ``before`` is a number of 5+ digits or a letter-free group that
    holds a power itself (so that raising it could make an enormous number)."""
    before = before.rstrip()
    if not before.endswith(")"):
        return bool(re.search(r"\d{5,}$", before))
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(before[i], 0)
        if depth == 0:
            group = before[i:]
            return not re.search(r"[A-Za-z]", group) and bool(_POWER.search(group))
    return True  # unbalanced: sympy will not parse it anyway


@dataclass(frozen=True)
class ReasoningGymTask(Task):
    """A reasoning-gym entry as a feedback Task; ``entry`` is what the task's scorer reads."""

    entry: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


class ReasoningGymEnv(FeedbackEnv):
    """A reasoning-gym task solved in up to ``max_attempts`` attempts, with feedback after wrong ones.

    ## Description

    One of reasoning-gym's procedural tasks (``interplay/ReasoningGym-<task>-v0``) played as a
    ``FeedbackEnv`` episode, scored by reasoning-gym's own ``score_answer``.

    ## Action Space

    Any text (``AnyText``). The answer is read from the last ``<answer>...</answer>`` pair, else the
    last ``\\boxed{...}``, else an "Answer:" line (the lines below it, up to a blank line, when the line
    itself is empty: grids), else the whole reply, stripped. An empty reply is invalid.

    ## Observation Space

    Text (``AnyText``): reasoning-gym's question (with its own answer-format instructions) and "Give
    your final answer between <answer> and </answer> tags."; after a wrong attempt the teacher's
    feedback and the attempts left.

    ## Rewards

    ``discount ** (attempt - 1)`` when reasoning-gym's ``score_answer`` gives 1.0, else 0;
    ``info["score"]`` holds the score of every attempt (partial credit included).

    Teachers: ``"rule"`` says only what the scorer tells (the partial score, or "incorrect") plus
    format hints (a number is expected, how many lines a grid has, the answer is far too long, use the
    tags); ``"none"`` says "Incorrect, try again."; a callable or Teacher is a model teacher behind
    the leak guard. For the tasks in ``NO_REFERENCE`` there is no reference answer:
    ``expert_action()`` is None and a model teacher sees only the question.

    ## Starting State

    Reset's seed draws a dataset seed ``s``; the task is entry 0 of
    ``reasoning_gym.create_dataset(task, seed=s, size=1, **config)`` (entries are cached per
    (task, config, s)). ``reset(options={"dataset_seed": s})`` picks that entry directly. Where
    reasoning-gym's generator fails on ``s`` (a few codeio seeds), seeds drawn from ``s`` are used.
    Info at reset: ``task``, ``dataset_seed``.

    ## Held-out Tasks

    Held-out tasks are the same generator at the held-out seeds (``interplay.seeds``), which draw
    other dataset seeds: the same distribution as training. Where a task's generator has few distinct
    questions at its configured difficulty, a held-out question can also be a training question; how
    often depends on the task and its ``config``. Of ten tasks measured at their default configs, 200
    held-out questions against 2,000 training ones: none to 2.5% repeat for nine, all of coin_flip's
    (``benchmarks/split_overlap.py --reasoning-gym``, figures in ``benchmarks/RESULTS.md``).

    ## Episode End

    Termination: a fully correct answer, or the attempts used up (an empty reply costs one). Never
    truncated.

    ## Arguments

    - ``task``: a reasoning-gym task name, e.g. "countdown".
    - ``config``: dict of the task's difficulty settings, passed to its config class (``seed`` and
      ``size`` are set by the env).
    - FeedbackEnv's ``max_attempts`` (3), ``teacher`` ("rule"), ``discount`` (1.0), ``render_mode``
      ("ansi").

    ## Version History

    - v0: the first version.
    """

    system_prompt = (
        "Solve the task. End your reply with the final answer between <answer> and </answer> tags, "
        "in exactly the format the task asks for. If it is wrong, you get feedback and can try again."
    )
    answer_instruction = "Give your final answer between <answer> and </answer> tags."
    format_help = (
        "Put your final answer between <answer> and </answer> tags, in the format the task asks for "
        "(a grid or a list goes inside the tags as it is)."
    )

    def __init__(
        self,
        task: str,
        config: dict[str, Any] | None = None,
        max_attempts: int = 3,
        teacher: str | Teacher | Callable[[str], str] = "rule",
        discount: float = 1.0,
        render_mode: str | None = "ansi",
    ) -> None:
        super().__init__(max_attempts, teacher, discount, False, render_mode)
        if not isinstance(task, str):
            raise TypeError(f"task must be a reasoning-gym task name (str), got {type(task).__name__}.")
        config = dict(config or {})
        if {"seed", "size"} & set(config):
            raise ValueError("config must not set 'seed' or 'size': the env derives them from reset's seed.")
        try:
            self._config_json = json.dumps(config, sort_keys=True)
        except TypeError as error:
            raise ValueError(f"config must hold JSON-like values (numbers, strings, lists): {error}") from None
        self.task_name, self.config = task, config
        self._scorer = _dataset(task, self._config_json, 0)  # also validates task and config
        self._score = 0.0
        self._source = "tags"

    # ---- FeedbackEnv hooks -------------------------------------------------------------------
    def sample_task(self, rng: np.random.Generator) -> Task:
        return self._task_for(int(rng.integers(2**31 - 1)))

    def _task_for(self, dataset_seed: int) -> ReasoningGymTask:
        # A copy: scorers read the entry (tuples stay tuples: ARC scorers compare them), none may alter the cache.
        entry = copy.deepcopy(_entry(self.task_name, self._config_json, dataset_seed))
        answer = entry.get("answer")
        return ReasoningGymTask(
            question=str(entry["question"]),
            answer="" if answer is None else str(answer),
            metadata={"task": self.task_name, "dataset_seed": dataset_seed},
            entry=entry,
        )

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        options = dict(options or {})
        if "dataset_seed" in options:
            seed = options.pop("dataset_seed")
            if not isinstance(seed, int) or not 0 <= seed < 2**32:
                raise ValueError(f"options['dataset_seed'] must be an int in [0, 2**32), got {seed!r}.")
            options["task"] = self._task_for(seed)
        if "task" in options and not isinstance(options["task"], ReasoningGymTask):
            raise TypeError(
                "options['task'] must be a ReasoningGymTask (it carries the entry the scorer reads); "
                "use options={'dataset_seed': s} to pick an entry."
            )
        return super()._reset(options)

    def extract_answer(self, reply: str) -> str | None:
        for source, read in (("tags", extract_tagged), ("boxed", extract_boxed), ("line", _answer_lines)):
            answer = read(reply)
            if answer is not None and answer.strip():
                self._source = source
                return self._cut(answer.strip())
        self._source = "reply"
        return self._cut(reply.strip()) or None

    def _cut(self, answer: str) -> str:
        # One character over the limit is kept, so that the rule teacher can say "far too long".
        return answer[: self._max_answer_chars(self.task) + 1] if self.task is not None else answer

    def is_correct(self, task: Task, answer: str) -> bool:
        self._score = self.score(task, answer)
        return self._score >= 1.0

    def score(self, task: Task, answer: str) -> float:
        """reasoning-gym's score for ``answer`` (0 when it is unsafe to score, too long, or the
        scorer fails or runs over ``SCORE_TIMEOUT``)."""
        if not isinstance(task, ReasoningGymTask) or len(answer) > self._max_answer_chars(task):
            return 0.0
        if not safe_to_score(self.task_name, answer, task.answer):
            return 0.0
        try:
            with _time_limit(SCORE_TIMEOUT):
                score = self._scorer.score_answer(answer, copy.deepcopy(task.entry))
        except Exception:  # a scorer that chokes on agent text has not seen a correct answer
            return 0.0
        return float(score) if isinstance(score, (int, float)) and np.isfinite(score) else 0.0

    def rule_hint(self, task: Task, answer: str) -> str:
        hints = []
        if len(answer) > self._max_answer_chars(task):
            hints.append("Your answer is far longer than expected: give only the final answer.")
        elif self.task_name in _SYMPY_SCORERS and not safe_to_score(self.task_name, answer, task.answer):
            hints.append(
                "The answer must be a plain expression: numbers, variables, + - * / ** and parentheses."
            )
        elif 0 < self._score < 1:
            hints.append(f"Not fully correct: it scores {self._score:.2f} out of 1.")
        else:
            hints.append("Incorrect.")
        if task.answer and parse_number(task.answer) is not None and parse_number(answer) is None:
            hints.append("The answer is a number.")
        lines = task.answer.count("\n") + 1
        if lines > 1 and answer.count("\n") + 1 != lines:
            hints.append(f"The answer has {lines} lines.")
        if self._source == "reply":
            hints.append("(No <answer> tags found, so your whole reply was read as the answer.)")
        return " ".join(hints)

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        self._score = 0.0
        observation, reward, done, info = super()._step(action)
        return observation, reward, done, {**info, "score": self._score}

    def expert_action(self) -> str | None:
        if self.task is None or not self.task.answer:
            return None
        return f"<answer>{self.task.answer}</answer>"

    @staticmethod
    def _max_answer_chars(task: Task) -> int:
        return max(2000, 20 * len(task.answer))


def _answer_lines(text: str) -> str | None:
    """After the last "Answer:": the rest of that line, or when it is empty the lines below it up to
    a blank line (a grid)."""
    line = last_answer_line(text)
    if line is None:
        return None
    rest = text[line.end() :]
    first, _, below = rest.partition("\n")
    if first.strip().strip("*_"):
        return first.strip().strip("*_").strip()
    block = below.lstrip("\n").split("\n\n", 1)[0]
    return block.strip() or None
