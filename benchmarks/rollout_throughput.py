"""Rollout cost against plain ``model.generate`` on the same turns.

Plays a 64-episode multi-turn batched rollout (KV caches kept across turns), then replays its turns
with ``model.generate``: for each turn index, one left-padded batch of every live episode's context
(the exact ids the rollout recorded before that reply), generating as many tokens as the longest
reply of that batch. That is what a rollout built on ``generate`` would cost for the same sampled
tokens, without environments. Also prints the time spent inside the rollout's own sampler.

The last line is ``rollout_over_generate=<ratio>`` (target < 1.15; below 1 means the KV cache kept
across turns saves more than environments, templating and bookkeeping cost).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from interplay.agents import HFAgent  # noqa: E402
from interplay.rollout import EnvSpec, Trajectory, rollout  # noqa: E402


def turn_contexts(trajectories: list[Trajectory]) -> list[list[tuple[list[int], int]]]:
    """Per turn index: (context ids before the reply, reply length) of every episode that replied."""
    turns: list[list[tuple[list[int], int]]] = []
    for t in trajectories:
        ids, mask = t.prompt_ids + t.completion_ids, [0] * len(t.prompt_ids) + t.agent_mask
        index, i = 0, 0
        while i < len(ids):
            if mask[i]:
                start = i
                while i < len(ids) and mask[i]:
                    i += 1
                if len(turns) <= index:
                    turns.append([])
                turns[index].append((ids[:start], i - start))
                index += 1
            else:
                i += 1
    return turns


def generate_seconds(agent: HFAgent, turns: list[list[tuple[list[int], int]]]) -> float:
    model, pad = agent.model, agent.tokenizer.pad_token_id
    total = 0.0
    for batch in turns:
        width = max(len(ids) for ids, _ in batch)
        new = max(n for _, n in batch)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids, _ in batch], device=agent.device)
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids, _ in batch], device=agent.device)
        started = time.perf_counter()
        with torch.no_grad():
            model.generate(input_ids=input_ids, attention_mask=attention, do_sample=True, max_new_tokens=new,
                           min_new_tokens=new, pad_token_id=pad)
        total += time.perf_counter() - started
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--env", default="interplay/Maze-v0")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)

    agent = HFAgent(args.model, seed=0, max_new_tokens=args.max_new_tokens)
    rollout(EnvSpec(args.env, {}, 0), agent, max_turns=2)  # warm-up
    agent.model_seconds = 0.0
    started = time.perf_counter()
    trajectories = rollout(EnvSpec(args.env), agent, seeds=range(args.episodes), max_turns=args.max_turns)
    wall = time.perf_counter() - started
    turns = turn_contexts(trajectories)
    generate = generate_seconds(agent, turns)
    sampled = sum(sum(t.agent_mask) for t in trajectories)
    print(f"{args.episodes} episodes, {sum(len(b) for b in turns)} turns, {sampled} sampled tokens on {agent.device}")
    print(f"rollout {wall:.2f} s ({args.episodes / wall:.1f} episodes/s); inside its sampler {agent.model_seconds:.2f} s")
    print(f"model.generate on the same turns {generate:.2f} s")
    print(f"rollout_over_sampler={wall / agent.model_seconds:.3f}")
    print(f"rollout_over_generate={wall / generate:.3f}")


if __name__ == "__main__":
    main()
