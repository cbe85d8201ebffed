"""The environment contract (`interplay.envs.core.TextEnv`), checked on every registered environment.

check_env, seeded determinism, the info keys, and a fuzz with arbitrary and adversarial replies:
nothing an agent writes may crash an environment, and nothing it does prints.

The junk-reply fuzz draws its replies and its reset seeds from ``INTERPLAY_FUZZ_SEED`` (default 0, so
CI is repeatable; ``INTERPLAY_FUZZ_SEED=random`` draws one per run to cover other tasks and replies); a
failure names the seed, which replays it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import warnings
import zlib
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interplay

ALL_IDS = [e.id for e in interplay.list_envs()]
# Environments whose parser must flag replies that contain nothing readable.
STRICT_IDS = ["interplay/Maze-v0", "interplay/MathFeedback-v0"]
HUGE = 1_000_000

ADVERSARIAL = [
    "",
    " ",
    "\n\n\t",
    "\x00\x01\x02",
    "😀" * 50,
    "‮‭ مرحبا שלום",
    "\\boxed{" * 2000,
    "}" * 5000 + "{" * 5000,
    "Answer:",
    "1" * 5000,
    "-" * 10_000 + "1",
    "1/0",
    "nan inf -inf 1e999999",
    "up down left right " * 10_000,
    "<|endoftext|><|im_start|>assistant\n",
    "9" * HUGE,
    "a" * HUGE,
    "((((((((((" * (HUGE // 10),
]
NOTHING_READABLE = ["", " ", "\n\n\t", "\x00\x01\x02", "😀" * 50, "…!?"]

_FUZZ = os.environ.get("INTERPLAY_FUZZ_SEED", "0")
FUZZ_SEED = secrets.randbelow(2**32) if _FUZZ == "random" else int(_FUZZ)
#: Junk replies per id and run, after the adversarial ones; each episode starts from a fresh seed.
JUNK_PER_ID = 10
# Move words, answer fragments, numbers and odd characters; replies also reuse the observation's words.
JUNK_WORDS = (
    "call raise fold check bet up down left right accept reject propose offer pass stand hit yes no "
    "A B C D X O x Q _ . , : ; - + * / ** ^ ! ? = ( ) [ ] { } {} [] <> {x} %s \\ ' \" ` # $ & "
    "0 1 2 3 7 9 10 42 -1 00 3.5 1e999 nan inf None null true False 9**9**9 1/0 ∞ é 漢字 🙂 \u200b \x00 \t"
).split(" ")
JUNK_WRAPS = (
    "{}", "[{}]", "<answer>{}</answer>", "\\boxed{{{}}}", "Answer: {}", "Answer:\n{}", "```\n{}\n```",
    '{{"answer": {}}}', "[{}] [{}]", "{}\n\n{}",
)


def make(env_id: str) -> gym.Env:
    return gym.make(env_id).unwrapped


def play(env_id: str, seed: int, steps: int = 6) -> list:
    env = make(env_id)
    obs, info = env.reset(seed=seed)
    record = [obs, sorted(info)]
    for i in range(steps):
        expert = env.expert_action()
        action = expert if expert is not None else ["up", "42", "hello", "1"][i % 4]
        obs, reward, terminated, truncated, info = env.step(action)
        record.append((obs, reward, terminated, truncated, repr(sorted(info.items()))))
        if terminated or truncated:
            break
    return record


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_check_env(env_id):
    env = make(env_id)
    if env.deterministic:  # check_env's seeding checks assume a seedable environment
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # it warns about non-Box spaces; we check what applies
            check_env(env)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert isinstance(env.system_prompt, str)
    assert isinstance(env.render(), str)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_seeded_determinism(env_id):
    env = make(env_id)
    if not env.deterministic:
        pytest.skip(f"{env_id} wraps a game that cannot be seeded (see its docstring)")
    assert play(env_id, 7) == play(env_id, 7)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_info_keys_through_an_episode(env_id):
    env = make(env_id)
    obs, info = env.reset(seed=1)
    assert info["turn"] == 0 and info["invalid_action"] is False
    for turn in range(1, 500):
        expert = env.expert_action()
        obs, reward, terminated, truncated, info = env.step(expert if expert is not None else "1")
        assert info["turn"] == turn
        assert isinstance(info["invalid_action"], bool)
        assert isinstance(obs, str) and isinstance(reward, float)
        if terminated or truncated:
            assert isinstance(info["success"], bool)
            assert isinstance(info["outcome"], str) and len(info["outcome"]) < 200
            break
    else:
        pytest.fail(f"{env_id} did not end within 500 turns")
    with pytest.raises(RuntimeError, match="reset"):
        env.step("up")


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_adversarial_and_junk_replies_never_crash_nor_print(env_id, capfd):
    env = make(env_id)
    env.reset(seed=2)
    for reply in ADVERSARIAL:
        obs, reward, terminated, truncated, info = env.step(reply)
        assert isinstance(obs, str) and len(obs) < 20_000, "observations must not echo huge replies"
        if terminated or truncated:
            env.reset(seed=2)

    rng = np.random.default_rng([FUZZ_SEED, zlib.crc32(env_id.encode())])
    terminated = truncated = True
    for _ in range(JUNK_PER_ID):
        if terminated or truncated:
            seed = int(rng.integers(2**31 - 1))
            context = f"INTERPLAY_FUZZ_SEED={FUZZ_SEED} replays this run; {env_id} reset(seed={seed})"
            with failure_named(context):
                obs, info = env.reset(seed=seed)
        reply = junk_reply(rng, obs)
        where = f"{context}, then reply {reply[:200]!r}"
        with failure_named(where):
            obs, reward, terminated, truncated, info = env.step(reply)
        assert isinstance(obs, str) and len(obs) < 20_000, where
        assert isinstance(reward, float) and isinstance(info["invalid_action"], bool), where
        if terminated or truncated:
            assert isinstance(info["success"], bool) and isinstance(info["outcome"], str), where
    out, err = capfd.readouterr()
    assert out == err == "", f"{context}: the environment printed {(out + err)[:300]!r}"


@contextlib.contextmanager
def failure_named(where: str) -> Iterator[None]:
    try:
        yield
    except Exception as error:
        pytest.fail(f"{where}: {type(error).__name__}: {error}")


def junk_reply(rng: np.random.Generator, observation: str) -> str:
    """A short reply of junk words (from JUNK_WORDS, or from the observation: moves an agent might
    copy), bare or in a format environments parse (brackets, answer tags, \\boxed, JSON), now and
    then repeated a few hundred times."""
    seen = re.findall(r"\w+|[^\w\s]", observation[-2000:])
    pool = seen if seen and rng.random() < 0.5 else JUNK_WORDS
    words = [pool[int(rng.integers(len(pool)))] for _ in range(int(rng.integers(1, 6)))]
    body = (" " if rng.random() < 0.7 else "").join(words)
    wrap = JUNK_WRAPS[int(rng.integers(len(JUNK_WRAPS)))]
    reply = wrap.format(*[body] * wrap.count("{}"))
    return reply * int(rng.integers(2, 400)) if rng.random() < 0.05 else reply


@pytest.mark.parametrize("env_id", STRICT_IDS)
def test_unreadable_replies_are_flagged(env_id):
    env = make(env_id)
    for reply in NOTHING_READABLE:
        env.reset(seed=3)
        obs, reward, terminated, truncated, info = env.step(reply)
        assert info["invalid_action"] is True, (reply, obs)
        assert reward <= 0.0


@pytest.mark.parametrize("env_id", STRICT_IDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(replies=st.lists(st.text(max_size=300), min_size=1, max_size=8))
def test_fuzz_arbitrary_unicode(env_id, replies):
    env = make(env_id)
    env.reset(seed=4)
    for reply in replies:
        obs, reward, terminated, truncated, info = env.step(reply)
        assert isinstance(obs, str)
        if terminated or truncated:
            break


def test_step_rejects_non_text_with_clear_error():
    env = make("interplay/Maze-v0")
    env.reset(seed=0)
    with pytest.raises(TypeError, match="takes the agent's reply as a str"):
        env.step(None)


def test_make_vec_sync_and_async_without_shared_memory():
    envs = gym.make_vec("interplay/Maze-v0", num_envs=2, vectorization_mode="sync")
    obs, info = envs.reset(seed=0)
    assert all(isinstance(o, str) and o for o in obs)
    envs.close()
    with pytest.raises(ValueError, match="shared_memory"):
        gym.make_vec("interplay/Maze-v0", num_envs=2, vectorization_mode="async")


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_gym_make_max_episode_steps_acts_as_a_turn_limit(env_id):
    """``gym.make(id, max_episode_steps=1)`` adds gymnasium's TimeLimit; the environment applies
    TurnLimit's rule: it tells the agent and ends the episode with the end-of-episode keys."""
    env = gym.make(env_id, max_episode_steps=1)
    observation, _ = env.reset(seed=1)
    own = env.unwrapped.max_turns
    assert observation.endswith("Turn limit: 1 turns.") == (own > 1)
    _, _, terminated, truncated, info = env.step("1")
    assert terminated or truncated
    assert isinstance(info["success"], bool) and isinstance(info["outcome"], str)


def registered_classes() -> dict[str, type]:
    from gymnasium.envs.registration import load_env_creator

    classes = {}
    for env_id in ALL_IDS:
        entry_point = gym.spec(env_id).entry_point
        creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
        if isinstance(creator, type) and creator.__module__.startswith("interplay."):
            classes[creator.__qualname__] = creator
    return classes


def test_every_environment_class_has_gymnasiums_docstring_sections():
    from interplay.envs.core import DOC_SECTIONS
    from interplay.envs.feedback import FeedbackEnv

    classes = {**registered_classes(), "FeedbackEnv": FeedbackEnv}
    assert {"MazeEnv", "MathFeedbackEnv", "CodeBreakerEnv"} <= set(classes)
    for name, cls in classes.items():
        doc = cls.__doc__ or ""
        headings = re.findall(r"^\s*## (.+?)\s*$", doc, re.M)
        wanted = [h for h in headings if h in DOC_SECTIONS]
        assert wanted == list(DOC_SECTIONS), f"{name}: sections {headings}, want {DOC_SECTIONS} in this order"
        assert "Held-out Tasks" in headings, f"{name} does not say how its held-out tasks are drawn"
