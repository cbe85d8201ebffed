"""Environment steps per second, with the expert's replies and with random replies.

Prints one line per environment: `<id> expert=<steps/s> random=<steps/s>`. Random replies are
drawn from a mix of valid-looking and garbage text, so parsing cost is included.

    python benchmarks/env_throughput.py [--seconds 1.0] [--ids interplay/Maze-v0 ...]
"""

from __future__ import annotations

import argparse
import random
import time

import gymnasium as gym

import interplay

RANDOM_REPLIES = ["up", "down", "left", "right", "I think the answer is \\boxed{12}", "42", "???", "",
                  "Let me move left. Actually, right.", "1 2 3", "[A]", "hello world"]


def steps_per_second(env_id: str, policy: str, seconds: float) -> float:
    env = gym.make(env_id).unwrapped
    rng = random.Random(0)
    steps, seed = 0, 0
    env.reset(seed=seed)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        action = env.expert_action() if policy == "expert" else None
        if action is None:
            action = rng.choice(RANDOM_REPLIES)
        _, _, terminated, truncated, _ = env.step(action)
        steps += 1
        if terminated or truncated:
            seed += 1
            env.reset(seed=seed)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per environment and policy")
    parser.add_argument("--ids", nargs="*", help="environment ids (default: every registered one)")
    args = parser.parse_args()
    for env_id in args.ids or [e.id for e in interplay.list_envs()]:
        try:
            probe = gym.make(env_id).unwrapped
            probe.reset(seed=0)
            has_expert = probe.expert_action() is not None
            expert = f"{steps_per_second(env_id, 'expert', args.seconds):.0f}" if has_expert else "n/a"
            rand = steps_per_second(env_id, "random", args.seconds)
            print(f"{env_id} expert={expert} random={rand:.0f}", flush=True)
        except Exception as error:  # report and go on: one broken env must not hide the others
            print(f"{env_id} error={type(error).__name__}: {error}", flush=True)


if __name__ == "__main__":
    main()
