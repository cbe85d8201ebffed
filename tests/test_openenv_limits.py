"""`interplay serve`'s limits against a hostile client, and pools of servers.

Real `interplay serve` processes on 127.0.0.1, raw WebSocket clients sending what an honest client
never would, and RemoteEnv playing afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import gymnasium as gym
import pytest

pytest.importorskip("openenv.core", reason="needs the openenv extra: pip install 'interplay[openenv]'")

from websockets.exceptions import ConnectionClosed  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from interplay.integrations.local_servers import LocalServers, free_port, healthy  # noqa: E402
from interplay.integrations.openenv import RemoteEnv, RemoteEnvError  # noqa: E402

MAZE = {"size": 5}
LIMITS = {"max_sessions": 4, "idle_timeout": 2.0, "max_message_bytes": 2**20, "step_timeout": 1.0}

#: A server of a maze whose step sleeps on "sleep SECONDS" (registered in the server process only).
SLOW_SERVER = """
import json, sys, time
from interplay.envs.maze import MazeEnv
from interplay.integrations.openenv_server import serve
from interplay.integrations.server_limits import ServerLimits
from interplay.registry import register

class SlowMaze(MazeEnv):
    def step(self, action):
        if action.startswith("sleep "):
            time.sleep(float(action.split()[1]))
        return super().step(action)

register("test/SlowMaze-v0", SlowMaze, "a maze whose step sleeps on 'sleep SECONDS'")
serve("test/SlowMaze-v0", {"size": 5}, port=int(sys.argv[1]), limits=ServerLimits(**json.loads(sys.argv[2])))
"""


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("slow") / "serve.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-c", SLOW_SERVER, str(port), json.dumps(LIMITS)], stdout=out,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not healthy(url):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield process, url
    finally:
        process.terminate()
        process.wait(timeout=10)


def ws(url: str):
    return connect(url.replace("http://", "ws://") + "/ws", max_size=None, open_timeout=10)


def answer(socket, message) -> dict:
    socket.send(message if isinstance(message, (str, bytes)) else json.dumps(message))
    return json.loads(socket.recv(timeout=10))


def plays_like_in_process(url: str, seed: int) -> None:
    """An honest client plays an expert episode, the same as in-process."""
    remote, local = RemoteEnv(url, timeout=20), gym.make("interplay/Maze-v0", **MAZE).unwrapped
    assert remote.reset(seed=seed) == local.reset(seed=seed)
    while not local.finished:
        move = local.expert_action()
        assert remote.step(move) == local.step(move)
    remote.close()


def test_the_server_survives_a_hostile_client_and_an_honest_one_plays_after(slow_server):
    process, url = slow_server
    # Garbage in one session: each gets an error answer and the session goes on.
    with ws(url) as socket:
        assert answer(socket, "not json {")["data"]["code"] == "INVALID_JSON"
        assert answer(socket, {"type": "launch_missiles"})["data"]["code"] == "UNKNOWN_TYPE"
        assert answer(socket, {"type": "step", "data": {"message": 5}})["type"] == "error"
        assert answer(socket, {"type": "step", "data": {"query": "the_answer"}})["type"] == "error"
        assert answer(socket, {"type": "reset", "data": {"seed": 1}})["type"] == "observation"
    # A binary frame and an oversized frame end their own connection, nothing else.
    for frame in (b"\x00\xff" * 10, "x" * (LIMITS["max_message_bytes"] + 1)):
        with ws(url) as socket:
            socket.send(frame)
            with pytest.raises(ConnectionClosed):
                socket.recv(timeout=10)
                socket.recv(timeout=10)
    # A flood of idle sessions fills the server: the next client hears "at capacity", not a hang...
    time.sleep(0.5)  # the sessions closed above are freed
    flood = [ws(url) for _ in range(LIMITS["max_sessions"])]
    for socket in flood:
        assert answer(socket, {"type": "state"})["type"] == "state"
    with pytest.raises(RemoteEnvError, match="at capacity.*--max-sessions"):
        RemoteEnv(url, timeout=5)
    # ...until the idle timeout closes them (code 1001, the reason said) and frees their slots.
    time.sleep(LIMITS["idle_timeout"] + 0.5)
    for socket in flood:
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=5)
        assert closed.value.rcvd.code == 1001 and "idle" in closed.value.rcvd.reason
    plays_like_in_process(url, seed=3)
    assert process.poll() is None and healthy(url)


def test_a_step_over_the_time_limit_truncates_and_the_session_plays_on(slow_server):
    _, url = slow_server
    env = RemoteEnv(url, timeout=20)
    env.reset(seed=0)
    env.step("up")
    start = time.monotonic()
    observation, reward, terminated, truncated, info = env.step("sleep 3")
    assert time.monotonic() - start < 2.5  # the limit (1 s), not the step (3 s)
    assert (reward, terminated, truncated) == (0.0, False, True) and info["outcome"] == "step_timeout"
    assert "step time limit of 1 s" in info["truncated_reason"] and "1 s" in observation
    assert env.outcome() == "step_timeout"
    with pytest.raises(RuntimeError, match="reset"):
        env.step("up")
    # The same session plays on, in a fresh environment, as in-process.
    local = gym.make("interplay/Maze-v0", **MAZE).unwrapped
    assert env.reset(seed=4) == local.reset(seed=4)
    while not local.finished:
        move = local.expert_action()
        assert env.expert_action() == move
        assert env.step(move) == local.step(move)
    env.close()


def test_a_slow_step_holds_up_no_other_session(slow_server):
    """The server's call threads hand their queue on past a long call: another session plays a whole episode
    while one step sleeps."""
    import concurrent.futures

    _, url = slow_server
    slow, other = RemoteEnv(url, timeout=20), RemoteEnv(url, timeout=20)
    slow.reset(seed=0)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        sleeping = pool.submit(slow.step, "sleep 0.9")
        time.sleep(0.1)
        local = gym.make("interplay/Maze-v0", **MAZE).unwrapped
        assert other.reset(seed=5) == local.reset(seed=5)
        while not local.finished:
            move = local.expert_action()
            assert other.step(move) == local.step(move)
        assert not sleeping.done()
        sleeping.result()
    slow.close()
    other.close()


def test_a_pool_of_three_servers_spreads_sessions_and_skips_a_full_one(tmp_path, slow_server):
    with LocalServers("interplay/Maze-v0", MAZE, 3, extra=("--max-sessions", "2"), log_dir=tmp_path) as servers:
        envs = [gym.make("interplay/Remote-v0", url=servers.urls).unwrapped for _ in range(6)]
        assert sorted(env.url for env in envs) == sorted(servers.urls * 2)  # two each: all full now
        with pytest.raises(RemoteEnvError, match="no interplay server took a session.*at capacity.*add servers"):
            RemoteEnv(servers.urls)
        envs.pop().close()  # one slot free, wherever it is: the next session finds it
        time.sleep(0.3)
        envs.append(RemoteEnv(servers.urls))
        local = gym.make("interplay/Maze-v0", **MAZE).unwrapped
        for seed, env in enumerate(envs):
            assert env.reset(seed=seed) == local.reset(seed=seed)
        for env in envs:
            env.close()
        mixed = [servers.urls[0], slow_server[1]]  # a Maze and a SlowMaze server are no pool
        env = RemoteEnv(mixed)
        with pytest.raises(RemoteEnvError, match="serve different environments.*one id with the same kwargs"):
            RemoteEnv(mixed)  # the second session goes to the other server
        env.close()
        servers.stop()
        with pytest.raises(RuntimeError, match="exited with code.*its log"):
            servers.check()


def test_untested_openenv_versions_are_refused_with_what_to_install():
    from interplay.integrations.openenv_internals import INTERNALS, check_openenv, installed_openenv

    assert check_openenv(("openenv", "0.10.0")) == ("openenv", "0.10.0")
    assert check_openenv(("openenv-core", "0.3.0")) == ("openenv-core", "0.3.0")
    for untested in [("openenv", "0.9.0"), ("openenv", "0.11.0"), ("openenv-core", "0.2.3"), ("openenv", "dev")]:
        with pytest.raises(ImportError, match=r"tested with openenv >= 0.10.0, < 0.11.0.*pip install 'openenv>=0.10"):
            check_openenv(untested)
    assert installed_openenv() is not None and "create_app" in " ".join(INTERNALS)
