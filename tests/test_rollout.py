"""rollout: batched multi-turn episodes, exact token records, replay, failures, groups, storage, CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from interplay import models
from interplay.agents import AgentError, ExpertAgent, HFAgent, RandomAgent, Reply, TextAgent
from interplay.agents.chat import ChatEncoder
from interplay.cli import main
from interplay.rollout import (
    EnvSpec,
    ReplayMismatch,
    load_trajectories,
    replay,
    rollout,
    save_trajectories,
    to_dataset,
)

MAZE = EnvSpec("interplay/Maze-v0", {"width": 3, "height": 3})
MATH = EnvSpec("interplay/MathFeedback-v0")


class Recording(HFAgent):
    """The tiny HFAgent, remembering every reply its sessions sampled."""

    def start(self, n):
        session = super().start(n)
        act, self.sampled = session.act, []

        def recording_act(new_messages, expert_actions=None):
            replies = act(new_messages, expert_actions)
            self.sampled.append({row: list(reply.token_ids) for row, reply in replies.items()})
            return replies

        session.act = recording_act
        return session


@pytest.fixture(scope="module")
def mixed():
    model, tokenizer = models.load("tiny")
    agent = Recording(model, tokenizer, seed=0, max_new_tokens=8)
    specs = [replace(MAZE, seed=s) for s in (1, 2)] + [replace(MATH, seed=s) for s in (1, 2)]
    return agent, rollout(specs, agent, group_size=2, max_turns=5)


def test_mixed_batch_records_exact_tokens(mixed):
    agent, trajectories = mixed
    tokenizer, encoder = agent.tokenizer, ChatEncoder(agent.tokenizer)
    assert [t.env_id for t in trajectories] == [MAZE.id] * 4 + [MATH.id] * 4
    drift = 0
    for row, t in enumerate(trajectories):
        assert len(t.completion_ids) == len(t.agent_mask) == len(t.logprobs)
        assert 1 <= t.turns <= 5 and len(t.rewards) == t.turns and len(t.infos) == t.turns + 1
        # Agent tokens are exactly the sampled ids, turn by turn, with their log-probs.
        sampled = [turn[row] for turn in agent.sampled if row in turn]
        runs, position = [], 0
        while position < len(t.agent_mask):
            end = position
            while end < len(t.agent_mask) and t.agent_mask[end] == t.agent_mask[position]:
                end += 1
            if t.agent_mask[position]:
                runs.append(t.completion_ids[position:end])
                assert all(lp <= 0 for lp in t.logprobs[position:end])
            else:
                assert all(lp == 0.0 for lp in t.logprobs[position:end])
            position = end
        assert runs == sampled
        # Everything else is the chat template: prompt, then one delta per environment turn.
        messages = t.messages[:-1]  # the last observation is never fed
        assert t.prompt_ids == encoder.prompt(t.messages[: 2 if t.messages[0]["role"] == "system" else 1])
        assert t.completion_ids[-len(sampled[-1]):] == sampled[-1]
        replies = [m["content"] for m in messages if m["role"] == "assistant"]
        assert replies == [tokenizer.decode(ids, skip_special_tokens=True) for ids in sampled]
        # Re-encoding the decoded chat would not give the sampled ids whenever the model sampled a
        # special token inside a reply: the record must not depend on re-tokenization.
        reencoded = encoder.encode(encoder.render(messages, add_generation_prompt=False))
        drift += reencoded != t.prompt_ids + t.completion_ids
        assert tokenizer.decode(t.prompt_ids + t.completion_ids, skip_special_tokens=True) == "".join(
            m["content"] for m in messages
        )
    assert drift > 0, "an untrained model samples special tokens mid-reply; this test needs such drift"


def test_replay_reproduces_every_observation(mixed):
    _, trajectories = mixed
    for t in trajectories:
        observations = replay(t)
        assert observations == [m["content"] for m in t.messages if m["role"] == "user"]
    tampered = replace(trajectories[0], seed=trajectories[0].seed + 1)
    with pytest.raises(ReplayMismatch, match="turn 0"):
        replay(tampered)


def test_groups_share_the_seed_and_manifest(mixed):
    _, trajectories = mixed
    assert [t.group for t in trajectories] == [0, 0, 1, 1, 2, 2, 3, 3]
    for a, b in zip(trajectories[::2], trajectories[1::2]):
        assert a.seed == b.seed and a.messages[:2] == b.messages[:2]
    manifest = trajectories[0].manifest
    assert manifest["env_id"] == MAZE.id and manifest["env_kwargs"] == MAZE.kwargs and manifest["seed"] == 1
    assert manifest["sampling"]["temperature"] == 1.0 and len(manifest["chat_template_sha256"]) == 16
    assert {"torch", "transformers", "gymnasium"} <= set(manifest["versions"])


TURN_LIMIT_5 = {"name": "TurnLimit", "entry_point": "interplay.envs.core:TurnLimit", "kwargs": {"max_turns": 5}}


def test_an_outside_turn_limit_is_a_wrapper_recorded_in_the_manifest(mixed):
    _, trajectories = mixed  # played with rollout(..., max_turns=5)
    for t in trajectories:
        assert t.manifest["wrappers"] == [TURN_LIMIT_5] and "max_turns" not in t.manifest
        # The limit each episode was held to: the tighter of the wrapper's and the environment's own.
        own = t.infos[0]["max_turns"] if t.env_id == MAZE.id else 3  # MathFeedback: 3 attempts
        assert t.manifest["turn_limit"] == min(own, 5) and t.turns <= t.manifest["turn_limit"]
        assert t.truncated == (not t.terminated) and (t.terminated or t.turns == t.manifest["turn_limit"])


def test_the_observation_states_the_turn_limit_that_is_enforced():
    wall = RandomAgent(["nonsense"])  # never reaches the goal: every episode runs to its limit
    # The environment's own limit (here the registered id's), stated in its own words.
    [own] = rollout(EnvSpec("interplay/Maze-4x4-v0", seed=3), wall)
    assert "Reach goal in 12 moves" in own.messages[1]["content"]
    assert own.turns == own.manifest["turn_limit"] == 12 and own.truncated and own.manifest["wrappers"] == []
    # A tighter limit from outside is told to the agent, enforced, recorded, and replayed.
    [capped] = rollout(EnvSpec("interplay/Maze-4x4-v0", seed=3), wall, max_turns=5)
    first = capped.messages[1]["content"]
    assert first == own.messages[1]["content"] + "\nTurn limit: 5 turns."
    assert capped.turns == capped.manifest["turn_limit"] == 5 and capped.truncated
    assert capped.manifest["wrappers"] == [TURN_LIMIT_5]
    assert replay(capped)[0] == first
    # A looser one changes nothing the agent sees: the environment's own limit holds.
    [loose] = rollout(EnvSpec("interplay/Maze-4x4-v0", seed=3), wall, max_turns=50)
    assert loose.messages == own.messages and loose.manifest["turn_limit"] == 12
    # Any environment: CodeBreaker's own limit is 4 attempts.
    [code] = rollout(EnvSpec("interplay/CodeBreaker-v0", seed=1), wall, max_turns=2)
    assert code.messages[1]["content"].endswith("\nTurn limit: 2 turns.") and code.turns == 2


def test_turn_limit_wrapper_refuses_bad_limits_and_steps_past_its_end():
    import gymnasium as gym

    from interplay.envs.core import TurnLimit

    with pytest.raises(ValueError, match="max_turns must be a positive integer"):
        TurnLimit(gym.make(MAZE.id), 0)
    env = TurnLimit(gym.make(MAZE.id, **MAZE.kwargs), 1)
    assert env.spec.additional_wrappers[-1].kwargs == {"max_turns": 1}
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step("nonsense")
    assert env.limit == 1 and truncated and not terminated
    # The episode ends there: the end-of-episode keys every TextEnv sets are set.
    assert info["success"] is False and info["outcome"] == env.unwrapped.outcome()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step("u")


def test_jsonl_and_dataset_round_trip(mixed, tmp_path):
    _, trajectories = mixed
    path = tmp_path / "t.jsonl"
    save_trajectories(path, trajectories)
    assert load_trajectories(path) == trajectories
    dataset = to_dataset(trajectories)
    assert len(dataset) == len(trajectories)
    assert dataset[3]["completion_ids"] == trajectories[3].completion_ids
    assert json.loads(dataset[5]["infos"]) == trajectories[5].infos
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match="t.jsonl:1"):
        load_trajectories(path)


def test_expert_trajectories_tokenize_as_the_chat_template():
    tokenizer = models.load_tokenizer("tiny")
    [t] = rollout(replace(MAZE, seed=5), ExpertAgent(), tokenizer=tokenizer)
    assert t.success and t.agent_mask.count(1) == sum(len(m["content"]) + 1 for m in t.messages if m["role"] == "assistant")
    rendered = ChatEncoder(tokenizer).render(t.messages[:-1], add_generation_prompt=False)
    assert tokenizer.decode(t.prompt_ids + t.completion_ids) == rendered
    assert t.completion_ids[-1] == tokenizer.eos_token_id  # TRL counts episodes not ending in eos as truncated


class Flaky(TextAgent):
    """Answers 'u', except: garbage (None) for one task, an exception for another."""

    name = "flaky"

    def __init__(self, garbage_task: str, raising_task: str) -> None:
        self.garbage_task, self.raising_task = garbage_task, raising_task

    def act(self, histories, expert_actions=None):
        replies = super().act(histories, expert_actions)
        return [None if self._task(h) == self.garbage_task else r for h, r in zip(histories, replies)]

    def reply(self, history, expert_action):
        if self._task(history) == self.raising_task:
            raise RuntimeError("boom")
        return "u"

    @staticmethod
    def _task(history):
        return next(m["content"] for m in history if m["role"] == "user")


def test_a_failing_agent_does_not_corrupt_other_episodes():
    specs = [replace(MAZE, seed=s) for s in range(4)]
    reference = rollout(specs, RandomAgent(["u"]), max_turns=3)
    tasks = [t.messages[1]["content"] for t in reference]
    assert len(set(tasks)) == 4
    trajectories = rollout(specs, Flaky(tasks[1], tasks[2]), max_turns=3)
    for row, error in ((1, "returned NoneType"), (2, "boom")):
        assert all(error in info["agent_error"] for info in trajectories[row].infos[1:])
        assert all(m["content"] == "" for m in trajectories[row].messages if m["role"] == "assistant")
    for row in (0, 3):
        assert trajectories[row].messages == reference[row].messages
        assert all("agent_error" not in info for info in trajectories[row].infos)

    class Raising(TextAgent):
        def act(self, histories, expert_actions=None):
            raise ValueError("model server exploded")

    class Short(TextAgent):
        def act(self, histories, expert_actions=None):
            return [Reply("u")]

    with pytest.raises(AgentError, match="exploded"):
        rollout(specs, Raising())
    with pytest.raises(AgentError, match="1 replies for 4"):
        rollout(specs, Short())


def test_cli_eval_writes_json(tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(["eval", "--env", "interplay/Maze-v0", "--model", "tiny", "-n", "3", "--samples", "2",
                 "--max-turns", "2", "--max-new-tokens", "4", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result) >= {"env", "model", "n_episodes", "success_rate", "mean_turns", "invalid_rate"}
    assert result["n_episodes"] == 6 and 0 < result["mean_turns"] <= 2
    assert "success rate" in capsys.readouterr().out
    assert main(["eval", "--env", "interplay/Mazee-v0", "-n", "1"]) == 2
    assert "Did you mean" in capsys.readouterr().err


def test_cli_rollout_and_model(tmp_path):
    assert main(["model", "tiny", "--out", str(tmp_path / "m")]) == 0
    out = tmp_path / "r.jsonl"
    assert main(["rollout", "--env", "interplay/Maze-v0", "--model", str(tmp_path / "m"), "-n", "2",
                 "--max-turns", "2", "--max-new-tokens", "4", "--out", str(out)]) == 0
    assert [t.seed for t in load_trajectories(out)] == [0, 1]
