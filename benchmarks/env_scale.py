"""Rollout wall time with environments in-process, behind one and three local servers, and with --env-workers 2.

For a cheap environment (Maze) and a CPU-heavy one (reasoning-gym's futoshiki on 8x8 and 9x9 boards, about
half a second of puzzle generation an episode), with the expert agent (the environments' cost alone) and
the embedded model (a training-like rollout), plays ``--episodes`` episodes (seeds 0..N-1) each way and
prints one row per case:

    <id> <agent> in-process=<s> 1-server=<s> 3-servers=<s> env-workers-2=<s>

and on its last line the ratios in-process/remote (higher is better; 1.0: remote costs nothing):

    ratios <id>/<agent>: 1-server=<r> 3-servers=<r> env-workers-2=<r> ...

Each timing comes after a warm-up rollout of as many episodes with the expert (other seeds), as a training
run's later rollouts come after its first: servers started, imports and caches warm, and the warm-up's
server sessions left for the timed rollout (``RemoteEnv`` keeps a dropped environment's session a while for
the next one). Where a rollout takes well under a second, the timing is the median of up to 7 (warm-up
and rollout each). The machine's load average is printed first and last.

    python benchmarks/env_scale.py [--episodes 64] [--heavy-episodes 32] [--cases maze maze-model heavy]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import interplay  # noqa: F401  (registers the environments)
from interplay.agents import from_spec
from interplay.integrations.local_servers import LocalServers, shared_servers
from interplay.rollout import EnvSpec, rollout

REPEATS = 7
HEAVY = EnvSpec("interplay/ReasoningGym-futoshiki-v0", {"config": {"min_board_size": 8, "max_board_size": 9}})
#: name -> (environment, agent, heavy: episodes from --heavy-episodes)
CASES = {
    "maze": (EnvSpec("interplay/Maze-v0"), "expert", False),
    "maze-model": (EnvSpec("interplay/Maze-v0"), "tiny", False),
    "heavy": (HEAVY, "expert", True),
}


def timed(spec: EnvSpec, agent, episodes: int, **kwargs) -> float:
    """Wall seconds of the rollout; the median of up to 7 where one takes well under a second (Maze with the
    expert: tens of milliseconds, which one scheduling hiccup of a busy machine can double)."""
    times: list[float] = []
    while not times or (len(times) < REPEATS and sum(times) < 2.0):
        # Warm-up: as many episodes with the expert at other seeds (connections, caches, imports).
        rollout(spec, from_spec("expert"), seeds=range(10_000, 10_000 + episodes), **kwargs)
        start = time.perf_counter()
        rollout(spec, agent, seeds=range(episodes), **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--heavy-episodes", type=int, default=32)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    print(load(), flush=True)
    ratios = []
    for name in args.cases:
        env, agent_name, heavy = CASES[name]
        episodes = args.heavy_episodes if heavy else args.episodes
        agent = from_spec(agent_name)
        with LocalServers(env.id, env.kwargs, 1) as one, LocalServers(env.id, env.kwargs, 3) as three:
            shared_servers(env.id, env.kwargs, 2)  # --env-workers 2, started once
            times = {
                "in-process": timed(env, agent, episodes),
                "1-server": timed(EnvSpec("interplay/Remote-v0", {"url": one.urls}), agent, episodes),
                "3-servers": timed(EnvSpec("interplay/Remote-v0", {"url": three.urls}), agent, episodes),
                "env-workers-2": timed(env, agent, episodes, env_workers=2),
            }
        print(f"{env.id} {env.kwargs or ''} {agent_name} episodes={episodes} "
              + " ".join(f"{k}={v:.2f}s" for k, v in times.items()), flush=True)
        local = times.pop("in-process")
        ratios.append(f"{env.id.split('/')[-1]}/{agent_name}: " + " ".join(f"{k}={local / v:.3f}" for k, v in times.items()))
    print(load(), flush=True)
    print("ratios in-process/remote " + " | ".join(ratios), flush=True)


if __name__ == "__main__":
    main()
