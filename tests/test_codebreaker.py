import itertools

import gymnasium as gym
import numpy as np
import pytest

import interplay  # noqa: F401
from interplay.envs.codebreaker import CodeBreakerEnv, code_split, digit_hints
from interplay.envs.feedback import NO_ANSWER


def play_expert(env: CodeBreakerEnv, seed: int) -> dict:
    env.reset(seed=seed)
    while True:
        _, _, terminated, truncated, info = env.step(env.expert_action())
        if terminated or truncated:
            return info


def test_made_by_id_and_first_observation_is_short():
    env = gym.make("interplay/CodeBreaker-v0")
    obs, info = env.reset(seed=0)
    assert obs == "code 3 digits"
    assert info["split"] in ("train", "eval")


@pytest.mark.parametrize("digits", [1, 3, 4])
def test_expert_finds_every_code_within_the_attempts(digits):
    env = CodeBreakerEnv(digits=digits, max_attempts=4)
    assert all(play_expert(env, seed)["success"] for seed in range(300))


def test_hints_are_digitwise_and_never_the_code():
    assert digit_hints("382", "555") == "-+-"
    assert digit_hints("382", "382") == "==="
    env = CodeBreakerEnv()
    for seed in range(200):
        env.reset(seed=seed)
        secret = env.task.answer
        for guess in ("000", "999", secret[::-1], secret[:2] + str((int(secret[2]) + 1) % 10)):
            if guess == secret or env.finished:
                continue
            obs, *_ = env.step(f"my guess is {guess}")
            assert secret not in obs


def all_codes(digits: int) -> list[str]:
    return ["".join(d) for d in itertools.product("0123456789", repeat=digits)]


def test_train_and_eval_codes_are_disjoint_and_cover_everything():
    held_out = [c for c in all_codes(3) if code_split(c) == "eval"]
    assert len(held_out) == 200  # exactly a fifth
    train, evaluation = CodeBreakerEnv(split="train"), CodeBreakerEnv(split="eval")
    seen_train = {train.reset(seed=s)[1] and train.task.answer for s in range(300)}
    seen_eval = {evaluation.reset(seed=s)[1] and evaluation.task.answer for s in range(300)}
    assert not seen_train & seen_eval
    assert all(code_split(c) == "eval" for c in seen_eval)
    assert all(code_split(c) == "train" for c in seen_train)


def position_counts(codes: list[str], position: int) -> np.ndarray:
    return np.bincount([int(c[position]) for c in codes], minlength=10)


@pytest.mark.parametrize("digits", [2, 3, 4])
def test_held_out_codes_spread_over_every_digit_like_the_training_codes(digits):
    """Per digit position, the held-out and training codes' digit counts are a 2x10 table whose
    chi-square (9 degrees of freedom) stays below 27.9, the 0.1% critical value: the held-out fifth
    is not a shifted distribution. (The old rule, ``(7919 n + d) % 5 == 0``, held out exactly the
    codes ending in two digits: chi-square 100 on the last position of 2-digit codes, 1000 for 3.)"""
    codes = all_codes(digits)
    held_out = [c for c in codes if code_split(c) == "eval"]
    train = [c for c in codes if code_split(c) == "train"]
    assert len(held_out) == len(codes) // 5
    for position in range(digits):
        table = np.stack([position_counts(held_out, position), position_counts(train, position)]).astype(float)
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
        chi2 = ((table - expected) ** 2 / expected).sum()
        assert chi2 < 27.9, (position, table[0])
        if digits > 2:  # (20 held-out 2-digit codes can miss a value by chance)
            assert (table[0] > 0).all()  # every digit value occurs at every position among held-out codes
    if digits == 3:  # shares of each digit value: within 5 points of the training codes'
        for position in range(digits):
            share = position_counts(held_out, position) / len(held_out)
            assert np.abs(share - position_counts(train, position) / len(train)).max() < 0.06


def test_the_split_is_a_fixed_permutation_of_all_codes():
    from interplay.envs.codebreaker import code_rank

    for digits in (1, 2, 3):
        ranks = sorted(code_rank(c) for c in all_codes(digits))
        assert ranks == list(range(10**digits))  # a bijection: every rank once
    assert code_rank("123", key=1) != code_rank("123") or code_rank("124", key=1) != code_rank("124")
    assert code_split("12345678") in ("train", "eval")  # 8 digits: computed per code, no table


def test_last_run_of_exactly_n_digits_is_the_guess():
    env = CodeBreakerEnv()
    assert env.extract_answer("first 123 then 4567 then 890") == "890"
    assert env.extract_answer("12 and 3456") is None
    assert env.extract_answer("") is None


def test_unreadable_reply_is_invalid_and_costs_an_attempt():
    env = CodeBreakerEnv()
    env.reset(seed=1)
    obs, reward, terminated, truncated, info = env.step("no idea")
    assert info["invalid_action"] and "3 digits" in obs and info["turn"] == 1


def test_bad_kwargs_say_what_is_accepted():
    with pytest.raises(ValueError, match="from 1 to 8"):
        CodeBreakerEnv(digits=0)
    with pytest.raises(ValueError, match="split"):
        CodeBreakerEnv(split="test")


def test_held_out_seeds_draw_held_out_codes_by_default():
    from interplay.seeds import EVAL_SEED_START

    env = CodeBreakerEnv()
    for seed in range(100):
        assert env.reset(seed=seed)[1]["split"] == "train"
        assert env.reset(seed=EVAL_SEED_START + seed)[1]["split"] == "eval"


def test_without_instructions_observations_are_only_task_and_hints():
    env = CodeBreakerEnv(instructions=False)
    assert env.system_prompt == ""
    assert env.reset(seed=0)[0] == "code 3 digits"
    obs, *_ = env.step("444")
    assert obs == digit_hints(env.task.answer, "444")


def test_deterministic_expert_has_no_distribution_and_rollout_records_none():
    from interplay.agents import ExpertAgent
    from interplay.rollout import EnvSpec, rollout

    env = CodeBreakerEnv()
    env.reset(seed=3)
    assert env.expert_action_probs() is None  # TextEnv's default: a deterministic expert
    [t] = rollout(EnvSpec("interplay/CodeBreaker-v0", seed=3), ExpertAgent())
    assert t.success and not any("expert_action_probs" in info for info in t.infos)
    [m] = rollout(EnvSpec("interplay/Maze-v0", {"size": 3}, seed=3), ExpertAgent())
    assert all("expert_action_probs" in info for info in m.infos[1:])


def test_outcome_hints_names_the_last_guess_hint_pattern() -> None:
    env = CodeBreakerEnv(outcome="hints")
    env.reset(seed=3)
    secret = env.task.answer
    wrong = "".join(str((int(d) + 1) % 10) for d in secret)
    env.step(wrong)
    env.step(wrong)
    env.step(wrong)
    *_, info = env.step(wrong)
    assert info["outcome"] == digit_hints(secret, wrong)
    env.reset(seed=3)
    *_, info = env.step(secret)
    assert info["outcome"] == "==="
    env.reset(seed=3)
    for _ in range(4):
        *_, info = env.step("no digits")
    assert info["outcome"] == NO_ANSWER


def test_outcome_kind_is_checked() -> None:
    with pytest.raises(ValueError, match="outcome='final'.*guess"):
        CodeBreakerEnv(outcome="final")


def test_decoy_teacher_hints_in_the_rule_format_about_another_code() -> None:
    rule, decoy = CodeBreakerEnv(teacher="rule"), CodeBreakerEnv(teacher="decoy")
    rule.reset(seed=11)
    decoy.reset(seed=11)
    assert rule.task.answer == decoy.task.answer  # the decoy teacher leaves the task draw alone
    other = decoy.teacher.decoy(decoy.task)
    assert other.answer != decoy.task.answer and len(other.answer) == 3
    for guess in ("000", "555", "999"):
        hint_rule = rule.step(guess)[0]
        hint_decoy = decoy.step(guess)[0]
        assert hint_decoy.split()[0] == digit_hints(other.answer, guess)
        assert hint_rule.split()[0] == digit_hints(rule.task.answer, guess)
        assert set(hint_decoy.split()[0]) <= set("=+-")
    again = CodeBreakerEnv(teacher="decoy")
    again.reset(seed=11)
    assert again.teacher.decoy(again.task).answer == other.answer  # reproducible: one task, one decoy
    assert not decoy.teacher.informative
