"""reasoning-gym tasks as feedback episodes (interplay/envs/reasoning_gym.py), on the real package."""

from __future__ import annotations

import subprocess
import sys
import time

import gymnasium as gym
import pytest

pytest.importorskip("reasoning_gym")

import interplay  # noqa: E402
from interplay.envs import reasoning_gym as rg_env  # noqa: E402
from interplay.envs.reasoning_gym import NO_REFERENCE, ReasoningGymEnv, register_reasoning_gym  # noqa: E402

register_reasoning_gym()  # idempotent; the lead wires it into register_builtin
NAMED = ["maze", "gsm_symbolic", "countdown", "sudoku"]
ALL_TASKS = sorted(rg_env.task_names())
# Wrong answers in each named task's own format.
WRONG = {
    "maze": "<answer>999</answer>",
    "gsm_symbolic": "<answer>-1</answer>",
    "countdown": "<answer>1 + 2</answer>",
    "sudoku": "<answer>" + "\n".join(" ".join("123456789") for _ in range(9)) + "</answer>",
}


def make(task: str, **kwargs) -> ReasoningGymEnv:
    return gym.make(f"interplay/ReasoningGym-{task}-v0", **kwargs).unwrapped


def test_registration_is_cheap_and_does_not_import_reasoning_gym():
    code = (
        "import sys, time, interplay\n"
        "from interplay.envs.reasoning_gym import register_reasoning_gym\n"
        "t = time.perf_counter(); register_reasoning_gym(); t = time.perf_counter() - t\n"
        "ids = [e.id for e in interplay.list_envs() if e.id.startswith('interplay/ReasoningGym-')]\n"
        "print(len(ids), 'reasoning_gym' in sys.modules, t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    count, imported, seconds = out.split()
    assert int(count) == len(ALL_TASKS) >= 100
    assert imported == "False"
    assert float(seconds) < 0.1


def test_listed_tasks_match_reasoning_gyms_registry():
    from reasoning_gym.factory import DATASETS

    assert set(ALL_TASKS) == set(DATASETS) - {"composite"}
    categories = {name: cls.__module__.split(".")[1] for name, (cls, _) in DATASETS.items()}
    assert all(categories[name] == category for name, category in rg_env.task_names().items())


@pytest.mark.parametrize("task", NAMED)
def test_wrong_answer_gets_feedback_without_the_answer_then_right_answer_wins(task):
    env = make(task)
    obs, info = env.reset(seed=0)
    assert "<answer>" in obs and info["task"] == task
    reference = env.task.answer
    obs, reward, terminated, truncated, info = env.step(WRONG[task])
    assert reward == 0.0 and not terminated and info["correct"] is False
    assert not info["invalid_action"] and 0.0 <= info["score"] < 1.0
    assert "2 attempts left" in obs and not env.reveals_answer(env.task, obs)
    assert reference not in obs
    obs, reward, terminated, truncated, info = env.step(env.expert_action())
    assert (obs, reward, terminated, info["success"], info["score"]) == ("Correct!", 1.0, True, True, 1.0)


@pytest.mark.parametrize("task", NAMED)
def test_same_seed_same_episode_and_seeds_differ(task):
    def episode(seed: int) -> list:
        env = make(task)
        record = [env.reset(seed=seed)[0]]
        for reply in (WRONG[task], "no tags here", "Answer: 3"):
            record.append(env.step(reply)[:4])
        return record

    assert episode(3) == episode(3)
    questions = {make(task).reset(seed=s)[0] for s in range(4)}
    assert len(questions) == 4


def test_partial_scores_reach_info_and_the_rule_teacher():
    env = make("countdown")
    env.reset(seed=0)
    obs, reward, *_, info = env.step("<answer>1 + 2</answer>")  # wrong numbers: reasoning-gym gives 0.05
    assert info["score"] == pytest.approx(0.05) and reward == 0.0
    assert obs.startswith("Not fully correct: it scores 0.05 out of 1.")


def test_answer_formats_tags_boxed_answer_block_and_whole_reply():
    env = make("sudoku")
    env.reset(seed=1)
    grid = env.task.answer
    assert env.extract_answer(f"thinking...\n<answer>\n{grid}\n</answer>") == grid
    assert env.extract_answer(f"\\boxed{{{grid}}}") == grid
    assert env.extract_answer(f"Let me solve it.\nAnswer:\n{grid}\n\nDone.") == grid
    assert env.extract_answer(f"  {grid}\n") == grid and env._source == "reply"
    assert env.extract_answer("Answer: 5\nmore text") == "5"
    assert env.extract_answer(" \n\t") is None
    obs, reward, terminated, truncated, info = env.step(f"Here it is.\nAnswer:\n{grid}")
    assert reward == 1.0 and terminated


def test_whole_reply_fallback_is_named_in_the_hint():
    env = make("maze")
    env.reset(seed=0)
    obs, *_ = env.step("I think it is about ninety-nine steps")
    assert "No <answer> tags found" in obs


def test_teachers_none_and_model_behind_the_leak_guard():
    env = make("gsm_symbolic", teacher="none")
    env.reset(seed=0)
    assert env.step("<answer>-1</answer>")[0] == "Incorrect, try again. (2 attempts left)"

    prompts = []

    def leaky(prompt: str) -> str:
        prompts.append(prompt)
        return f"So close! It is {env.task.answer}."

    env = make("gsm_symbolic", teacher=leaky)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("<answer>-1</answer>")
    assert info["teacher_leak"] is True and env.task.answer not in obs
    assert env.task.question in prompts[0]


def test_agent_text_never_reaches_eval_in_scorers():
    # string_insertion's scorer eval()s non-exact answers; countdown's parses them with sympy (an eval).
    payload = "__import__('sys').modules.__setitem__('interplay_pwned', 1)"
    for task, reply in (("string_insertion", payload), ("spiral_matrix", f"[{payload}]"), ("countdown", payload)):
        env = make(task)
        env.reset(seed=0)
        assert env.step(f"<answer>{reply}</answer>")[4]["score"] == 0.0
    assert "interplay_pwned" not in sys.modules
    env = make("countdown")
    env.reset(seed=0)
    start = time.perf_counter()
    obs, *_ = env.step("<answer>9**9**9**9</answer>")  # a power tower would hang sympy
    assert time.perf_counter() - start < 1.0 and "plain expression" in obs


def test_safe_to_score_accepts_reference_style_expressions():
    accepted = ["x**2 + 3*x", "(x**2 + 1)**(3/2)", "3*exp(-7*x**2 - 7*x - 9) + C", "Integral(x, x)", "1*(5*4 + 4)"]
    rejected = ["9**9**9", "(9**99)**99", "99999**2", "9!", "open(1)", "x.subs", "a_b", "2^3^4"]
    assert all(rg_env.safe_to_score("simple_integration", a, "") for a in accepted)
    assert not any(rg_env.safe_to_score("simple_integration", a, "") for a in rejected)
    assert rg_env.safe_to_score("n_queens", "[['Q', '_']]", "") and not rg_env.safe_to_score("n_queens", "f(1)", "")


def test_config_passthrough_and_clear_errors():
    env = make("countdown", config={"min_numbers": 3, "max_numbers": 3})
    env.reset(seed=5)
    assert len(env.task.entry["metadata"]["numbers"]) == 3
    with pytest.raises(ValueError, match="Accepted keys: .*min_numbers"):
        ReasoningGymEnv("countdown", config={"numbers": 3})
    with pytest.raises(ValueError, match="must not set 'seed'"):
        ReasoningGymEnv("countdown", config={"seed": 1})
    with pytest.raises(ValueError, match="unknown reasoning-gym task 'countdwn'"):
        ReasoningGymEnv("countdwn")
    env.reset(options={"dataset_seed": 17})
    assert env.task.metadata["dataset_seed"] == 17
    with pytest.raises(TypeError, match="ReasoningGymTask"):
        env.reset(options={"task": interplay.envs.feedback.Task("q", "a")})


def test_reseeded_datasets_give_the_same_entries_as_fresh_ones():
    import reasoning_gym

    for task in sorted(rg_env._RESEEDABLE):
        for seed in (7, 2**31 - 2):
            fresh = reasoning_gym.create_dataset(task, seed=seed, size=1)[0]
            assert rg_env._dataset(task, "{}", seed)[0] == fresh, (task, seed)


def test_expert_solves_every_task_with_a_reference_on_seed_0():
    failures, no_reference = [], set()
    for task in ALL_TASKS:
        env = make(task)
        env.reset(seed=0)
        expert = env.expert_action()
        if expert is None:
            no_reference.add(task)
            continue
        reward, info = env.step(expert)[1::3]
        if reward != 1.0:
            failures.append((task, info["score"]))
    assert failures == []
    assert no_reference == NO_REFERENCE


def test_expert_solves_every_task_on_more_seeds():
    failures = []
    for task in sorted(set(ALL_TASKS) - NO_REFERENCE):
        env = make(task)
        for seed in range(1, 4):
            env.reset(seed=seed)
            if env.step(env.expert_action())[1] != 1.0:
                failures.append((task, seed))
    assert failures == []


def test_a_seed_the_generator_fails_on_is_replaced_by_seeds_drawn_from_it(monkeypatch, capfd):
    class Flaky:
        def __init__(self, seed: int) -> None:
            self.seed = seed

        def __getitem__(self, index: int) -> dict:
            print("Error generating I/O pair: No module named 'scipy'")
            if self.seed % 4:
                raise TypeError("Object of type Integer is not JSON serializable")
            return {"question": f"q{self.seed}", "answer": "1", "metadata": {}}

    monkeypatch.setattr(rg_env, "_dataset", lambda task, config_json, seed: Flaky(seed))
    entry = rg_env._entry.__wrapped__("flaky", "{}", 1)  # past the cache
    seeds = [rg_env._retry_seed(1, attempt) for attempt in range(1, rg_env.GENERATION_TRIES)]
    assert entry["question"] == f"q{next(s for s in seeds if s % 4 == 0)}"
    assert rg_env._entry.__wrapped__("flaky", "{}", 1) == entry
    assert capfd.readouterr() == ("", "")

    monkeypatch.setattr(Flaky, "__getitem__", lambda self, index: 1 / 0)
    with pytest.raises(RuntimeError, match="could not generate a 'flaky' entry .* ZeroDivisionError"):
        rg_env._entry.__wrapped__("flaky", "{}", 1)


@pytest.mark.skipif(rg_env.installed_version() != rg_env._LISTED_VERSION, reason="seeds found with 0.1.25")
def test_codeio_seeds_whose_generator_failed_give_a_valid_task_silently(capfd):
    # reasoning-gym's codeio generator, on reset seed 233, printed "No module named 'scipy'" and gave a
    # placeholder task (empty input and output, answer "{}"); on 970 it raised "TypeError: Object of
    # type int64 is not JSON serializable".
    for seed in (233, 970):
        env = make("codeio")
        obs, _ = env.reset(seed=seed)
        assert env.task.entry["metadata"]["input_data"] and env.task.answer != "{}"
        rg_env._entry.cache_clear()
        assert make("codeio").reset(seed=seed)[0] == obs
        assert env.step(env.expert_action())[1] == 1.0
    assert capfd.readouterr() == ("", "")


def test_codeio_samples_that_write_files_leave_the_working_directory_alone(tmp_path, monkeypatch):
    # Seeds 1292 and 1985 run code samples that write sailor_performance.csv and file_69.txt.
    monkeypatch.chdir(tmp_path)
    for seed in (1292, 1985):
        gym.make("interplay/ReasoningGym-codeio-v0").reset(seed=seed)
    assert list(tmp_path.iterdir()) == []


def test_held_out_tasks_are_the_generator_at_other_dataset_seeds():
    """The split the docstring states: held-out seeds draw other dataset seeds of the same generator;
    where its questions are few (coin_flip) they repeat, where they are many (gcd) they do not."""
    from interplay.seeds import EVAL_SEED_START

    def questions(task: str, seeds) -> list[tuple[int, str]]:
        env = ReasoningGymEnv(task)
        return [(env.reset(seed=s)[1]["dataset_seed"], env.task.question) for s in seeds]

    held_out_seeds = range(EVAL_SEED_START, EVAL_SEED_START + 40)
    for task, repeats in (("coin_flip", True), ("gcd", False)):
        train, held_out = questions(task, range(400)), questions(task, held_out_seeds)
        assert not {s for s, _ in train} & {s for s, _ in held_out}
        seen = {q for _, q in train}
        share = sum(q in seen for _, q in held_out) / len(held_out)
        assert share > 0.5 if repeats else share == 0
