"""Rollout wall time with environments in-process, behind one and three local servers, and with --env-workers 2.

For a cheap environment (Maze) and a CPU-heavy one (a reasoning-gym task), with the expert agent (the
environments' cost alone) and the embedded model (a training-like rollout), plays ``--episodes`` episodes
(seeds 0..N-1) each way and prints one row per case:

    <id> <agent> in-process=<s> 1-server=<s> 3-servers=<s> env-workers-2=<s>

and on its last line the ratios in-process/remote (higher is better; 1.0: remote costs nothing):

    ratios <id>/<agent>: 1-server=<r> 3-servers=<r> env-workers-2=<r> ...

Servers are started (and warmed with one episode) before each timing, as a training run keeps them.

    python benchmarks/env_scale.py [--episodes 64] [--ids interplay/Maze-v0 interplay/ReasoningGym-sokoban-v0]
"""

from __future__ import annotations

import argparse
import time

import interplay  # noqa: F401  (registers the environments)
from interplay.agents import from_spec
from interplay.integrations.local_servers import LocalServers, shared_servers
from interplay.rollout import EnvSpec, rollout

IDS = ["interplay/Maze-v0", "interplay/ReasoningGym-sokoban-v0"]
AGENTS = ["expert", "tiny"]


def timed(spec: EnvSpec, agent, episodes: int, **kwargs) -> float:
    rollout(spec, agent, seeds=[10_000], **kwargs)  # warm: connections, caches, imports
    start = time.perf_counter()
    rollout(spec, agent, seeds=range(episodes), **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--ids", nargs="*", default=IDS)
    parser.add_argument("--agents", nargs="*", default=AGENTS)
    args = parser.parse_args()
    ratios = []
    for env_id in args.ids:
        with LocalServers(env_id, {}, 1) as one, LocalServers(env_id, {}, 3) as three:
            shared_servers(env_id, {}, 2)  # --env-workers 2, started once
            for name in args.agents:
                agent = from_spec(name)
                times = {
                    "in-process": timed(EnvSpec(env_id), agent, args.episodes),
                    "1-server": timed(EnvSpec("interplay/Remote-v0", {"url": one.urls}), agent, args.episodes),
                    "3-servers": timed(EnvSpec("interplay/Remote-v0", {"url": three.urls}), agent, args.episodes),
                    "env-workers-2": timed(EnvSpec(env_id), agent, args.episodes, env_workers=2),
                }
                print(f"{env_id} {name} " + " ".join(f"{k}={v:.2f}s" for k, v in times.items()), flush=True)
                local = times.pop("in-process")
                ratios.append(f"{env_id.split('/')[-1]}/{name}: "
                              + " ".join(f"{k}={local / v:.3f}" for k, v in times.items()))
    print("ratios in-process/remote " + " | ".join(ratios), flush=True)


if __name__ == "__main__":
    main()
