"""Rollout overhead: wall time of a 64-episode multi-turn batched rollout vs the time spent in the
model itself (forward passes + sampling of the very same tokens, measured inside the sampler).

The last line is ``rollout_over_generate=<ratio>``; everything above 1.0 is environments,
chat templating and bookkeeping (target < 1.15).
"""

from __future__ import annotations

import argparse
import time

from interplay.agents import HFAgent
from interplay.rollout import EnvSpec, rollout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--env", default="interplay/Maze-v0")
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    args = parser.parse_args()

    agent = HFAgent("tiny", seed=0, max_new_tokens=args.max_new_tokens)
    rollout(EnvSpec(args.env, {}, 0), agent, max_turns=2)  # warm-up
    agent.model_seconds = 0.0
    started = time.perf_counter()
    trajectories = rollout(EnvSpec(args.env), agent, seeds=range(args.episodes), max_turns=args.max_turns)
    wall = time.perf_counter() - started
    turns = sum(t.turns for t in trajectories)
    tokens = sum(len(t.prompt_ids) + len(t.completion_ids) for t in trajectories)
    print(f"{args.episodes} episodes, {turns} turns, {tokens} tokens on {agent.device}")
    print(f"rollout {wall:.2f} s ({args.episodes / wall:.1f} episodes/s), model {agent.model_seconds:.2f} s")
    print(f"rollout_over_generate={wall / agent.model_seconds:.3f}")


if __name__ == "__main__":
    main()
