"""MathFeedback-v0 and the feedback-episode machinery: extraction, verification, teachers, leaks."""

from __future__ import annotations

import json
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from interplay.envs.feedback import NO_ANSWER, Task
from interplay.envs.math import FAMILIES, MathFeedbackEnv, load_tasks
from interplay.envs.parsing import (
    answers_match,
    extract_answer,
    last_answer_line,
    normalize_answer,
    parse_number,
)
from interplay.envs.teachers import (
    ModelTeacher,
    NoTeacher,
    RuleTeacher,
    Teacher,
    guarded_feedback,
    number_to_words,
    reveals_answer,
)


def play(env: MathFeedbackEnv, seed: int, replies: list[str]) -> list:
    record = [env.reset(seed=seed)]
    for reply in replies:
        record.append(env.step(reply))
        if env.finished:
            break
    return record


# ---- problems ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_generated_answers_are_accepted_by_math_verify(family, difficulty):
    from math_verify import parse, verify

    rng = np.random.default_rng(difficulty)
    for _ in range(20):
        task = FAMILIES[family](rng, difficulty)
        assert task.question and task.answer and task.solution
        assert verify(parse(f"${task.answer}$"), parse(f"${task.answer}$"))
        assert parse_number(task.answer) is not None  # generated answers are exact numbers
        assert task.solution.endswith(task.answer)  # the worked solution ends in the answer


def test_difficulty_one_uses_short_numbers():
    env = MathFeedbackEnv()
    for seed in range(50):
        env.reset(seed=seed)
        assert abs(parse_number(env.task.answer)) < 200


def test_families_and_difficulty_kwargs():
    env = MathFeedbackEnv(families=["fractions"], difficulty="hard")
    obs, info = env.reset(seed=0)
    assert info["family"] == "fractions" and info["difficulty"] == 3
    assert "lowest terms" in obs and "\\boxed" in obs
    with pytest.raises(ValueError, match="unknown families"):
        MathFeedbackEnv(families=["calculus"])
    with pytest.raises(ValueError, match="difficulty must be"):
        MathFeedbackEnv(difficulty=7)


# ---- extraction and verification ------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("so \\boxed{\\frac{3}{4}}", "3/4"),
        ("\\boxed{a{b{c}}d} and an unclosed \\boxed{9", "a{b{c}}d"),
        ("first \\boxed{1} then \\boxed{2}", "2"),
        ("Answer: 1,234 apples", "1234"),
        ("**Final answer:** -5.", "-5"),
        ("The answer is: x = 3", "3"),
        ("I got 12 then 5-3 = 2", "2"),
        ("it is -7", "-7"),
        ("it is −7", "-7"),
        ("roughly 3/4 or 6 / 8", "6/8"),
        ("it is 1,000,000", "1000000"),
        ("about .5", "0.5"),
        ("the total is 12.50 dollars", "12.5"),
    ],
)
def test_extract_answer(reply, expected):
    assert normalize_answer(extract_answer(reply)) == expected


@pytest.mark.parametrize("reply", ["", "no idea", "…!?", "😀" * 10, "\\boxed{"])
def test_no_answer_gives_none(reply):
    assert extract_answer(reply) is None


def test_the_last_answer_line_is_found_in_every_spelling():
    text = "Answer: 1\n**Final answer:** 2\nThe answer is: 3 apples\nanswers: 4"
    line = last_answer_line(text)
    assert line is not None and text[line.end() :].strip() == "3 apples\nanswers: 4"
    assert last_answer_line("no marker here") is None


@pytest.mark.parametrize(
    "text",
    [
        "9" * 1_000_000,
        "\\boxed{" * 150_000,
        "\\boxed{" + "{" * 1_000_000,
        "answer:" * 140_000,
        "answer" + " " * 1_000_000 + "x",
        "1," * 500_000,
        "1 " * 500_000,
        "-" * 1_000_000,
        "1/" * 500_000,
    ],
)
def test_extraction_is_fast_on_a_megabyte(text):
    start = time.perf_counter()
    answer = extract_answer(text)
    answers_match(answer or "", "12")
    normalize_answer(answer or "")
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "answer, reference, expected",
    [
        ("0.75", "3/4", True),
        ("\\frac{6}{8}", "3/4", True),
        ("-0", "0", True),
        ("1,234", "1234", True),
        ("3/-4", "-0.75", True),
        ("\\sqrt{2}", "2^{1/2}", True),  # only math-verify decides this one
        ("Paris", "paris", True),
        ("Paris", "pairs", False),  # math-verify alone would call these equal (a product of symbols)
        ("12", "13", False),
        ("9^{9^{9^9}}", "1", False),  # refused before sympy could hang on it
        ("(10^{10})!", "1", False),
        ("", "1", False),
    ],
)
def test_answers_match(answer, reference, expected):
    assert answers_match(answer, reference) is expected


def test_answers_match_in_a_worker_thread():
    # math-verify's timeout uses signals, which raise outside the main thread: must not escape.
    results = []
    worker = threading.Thread(target=lambda: results.append(answers_match("\\sqrt{4}", "2")))
    worker.start()
    worker.join(timeout=30)
    assert results == [True]


# ---- rewards and episodes --------------------------------------------------------------------


def test_reward_on_first_and_second_attempt():
    env = MathFeedbackEnv(discount=0.5)
    env.reset(seed=3)
    _, reward, terminated, truncated, info = env.step(env.expert_action())
    assert (reward, terminated, truncated, info["success"], info["attempt"]) == (1.0, True, False, True, 1)

    env.reset(seed=3)
    wrong = str(parse_number(env.task.answer) + 1)
    obs, reward, terminated, _, info = env.step(f"\\boxed{{{wrong}}}")
    assert (reward, terminated, info["correct"], info["extracted_answer"]) == (0.0, False, False, wrong)
    assert "2 attempts left" in obs
    _, reward, terminated, _, info = env.step(f"Answer: {env.task.answer}")
    assert (reward, terminated, info["success"], info["attempt"]) == (0.5, True, True, 2)
    assert info["outcome"] == normalize_answer(env.task.answer)


def test_running_out_of_attempts_and_unreadable_replies():
    env = MathFeedbackEnv(max_attempts=2)
    env.reset(seed=4)
    obs, reward, terminated, _, info = env.step("I do not know")
    assert info["invalid_action"] is True and info["extracted_answer"] is None and reward == 0.0
    assert "\\boxed{42}" in obs and "Answer: 42" in obs and not terminated
    wrong = str(parse_number(env.task.answer) + 1)
    obs, reward, terminated, truncated, info = env.step(wrong)
    assert terminated and not truncated and info["success"] is False and "No attempts left" in obs
    assert info["outcome"] == wrong


def test_outcome_without_an_answer():
    env = MathFeedbackEnv(max_attempts=1)
    env.reset(seed=0)
    _, _, _, _, info = env.step("nothing here")
    assert info["outcome"] == NO_ANSWER


def test_unreduced_fraction_is_wrong_with_a_helpful_hint():
    env = MathFeedbackEnv(families="fractions")
    for seed in range(40):
        env.reset(seed=seed)
        value = parse_number(env.task.answer)
        if value.denominator != 1:
            break
    obs, _, _, _, info = env.step(f"\\boxed{{\\frac{{{2 * value.numerator}}}{{{2 * value.denominator}}}}}")
    assert info["correct"] is False and "lowest terms" in obs


def test_expert_action_solves_on_first_attempt():
    for teacher in ("rule", "none"):
        env = MathFeedbackEnv(teacher=teacher, expert_shows_solution=True)
        for seed in range(30):
            env.reset(seed=seed)
            assert env.task.solution in env.expert_action()
            _, reward, terminated, _, info = env.step(env.expert_action())
            assert reward == 1.0 and terminated and info["success"]
    assert MathFeedbackEnv().reset(seed=0) and MathFeedbackEnv().expert_action() is None


def test_determinism():
    replies = ["\\boxed{1}", "Answer: 17", "maybe 3/7"]
    for families in ("arithmetic", "linear", "fractions", "word"):
        first = play(MathFeedbackEnv(families=families), 11, replies)
        assert first == play(MathFeedbackEnv(families=families), 11, replies)
    questions = {MathFeedbackEnv().reset(seed=s)[0] for s in range(20)}
    assert len(questions) > 15


# ---- teachers and the leak guard ------------------------------------------------------------


def test_rule_teacher_never_reveals_the_answer():
    rng = np.random.default_rng(0)
    envs = [MathFeedbackEnv(difficulty=d) for d in (1, 2, 3)]
    checked = 0
    for seed in range(500):
        env = envs[seed % 3]
        env.reset(seed=seed)
        ref = parse_number(env.task.answer)
        # Random wrong answers, near misses, wrong sign, unreduced fractions, non-numbers.
        candidates = [
            ref + int(rng.integers(1, 3)),
            ref - 1,
            -ref,
            ref * 10,
            ref * Fraction(101, 100),
            ref + int(rng.integers(-1000, 1000)),
            ref + Fraction(1, ref.denominator + 1),
        ]
        wrong = [str(c) for c in candidates if c != ref]
        wrong += [f"{2 * ref.numerator}/{2 * ref.denominator}", "x", "\\sqrt{2}"]
        for attempt, answer in enumerate(wrong, 1):
            if env.is_correct(env.task, answer):
                continue
            feedback = env.teacher.feedback(env.task, f"\\boxed{{{answer}}}", answer, attempt)
            assert feedback
            assert not reveals_answer(env.task.answer, feedback), (env.task, answer, feedback)
            # The answer as the environment prints it (expert reply, solution), as a plain substring.
            assert env.task.answer not in feedback, (env.task, answer, feedback)
            checked += 1
    assert checked > 4000


def test_rule_teacher_in_episodes_has_no_leaks():
    env = MathFeedbackEnv(max_attempts=4)
    for seed in range(100):
        env.reset(seed=seed)
        ref = parse_number(env.task.answer)
        for wrong in (ref + 1, ref - 2, -ref - 1):
            obs, _, terminated, _, info = env.step(f"\\boxed{{{wrong}}}")
            feedback = obs.rsplit(" (", 1)[0]  # without the "(2 attempts left)" counter
            assert info["teacher_leak"] is False and not reveals_answer(env.task.answer, feedback)
            if terminated:
                break


@pytest.mark.parametrize(
    "leaky",
    [
        "The answer is 1234.",
        "It should be 1,234.",
        "Try 1 234 instead.",
        "Did you mean \\boxed{1234}?",
        "The digits are 1 2 3 4.",
        "It is one thousand two hundred thirty-four.",
        "It is one thousand, two hundred and thirty four.",
        "You should get 1234.0",
        "It is $-1234$ up to sign",
    ],
)
def test_leak_detector_catches_integer_forms(leaky):
    assert reveals_answer("1234", leaky)


@pytest.mark.parametrize(
    "leaky", ["It is 3/4.", "It is \\frac{3}{4}.", "It is \\dfrac34", "about 0.75", "0.750", "6/8"]
)
def test_leak_detector_catches_fraction_forms(leaky):
    assert reveals_answer("3/4", leaky)


@pytest.mark.parametrize(
    "clean", ["Too low; recheck the carry.", "Add the hundreds first.", "Close, within 10%."]
)
def test_leak_detector_passes_clean_feedback(clean):
    assert not reveals_answer("1234", clean)
    assert not reveals_answer("3/4", clean)


def test_leak_detector_non_numeric_answers():
    assert reveals_answer("Paris", "It is paris, of course")
    assert reveals_answer("x^2 + 1", "the answer is x^2+1")
    assert not reveals_answer("Paris", "Think about the capital of France, not a comparison.")


def test_model_teacher_leak_guard():
    forms = ["The answer is {a}.", "\\boxed{{{a}}}", "It's {a:,}!", "{words}"]
    prompts = []

    def leaky_teacher(prompt: str) -> str:
        prompts.append(prompt)
        return forms[len(prompts) % len(forms)].format(a=answer, words=number_to_words(answer))

    env = MathFeedbackEnv(families="arithmetic", difficulty=3, teacher=leaky_teacher, max_attempts=10)
    env.reset(seed=5)
    answer = int(env.task.answer)
    for _ in range(8):
        obs, _, _, _, info = env.step(f"\\boxed{{{answer + 7}}}")
        assert info["teacher_leak"] is True
        assert not reveals_answer(env.task.answer, obs) and str(answer) not in obs
        assert "too high" in obs  # the fallback is the rule teacher's hint
    assert env.task.question in prompts[0] and env.task.answer in prompts[0] and str(answer + 7) in prompts[0]

    clean = ModelTeacher(lambda prompt: "Check your carries in the tens column.")
    env = MathFeedbackEnv(families="arithmetic", difficulty=3, teacher=clean)
    env.reset(seed=5)
    obs, _, _, _, info = env.step("\\boxed{1}")
    assert info["teacher_leak"] is False and obs.startswith("Check your carries in the tens column.")


def test_model_teacher_must_return_text():
    env = MathFeedbackEnv(teacher=ModelTeacher(lambda prompt: None))
    env.reset(seed=0)
    with pytest.raises(TypeError, match="must return a str"):
        env.step("\\boxed{100000}")


def test_no_teacher_and_bad_teacher():
    env = MathFeedbackEnv(teacher="none")
    env.reset(seed=1)
    obs, _, _, _, _ = env.step("\\boxed{100000}")
    assert obs.startswith("Incorrect, try again.")
    assert isinstance(NoTeacher().feedback(env.task, "", "1", 1), str)
    assert isinstance(MathFeedbackEnv(teacher=RuleTeacher(lambda t, a: "Nope.")).teacher, RuleTeacher)
    with pytest.raises(ValueError, match="teacher must be"):
        MathFeedbackEnv(teacher="oracle")


class _Hinting(Teacher):
    def feedback(self, task, attempt_text, extracted_answer, attempt_index):
        return "Recheck the last step."


class _Prompting:  # not a subclass: both members given
    informative = False

    def feedback(self, task, attempt_text, extracted_answer, attempt_index):
        return "Wrong. Try again."


@pytest.mark.parametrize("teacher, informative", [
    ("rule", True), ("none", False), ("self", False), (lambda prompt: "Recheck the last step.", True),
    (_Hinting(), True), (_Prompting(), False),
])
def test_teacher_feedback_info_follows_the_teachers_informative_attribute(teacher, informative):
    env = MathFeedbackEnv(teacher=teacher)
    assert env.teacher.informative is informative
    env.reset(seed=2)
    obs, _, _, _, info = env.step("\\boxed{100000}")
    assert info["teacher_feedback"] == (obs.rsplit(" (", 1)[0] if informative else "")
    with pytest.raises(ValueError, match="informative"):  # an object without it is not a Teacher
        MathFeedbackEnv(teacher=type("Bare", (), {"feedback": _Hinting.feedback})())


def test_guarded_feedback_is_usable_without_an_environment():
    task = Task("What is 6 * 7?", "42")
    say = lambda text: ModelTeacher(lambda prompt: text)  # noqa: E731
    hint = lambda task, answer: "Too low."  # noqa: E731
    assert guarded_feedback(say("Multiply again."), task, "", "40", 1, lambda t, x: False, hint) == (
        "Multiply again.", False)
    leaks = lambda t, text: reveals_answer(t.answer, text)  # noqa: E731
    assert guarded_feedback(say("It is 42."), task, "", "40", 1, leaks, hint) == ("Too low.", True)
    assert guarded_feedback(say("It is 42."), task, "", "40", 1, leaks, lambda t, a: "42!") == (
        "Incorrect, try again.", True)
    assert guarded_feedback(say("  \n "), task, "", "40", 1, leaks, hint) == ("Incorrect, try again.", False)


# ---- user datasets ----------------------------------------------------------------------------

ROWS = [
    {"q": "What is 6 × 7?", "a": 42, "difficulty": "easy"},
    {"q": "Half of 3?", "a": "\\frac{3}{2}", "sol": "3 / 2"},
]


def test_dataset_from_jsonl_and_list(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    for source in (path, str(path), ROWS):
        env = MathFeedbackEnv(dataset=source, question_key="q", answer_key="a", solution_key="sol")
        obs, info = env.reset(options={"index": 1})
        assert obs.startswith("Half of 3?") and info["family"] == "dataset" and info["index"] == 1
        _, reward, _, _, _ = env.step("Answer: 1.5")
        assert reward == 1.0
        obs, info = env.reset(seed=0, options={"index": 0})
        assert info["difficulty"] == "easy"
        _, reward, _, _, _ = env.step(env.expert_action())
        assert reward == 1.0


def test_dataset_from_hf_datasets():
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_list([{"question": "1+1?", "answer": "2"}])
    env = MathFeedbackEnv(dataset=data)
    env.reset(seed=0)
    assert env.step("\\boxed{2}")[1] == 1.0


def test_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match=r"no column 'question' \(columns found: \['a', 'q'\]\)"):
        load_tasks([{"q": "x", "a": "1"}])
    with pytest.raises(ValueError, match="no column 'answer'"):
        load_tasks([{"question": "x"}])
    with pytest.raises(FileNotFoundError, match="not found"):
        MathFeedbackEnv(dataset=tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1", "answer": "2"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2 is not valid JSON"):
        load_tasks(bad)
    with pytest.raises(ValueError, match="empty"):
        load_tasks([])
    with pytest.raises(ValueError, match="not both"):
        MathFeedbackEnv(dataset=ROWS, families="word")


def test_task_option_plays_a_given_task():
    env = MathFeedbackEnv()
    obs, _ = env.reset(options={"task": Task("What is 2 + 2?", "4")})
    assert obs.startswith("What is 2 + 2?")
    assert env.step("four? no: 4")[1] == 1.0


def test_held_out_problems_are_the_generator_at_disjoint_seeds_not_disjoint_problems():
    """The split the docstring states: the same families in the same shares, and small task spaces
    repeat (nearly every difficulty-1 "linear" held-out problem is a training problem)."""
    from interplay.seeds import EVAL_SEED_START

    env = MathFeedbackEnv()

    def problems(seeds) -> list[tuple[str, str, str]]:
        return [(env.reset(seed=s)[1]["family"], env.task.question, env.task.answer) for s in seeds]

    train, held_out = problems(range(3000)), problems(range(EVAL_SEED_START, EVAL_SEED_START + 300))
    for family in FAMILIES:
        shares = [sum(t[0] == family for t in tasks) / len(tasks) for tasks in (train, held_out)]
        assert abs(shares[0] - shares[1]) < 0.08
    seen = set(train)
    linear = [t for t in held_out if t[0] == "linear"]
    assert linear and sum(t in seen for t in linear) / len(linear) > 0.9  # ~200 problems, ~750 drawn in training
    assert 0.2 < sum(t in seen for t in held_out) / len(held_out) < 0.9
