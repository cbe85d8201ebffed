"""interplay.integrations.trl.environment_factory: the class contract, and TRL's GRPOTrainer really calling it.

The end-to-end test fine-tunes the tiny random-init Qwen3 model (real Qwen3 tokenizer and chat template,
2 layers, width 32) on expert maze transcripts in the template's tool-call format, so that it emits
parseable ``<tool_call>`` blocks, then runs two GRPO steps with ``environment_factory`` and checks what
TRL did: the tool was called on the environment instances, each instance was reset with its row's seed,
and the reward functions saw success, outcome and turns.
"""

from __future__ import annotations

import inspect
import json
import math
import random
import time
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from interplay.integrations.trl import (
    InterplayToolEnv,
    environment_factory,
    episode_metrics,
    success_reward,
    task_dataset,
)
from interplay.seeds import EVAL_SEED_START

FIXTURES = Path(__file__).parent / "fixtures" / "tokenizers"
MAZE = "interplay/Maze-v0"


def tools_of(instance) -> list:
    """The tools TRL 1.16 extracts from an environment instance (GRPOTrainer.__init__ / _generate_and_score_completions)."""
    return [getattr(instance, name) for name, _ in inspect.getmembers(type(instance), predicate=inspect.isfunction)
            if name not in ("reset", "get_reward") and not name.startswith("_")]


# ---- the class contract ---------------------------------------------------------------------------


@pytest.mark.parametrize("env_id, tool", [(MAZE, "move"), ("interplay/CodeBreaker-v0", "guess"),
                                          ("interplay/MathFeedback-v0", "answer")])
def test_one_tool_named_for_the_environment_with_a_schema(env_id, tool):
    from transformers.utils import get_json_schema

    instance = environment_factory(env_id)()
    tools = tools_of(instance)
    assert [t.__name__ for t in tools] == [tool]
    schema = get_json_schema(tools[0])["function"]
    assert schema["name"] == tool
    assert schema["parameters"]["required"] == ["reply"]
    assert schema["parameters"]["properties"]["reply"]["type"] == "string"
    assert instance.env.unwrapped.system_prompt in schema["description"]  # the docstring comes from the env


def test_expert_episode_through_the_tool():
    Maze = environment_factory(MAZE, size=3)
    env = Maze()
    first = env.reset(seed=4, prompt=[{"role": "system", "content": Maze.instructions}, {"role": "user", "content": ""}])
    reference = gym.make(MAZE, size=3)
    assert first == reference.reset(seed=4)[0]  # with a system message in the row, just the observation
    answers = []
    while not env.finished:
        answers.append(env.move(env.env.unwrapped.expert_action()))
    assert env.success and env.terminated and not env.truncated
    assert answers[-1].endswith("The episode is over (solved).")
    assert env.turns == len(answers) == env.tool_calls and env.get_reward() == pytest.approx(1.0)
    assert env.outcome == env.info["outcome"] and env.outcome.startswith("r")
    assert [h["observation"] for h in env.history][-1] in answers[-1]
    after = env.move("u")
    assert "already over" in after and "Do not call it again" in after
    assert env.turns == len(answers) and env.tool_calls == len(answers) + 1  # nothing changed but the count
    # reset starts afresh: same seed, same episode
    assert env.reset(seed=4, prompt=[{"role": "system", "content": "x"}]) == first
    assert (env.turns, env.tool_calls, env.finished, env.success, env.history) == (0, 0, False, False, [])


def test_truncation_and_unfinished_outcome():
    env = environment_factory(MAZE, size=3, max_turns=2)()
    env.reset(seed=0, prompt=[{"role": "system", "content": ""}])
    assert env.outcome  # the current cell, before the episode ends
    env.move("nonsense")
    last = env.move(123)  # not a str: played as its text, as TRL's parser may type arguments
    assert env.truncated and not env.success and env.invalid_actions == 2
    assert "The episode is over (not solved, out of turns)." in last


def test_reset_puts_instructions_first_without_a_system_message():
    Maze = environment_factory(MAZE, size=3)
    env = Maze()
    text = env.reset(seed=1, prompt=[{"role": "user", "content": ""}])
    assert text.startswith(Maze.instructions) and "call" in Maze.instructions and "move" in Maze.instructions
    assert env.reset(seed=1) == text  # no prompt column at all


def test_errors_are_actionable():
    Maze = environment_factory(MAZE)
    env = Maze()
    with pytest.raises(RuntimeError, match="before reset"):
        env.move("u")
    with pytest.raises(ValueError, match=r"'seed' column.*task_dataset\('interplay/Maze-v0', n\)"):
        env.reset(prompt=[{"role": "user", "content": ""}], difficulty=3)
    with pytest.raises(ValueError, match="must be an integer"):
        env.reset(seed=1.5)
    with pytest.raises(gym.error.Error, match="Did you mean: interplay/Maze-v0"):
        environment_factory("interplay/Maze-v9")
    with pytest.raises(TypeError):
        environment_factory(MAZE, no_such_kwarg=1)
    with pytest.raises(ValueError, match="reserved"):
        environment_factory(MAZE, tool_name="reset")
    assert [t.__name__ for t in tools_of(environment_factory(MAZE, tool_name="step")())] == ["step"]
    assert not hasattr(environment_factory(MAZE, env_reward=False), "get_reward")
    with pytest.raises(TypeError, match="environment_factory"):
        InterplayToolEnv()


def test_task_dataset_rows():
    Maze = environment_factory(MAZE, size=3)
    rows = task_dataset(Maze, 3, seed_start=10)
    assert rows["seed"] == [10, 11, 12]
    assert rows[0]["prompt"] == [{"role": "system", "content": Maze.instructions}, {"role": "user", "content": ""}]
    assert task_dataset(MAZE, seeds=[5], environment="maze")[0]["environment"] == "maze"
    with pytest.raises(ValueError, match="held-out"):
        task_dataset(Maze, 10, seed_start=EVAL_SEED_START - 5)
    with pytest.raises(ValueError, match="either n"):
        task_dataset(Maze)
    envs = [Maze(), Maze()]
    for env, row in zip(envs, rows):
        env.reset(**row)
    envs[0].move(envs[0].env.unwrapped.expert_action())
    assert success_reward(envs) == [float(envs[0].success), 0.0]
    logged = {}
    assert episode_metrics(envs, log_metric=logged.__setitem__) == [None, None]
    assert logged["episode/turns"] == 0.5 and logged["episode/tool_calls"] == 0.5
    assert logged["episode/success"] == logged["episode/finished"] == envs[0].success / 2


# ---- TRL's GRPOTrainer with environment_factory ------------------------------------------------------

ENV_KWARGS = {"size": 3}
CHAT_KWARGS = {"enable_thinking": False}


def qwen3_tokenizer():
    """The fixture's Qwen3 tokenizer with the chat template TRL recognizes.

    The fixture holds the template of Qwen3's first release; the hub's Qwen3 repos have since updated it
    (non-string content handled), and TRL 1.16 only knows that revision (``trl.chat_template_utils.
    qwen3_chat_template``): its response parser and its prefix-preserving training template are keyed on it.
    The two render the same text for string contents.
    """
    from transformers import AutoTokenizer
    from trl.chat_template_utils import qwen3_chat_template

    tokenizer = AutoTokenizer.from_pretrained(family_path())
    tokenizer.chat_template = qwen3_chat_template
    tokenizer.padding_side = "left"
    return tokenizer


def family_path() -> Path:
    from interplay.models.families import family_checkpoint

    return family_checkpoint("qwen3", FIXTURES)


def tool_call_text(name: str, arguments: dict) -> str:
    # The template's tool-call block. Inside it, valid JSON spaced so that each token of the call follows
    # from the one before: the 2-layer width-32 model learns it in ~60 steps, while with json.dumps spacing
    # (`": "` twice, in different roles) it had not learned the position-dependent choices after 150.
    return f'<tool_call>\n{{"name": {json.dumps(name)},"arguments":{json.dumps(arguments, separators=(",", ":"))}}}\n</tool_call>'


def expert_sequences(tokenizer, Env, n: int, seed_start: int) -> list[tuple[list[int], list[int]]]:
    """Expert episodes as the token ids TRL's tool loop builds (prompt, reply, tool suffix, reply, ...), with a
    0/1 mask of the model's own tokens. Ids are concatenated the way GRPOTrainer._tool_call_loop does it:
    the prompt rendered with the tools and the generation prompt, each reply's ids, then the tool response
    as the training template renders it after a tool call (GRPOTrainer._get_tool_suffix_ids)."""
    from trl.chat_template_utils import get_training_chat_template

    template = get_training_chat_template(tokenizer)

    def suffix(name: str, content: str) -> list[int]:
        call = [{"role": "user", "content": "dummy"}, {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": name, "arguments": {}}}]}]
        before = tokenizer.apply_chat_template(call, chat_template=template, tokenize=True, return_dict=False,
                                               **CHAT_KWARGS)
        after = tokenizer.apply_chat_template(call + [{"role": "tool", "name": name, "content": content}],
                                              chat_template=template, add_generation_prompt=True, tokenize=True,
                                              return_dict=False, **CHAT_KWARGS)
        before = before[: max(i for i, t in enumerate(before) if t == tokenizer.eos_token_id) + 1]
        assert after[: len(before)] == before
        return after[len(before):]

    env, out = Env(), []
    for row in task_dataset(Env, n, seed_start=seed_start):
        observation = env.reset(**row)
        prompt = row["prompt"][:-1] + [{"role": "user", "content": observation}]
        ids = tokenizer.apply_chat_template(prompt, tools=tools_of(env), chat_template=template,
                                           add_generation_prompt=True, tokenize=True, return_dict=False, **CHAT_KWARGS)
        mask = [0] * len(ids)
        while not env.finished:
            reply = env.env.unwrapped.expert_action()
            call = tokenizer.encode(tool_call_text(env.tool_name, {"reply": reply}) + "<|im_end|>",
                                    add_special_tokens=False)
            response = suffix(env.tool_name, getattr(env, env.tool_name)(reply))
            ids, mask = ids + call + response, mask + [1] * len(call) + [0] * len(response)
        # No closing reply: with one (e.g. "Done.") the tiny model learns to stop after a call or two whether
        # or not the episode is over (measured: 10 of 16 episodes stopped early after 100 steps, 13 after 160);
        # without, it moves until TRL's max_tool_calling_iterations, and calls after the end get "already over".
        out.append((ids, mask))
    return out


def imitate(model, sequences, steps: int, lr: float) -> float:
    """Plain next-token loss on the model's tokens (logits only where needed: the vocabulary is 152k)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 10) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    rng = random.Random(0)
    model.train()
    for _ in range(steps):
        ids, mask = rng.choice(sequences)
        x, m = torch.tensor([ids]), torch.tensor([mask], dtype=torch.bool)
        hidden = model.model(input_ids=x).last_hidden_state[:, :-1][m[:, 1:]]
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden), x[:, 1:][m[:, 1:]])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return loss.item()


def test_grpo_trainer_plays_episodes_through_the_tool(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    started = time.perf_counter()
    torch.manual_seed(0)
    tokenizer = qwen3_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(family_path(), dtype=torch.float32)
    Maze = environment_factory(MAZE, **ENV_KWARGS)
    sft_loss = imitate(model, expert_sequences(tokenizer, Maze, 64, seed_start=1000), steps=100, lr=3e-2)
    sft_seconds = time.perf_counter() - started

    created: list[InterplayToolEnv] = []

    def factory():  # TRL calls the factory with no arguments; keep every instance it makes
        created.append(Maze())
        return created[-1]

    seen: list[dict] = []

    def episode_reward(completions, environments, seed, **kwargs):
        turns = [[m for m in c if m["role"] == "assistant"] for c in completions]
        seen.append({
            "seed": list(seed), "env_seed": [e.seed for e in environments],
            "success": [e.success for e in environments], "outcome": [e.outcome for e in environments],
            "turns": [e.turns for e in environments], "tool_calls": [e.tool_calls for e in environments],
            "tool_messages": [sum(m["role"] == "tool" for m in c) for c in completions],
            "replies": sum(len(t) for t in turns),
            "parsed_calls": sum(bool(m.get("tool_calls")) for t in turns for m in t),
        })
        return [float(e.success) - 0.01 * e.turns for e in environments]

    args = GRPOConfig(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, num_generations=2,
        max_completion_length=512, max_tool_calling_iterations=3, chat_template_kwargs=CHAT_KWARGS,
        learning_rate=1e-3, beta=0.0, temperature=1.0, logging_steps=1, save_strategy="no", report_to="none",
        gradient_checkpointing=False, seed=0, use_cpu=True, bf16=False,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=[episode_reward, success_reward, episode_metrics], args=args,
                          train_dataset=task_dataset(Maze, 8), processing_class=tokenizer, environment_factory=factory)
    trainer.train()
    elapsed = time.perf_counter() - started

    assert len(seen) == 2  # one generation batch per step, each scored by the reward function
    per_rollout = ("seed", "env_seed", "success", "outcome", "turns", "tool_calls", "tool_messages")
    rollouts = [dict(zip(per_rollout, values)) for s in seen for values in zip(*(s[k] for k in per_rollout))]
    assert len(rollouts) == 8
    # TRL reset each instance with its row (the seed column), and passes the instances in completion order
    assert all(r["seed"] == r["env_seed"] for r in rollouts)
    # the tool really ran: TRL parsed the model's calls and called move() on the instances
    calls = sum(r["tool_calls"] for r in rollouts)
    assert calls > 0 and sum(e.tool_calls for e in created) > 0  # created[0]: TRL's probe, pooled too
    assert sum(r["tool_calls"] > 0 for r in rollouts) >= 4
    for r in rollouts:
        assert r["tool_messages"] <= r["tool_calls"]  # every tool response in a completion is a call we served
        assert isinstance(r["success"], bool) and isinstance(r["turns"], int) and isinstance(r["outcome"], str)
        assert r["turns"] <= r["tool_calls"] and (r["turns"] > 0) == (r["tool_calls"] > 0)
        assert r["outcome"] != ""
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert "rewards/Maze_v0/mean" in logged  # get_reward() as a reward source, named after the class
    assert "tools/call_frequency" in logged and "episode/success" in logged  # episode_metrics' log_metric
    frequency = [e["tools/call_frequency"] for e in trainer.state.log_history if "tools/call_frequency" in e]
    assert max(frequency) > 0
    replies = sum(s["replies"] for s in seen)
    parsed = sum(s["parsed_calls"] for s in seen)
    print(f"\nSFT: 100 steps, loss {sft_loss:.3f}, {sft_seconds:.1f}s; GRPO 2 steps: {calls} tool calls in 8 "
          f"rollouts, {parsed}/{replies} replies parsed as tool calls, successes "
          f"{sum(r['success'] for r in rollouts)}/8; total {elapsed:.1f}s")
