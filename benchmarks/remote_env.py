"""Environment steps per second through `interplay serve` + RemoteEnv, over in-process, in one run.

For each id, starts `interplay serve ID` on a free 127.0.0.1 port, then plays the expert's replies
(``expert_action()`` then ``step()``: two round trips per remote step, a RemoteEnv without
``expert_ahead``; ``rollout`` asks for it, which makes an expert's turn one round trip) in-process and remotely for ``--seconds`` each, and prints

    <id> in-process=<steps/s> remote=<steps/s> remote/in-process=<ratio> remote-x<N>=<steps/s>

where ``remote-xN`` is the summed rate of N sessions played at once from N threads.

    python benchmarks/remote_env.py [--seconds 2] [--sessions 8] [--ids interplay/Maze-v0 ...]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import gymnasium as gym

import interplay  # noqa: F401  (registers the environments)

IDS = ["interplay/Maze-v0", "interplay/CodeBreaker-v0"]


def expert_steps(env: gym.Env, seconds: float, first_seed: int = 0) -> int:
    steps, seed = 0, first_seed
    env.reset(seed=seed)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.expert_action())
        steps += 1
        if terminated or truncated:
            seed += 1
            env.reset(seed=seed)
    return steps


def rate(env: gym.Env, seconds: float) -> float:
    start = time.perf_counter()
    return expert_steps(env, seconds) / (time.perf_counter() - start)


def concurrent_rate(url: str, sessions: int, seconds: float) -> float:
    from interplay.integrations.openenv import RemoteEnv

    envs = [RemoteEnv(url) for _ in range(sessions)]
    counts = [0] * sessions

    def play(i: int) -> None:
        counts[i] = expert_steps(envs[i], seconds, first_seed=1000 * i)

    threads = [threading.Thread(target=play, args=(i,)) for i in range(sessions)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for env in envs:
        env.close()
    return sum(counts) / elapsed


def start_server(env_id: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "interplay.cli", "serve", env_id, "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if json.loads(response.read()).get("status") == "healthy":
                    return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"`interplay serve {env_id}` did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--sessions", type=int, default=8, help="sessions played at once for remote-xN")
    parser.add_argument("--ids", nargs="*", default=IDS)
    args = parser.parse_args()
    for env_id in args.ids:
        process, url = start_server(env_id)
        try:
            local = rate(gym.make(env_id).unwrapped, args.seconds)
            remote_env = gym.make("interplay/Remote-v0", url=url).unwrapped
            expert_steps(remote_env, 0.2)  # warm up
            remote = rate(remote_env, args.seconds)
            remote_env.close()
            many = concurrent_rate(url, args.sessions, args.seconds)
            print(f"{env_id} in-process={local:.0f} remote={remote:.0f} remote/in-process={remote / local:.4f} "
                  f"remote-x{args.sessions}={many:.0f}", flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
