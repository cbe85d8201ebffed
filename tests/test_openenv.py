"""Environments served over the network: `interplay serve` (an OpenEnv server) and RemoteEnv.

Real server processes on 127.0.0.1, driven by openenv-core's own client and by RemoteEnv.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import gymnasium as gym
import pytest

pytest.importorskip("openenv.core", reason="needs the openenv extra: pip install 'interplay[openenv]'")

import interplay  # noqa: E402
from interplay.agents import from_spec  # noqa: E402
from interplay.integrations.openenv import RemoteEnv, RemoteEnvError  # noqa: E402
from interplay.rollout import EnvSpec, rollout  # noqa: E402

MAZE_KWARGS = {"size": 5}
SERVED = {"interplay/Maze-v0": MAZE_KWARGS, "interplay/CodeBreaker-v0": {}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def start(env_id: str, kwargs: dict, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "interplay.cli", "serve", env_id, "--port", str(port),
               "--env-kwargs", json.dumps(kwargs), *extra]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def wait_healthy(process: subprocess.Popen, url: str, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`interplay serve` exited with {process.returncode}:\n{log.read_text()}")
        try:
            if get_json(f"{url}/health")["status"] == "healthy":
                return
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"`interplay serve` did not answer /health within {timeout:g} s:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One server per environment id, started together (each takes a few seconds to import)."""
    logs = tmp_path_factory.mktemp("serve")
    started = {env_id: start(env_id, kwargs, logs / f"{i}.log") for i, (env_id, kwargs) in enumerate(SERVED.items())}
    try:
        for i, (process, url) in enumerate(started.values()):
            wait_healthy(process, url, logs / f"{i}.log")
        yield {env_id: url for env_id, (_, url) in started.items()}
    finally:
        for process, _ in started.values():
            stop(process)


def twin(env_id: str) -> gym.Env:
    return gym.make(env_id, **SERVED[env_id]).unwrapped


def test_openenv_endpoints_and_its_own_client(servers):
    from openenv.core import GenericEnvClient

    url = servers["interplay/Maze-v0"]
    assert get_json(f"{url}/health") == {"status": "healthy"}
    schema = get_json(f"{url}/schema")
    assert {"message", "query"} <= set(schema["action"]["properties"])
    assert {"text", "info", "terminated", "truncated"} <= set(schema["observation"]["properties"])
    metadata = get_json(f"{url}/metadata")
    assert metadata["name"] == "interplay/Maze-v0" and metadata["description"] == interplay.registry.describe(
        "interplay/Maze-v0")

    local = twin("interplay/Maze-v0")
    with GenericEnvClient(base_url=url, message_timeout_s=30).sync() as client:
        result = client.reset(seed=5)
        obs, info = local.reset(seed=5)
        assert result.observation["text"] == obs and result.observation["info"]["turn"] == 0
        assert result.observation["system_prompt"] == local.system_prompt and result.done is False
        state = client.state()
        assert state["env_id"] == "interplay/Maze-v0" and state["env_kwargs"] == MAZE_KWARGS
        assert state["finished"] is False and state["expert"] is True
        for _ in range(100):
            move = local.expert_action()
            assert client.step({"query": "expert_action"}).observation["result"] == move
            result = client.step({"message": move})
            obs, reward, terminated, truncated, info = local.step(move)
            assert (result.observation["text"], result.reward, result.done) == (obs, reward, terminated or truncated)
            assert result.observation["info"]["turn"] == info["turn"]
            if result.done:
                break
        assert result.observation["info"]["success"] is True
        assert client.state()["step_count"] == info["turn"]


@pytest.mark.parametrize("env_id", list(SERVED))
def test_expert_rollout_through_remote_env_matches_in_process(servers, env_id):
    agent = from_spec("expert")
    seeds = [0, 1, 2, 3, 4, 5, 10_000_001]
    remote = rollout(EnvSpec("interplay/Remote-v0", {"url": servers[env_id]}), agent, seeds=seeds)
    local = rollout(EnvSpec(env_id, SERVED[env_id]), agent, seeds=seeds)
    for r, lo in zip(remote, local):
        assert r.messages == lo.messages
        assert r.rewards == lo.rewards and isinstance(r.rewards[0], float)
        assert (r.success, r.outcome, r.turns, r.terminated, r.truncated) == (
            lo.success, lo.outcome, lo.turns, lo.terminated, lo.truncated)
        assert r.infos == lo.infos  # expert_action_probs (Maze) included
    assert any(t.success for t in remote)
    capped = rollout(EnvSpec("interplay/Remote-v0", {"url": servers[env_id]}), agent, seeds=[3], max_turns=1)
    assert capped[0].outcome == rollout(EnvSpec(env_id, SERVED[env_id]), agent, seeds=[3], max_turns=1)[0].outcome


def count_messages(monkeypatch) -> list[dict]:
    """Every request RemoteEnv sends from now on (its type, and the query of a step that asks one)."""
    from interplay.integrations import openenv_client

    sent: list[dict] = []
    request = openenv_client._Session.request

    async def counted(self, message):
        sent.append({"type": message["type"], "query": (message.get("data") or {}).get("query")})
        return await request(self, message)

    monkeypatch.setattr(openenv_client._Session, "request", counted)
    return sent


@pytest.mark.parametrize("env_id", list(SERVED))
def test_the_expert_through_a_server_costs_one_message_a_turn(servers, env_id, monkeypatch):
    """rollout asks the server for the expert's answers with each observation (reset(expert_ahead=True)):
    the same trajectories as in-process (Maze's seeded expert draws included), one message per turn."""
    agent, seeds = from_spec("expert"), [0, 1, 2, 3, 10_000_001]
    local = rollout(EnvSpec(env_id, SERVED[env_id]), agent, seeds=seeds)
    sent = count_messages(monkeypatch)
    remote = rollout(EnvSpec("interplay/Remote-v0", {"url": servers[env_id]}), agent, seeds=seeds)
    assert [t.to_dict() | {"manifest": None, "env_id": None, "env_kwargs": None} for t in remote] == [
        t.to_dict() | {"manifest": None, "env_id": None, "env_kwargs": None} for t in local]
    assert [t.manifest["turn_limit"] for t in remote] == [t.manifest["turn_limit"] for t in local]
    assert not [m for m in sent if m["query"]]
    turns = sum(t.turns for t in local)
    assert [m["type"] for m in sent].count("step") == turns and turns > len(seeds)
    assert [m["type"] for m in sent].count("reset") == len(seeds)


def test_expert_ahead_answers_each_state_once_then_asks(servers, monkeypatch):
    """The cached answers are the current state's, handed out once: a second expert_action() in the same
    state asks the server, so a seeded-stochastic expert draws as it does in-process."""
    local = twin("interplay/Maze-v0")
    env = RemoteEnv(servers["interplay/Maze-v0"], expert_ahead=True)
    assert env.reset(seed=11) == local.reset(seed=11)
    sent = count_messages(monkeypatch)
    while not env.finished:
        assert env.expert_action_probs() == local.expert_action_probs()
        assert env.expert_action() == local.expert_action()
        assert env.expert_action() == local.expert_action()  # asked: a second draw
        move = local.expert_action()
        assert env.expert_action() == move
        assert env.step(move) == local.step(move)
    assert env.expert_action() is None and env.expert_action_probs() == local.expert_action_probs() == {}
    turns = local.turn
    assert [m["query"] for m in sent].count("expert_action") == 2 * turns + 1
    assert [m["query"] for m in sent].count("expert_action_probs") == 1  # at the end (nothing sent ahead then)
    with pytest.raises(RuntimeError):
        env.step("up")
    assert env.reset(seed=12) == local.reset(seed=12)  # a new episode's answers, not the last one's
    assert env.expert_action() == local.expert_action()
    env.close()


def count_connections(monkeypatch) -> list[str]:
    from interplay.integrations import openenv_client

    opened: list[str] = []
    open_session = openenv_client._Session.open.__func__

    async def counted(cls, url, *args):
        opened.append(url)
        return await open_session(cls, url, *args)

    monkeypatch.setattr(openenv_client._Session, "open", classmethod(counted))
    return opened


def test_a_dropped_remote_envs_session_serves_the_next_one(servers, monkeypatch):
    """rollout forgets its RemoteEnvs: their sessions wait for the next rollout's (no new connection), which
    reset them and play as in-process; one the server closed meanwhile is replaced by a new one."""
    import gc

    from interplay.integrations import openenv_client

    url, agent, seeds = servers["interplay/Maze-v0"], from_spec("expert"), [0, 1, 2, 3]
    spec = EnvSpec("interplay/Remote-v0", {"url": url})
    rollout(spec, agent, seeds=[5, 6, 7, 8])
    gc.collect()
    opened = count_connections(monkeypatch)
    again = rollout(spec, agent, seeds=seeds)
    assert opened == []
    local = rollout(EnvSpec("interplay/Maze-v0", MAZE_KWARGS), agent, seeds=seeds)
    assert [(t.messages, t.infos, t.manifest["turn_limit"]) for t in again] == [
        (t.messages, t.infos, t.manifest["turn_limit"]) for t in local]
    gc.collect()

    # A waiting session the server has closed: the reset goes to a new one.
    env = RemoteEnv(url)
    assert env._recycled and opened == []
    request = openenv_client._Session.request
    broken = env._session

    async def fails_once(self, message):
        if self is broken:
            raise ConnectionResetError("closed by the server")
        return await request(self, message)

    monkeypatch.setattr(openenv_client._Session, "request", fails_once)
    assert env.reset(seed=3) == twin("interplay/Maze-v0").reset(seed=3)
    assert env._session is not broken and not env._recycled
    env.close()

    # A query before any reset asks a fresh environment, not the last episode's.
    env = RemoteEnv(url)
    assert env._recycled
    count = len(opened)
    with pytest.raises(RuntimeError, match="before calling `env.reset"):  # as a new session's environment says
        env.render()
    assert len(opened) > count and not env._recycled
    env.close()


def test_a_remote_rollouts_turn_is_one_hand_over_to_the_event_loop(servers, monkeypatch):
    """rollout sends a turn's resets or steps of its remote episodes together (RemoteEnv.send_ahead): with
    the sessions of an earlier rollout (no connection) and the expert's answers sent ahead (no query), one
    hand-over to the loop thread per turn, and the trajectories of in-process play."""
    import gc

    from interplay.integrations import openenv_client

    url, agent, seeds = servers["interplay/Maze-v0"], from_spec("expert"), list(range(8))
    spec = EnvSpec("interplay/Remote-v0", {"url": url})
    rollout(spec, agent, seeds=[20, 21, 22, 23, 24, 25, 26, 27])
    gc.collect()
    handed: list[str] = []
    run = openenv_client._Loop.run.__func__

    def counted(cls, coroutine, timeout):
        handed.append(coroutine.__qualname__)
        return run(cls, coroutine, timeout)

    monkeypatch.setattr(openenv_client._Loop, "run", classmethod(counted))
    remote = rollout(spec, agent, seeds=seeds)
    local = rollout(EnvSpec("interplay/Maze-v0", MAZE_KWARGS), agent, seeds=seeds)
    assert [t.to_dict() | {"manifest": None, "env_id": None, "env_kwargs": None} for t in remote] == [
        t.to_dict() | {"manifest": None, "env_id": None, "env_kwargs": None} for t in local]
    assert handed == ["_Sent.all"] * (1 + max(t.turns for t in local))


def test_send_ahead_answers_the_next_call_or_raises_its_error(servers, monkeypatch):
    from interplay.integrations import openenv_client

    url = servers["interplay/Maze-v0"]
    envs, local = [RemoteEnv(url) for _ in range(3)], twin("interplay/Maze-v0")
    assert RemoteEnv.send_ahead([(env, "reset", seed) for seed, env in enumerate(envs)]) == [True] * 3
    for seed, env in enumerate(envs):
        assert env.reset(seed=seed) == local.reset(seed=seed)
    move = local.expert_action()
    # A non-str action is left to its own call (which refuses it); the others are answered at hand.
    assert RemoteEnv.send_ahead([(envs[2], "step", move), (envs[1], "step", 5)]) == [True, False]
    assert envs[2].step(move) == local.step(move)
    with pytest.raises(TypeError):
        envs[1].step(5)
    # A call that is not the one sent ahead: the session's state is unknown, the episode lost.
    RemoteEnv.send_ahead([(envs[1], "step", "up")])
    with pytest.raises(RemoteEnvError, match="sent ahead"):
        envs[1].step("down")
    # A request that failed is raised at its call, as the call's own would be; the others answer.
    request, broken = openenv_client._Session.request, envs[0]._session

    async def fails(self, message):
        if self is broken:
            raise ConnectionResetError("closed by the server")
        return await request(self, message)

    monkeypatch.setattr(openenv_client._Session, "request", fails)
    assert RemoteEnv.send_ahead([(envs[0], "step", "up"), (envs[2], "reset", 7)]) == [True, True]
    with pytest.raises(RemoteEnvError, match="closed by the server"):
        envs[0].step("up")
    assert envs[2].reset(seed=7) == local.reset(seed=7)
    for env in envs:
        env.close()


def test_remote_env_keeps_the_environment_contract(servers):
    from gymnasium.utils.env_checker import check_env

    maze = gym.make("interplay/Remote-v0", url=servers["interplay/Maze-v0"])
    env = maze.unwrapped
    assert isinstance(env, interplay.envs.TextEnv) and env.env_id == "interplay/Maze-v0"
    check_env(env)
    local = twin("interplay/Maze-v0")
    obs, info = maze.reset(seed=7)
    assert (obs, info) == local.reset(seed=7)
    assert env.render() == local.render() and env.system_prompt == local.system_prompt
    assert env.expert_action_probs() == local.expert_action_probs()
    for reply in ["", "\x00😀‮", "a" * 1_000_000, "up down left right " * 10_000, "9" * 5000]:
        step = maze.step(reply)
        assert step == local.step(reply) and len(step[0]) < 20_000
    with pytest.raises(TypeError, match="takes the agent's reply as a str"):
        env.step(None)
    while not env.finished:
        move = local.expert_action()
        assert env.expert_action() == move
        obs, reward, terminated, truncated, info = env.step(move)
        assert (obs, reward, terminated, truncated, info) == local.step(move)
    assert info["success"] is True and env.outcome() == local.outcome() == info["outcome"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step("up")
    maze.close()

    codebreaker = RemoteEnv(servers["interplay/CodeBreaker-v0"])
    assert codebreaker.expert_action_probs() is None  # as in-process: CodeBreaker's expert is deterministic
    local = twin("interplay/CodeBreaker-v0")
    assert codebreaker.reset(seed=1) == local.reset(seed=1)
    assert codebreaker.expert_action() == local.expert_action() is not None
    codebreaker.close()


def test_64_concurrent_sessions_lose_and_mix_nothing(servers):
    url, sessions, steps = servers["interplay/Maze-v0"], 64, 12
    barrier = threading.Barrier(sessions)
    errors: list[str] = []

    def play(i: int) -> None:
        try:
            remote, local = RemoteEnv(url, timeout=60), twin("interplay/Maze-v0")
            barrier.wait(timeout=60)
            seed = 1000 + i
            assert remote.reset(seed=seed) == local.reset(seed=seed)
            for _ in range(steps):
                move = local.expert_action()
                assert remote.expert_action() == move
                got, want = remote.step(move), local.step(move)
                assert got == want, (i, got, want)
                if got[2] or got[3]:
                    seed += sessions
                    assert remote.reset(seed=seed) == local.reset(seed=seed)
            remote.close()
        except Exception as error:  # reported below, with the session it happened in
            errors.append(f"session {i}: {type(error).__name__}: {error}"[:500])
            barrier.abort()

    threads = [threading.Thread(target=play, args=(i,)) for i in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not any(thread.is_alive() for thread in threads), "sessions hung"
    assert not errors, "\n".join(errors[:5])


def test_a_dead_or_hung_server_gives_a_clear_error_not_a_hang(tmp_path):
    log = tmp_path / "serve.log"
    process, url = start("interplay/Maze-v0", MAZE_KWARGS, log, "--max-sessions", "1", "--no-expert")
    try:
        wait_healthy(process, url, log)
        env = RemoteEnv(url, timeout=2)
        assert env.expert_action() is None and env.expert_action_probs() is None  # --no-expert
        env.reset(seed=0)
        env.step("u")
        with pytest.raises(RemoteEnvError, match="at capacity"):
            RemoteEnv(url)

        os.kill(process.pid, signal.SIGSTOP)  # hung: the connection is open, nothing answers
        try:
            start_time = time.monotonic()
            with pytest.raises(RemoteEnvError, match=r"no answer within 2 s.*episode \(turn 1\) is lost"):
                env.step("d")
            assert time.monotonic() - start_time < 10
            with pytest.raises(RuntimeError, match="lost with the connection.*reset"):
                env.step("d")
        finally:
            os.kill(process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 20  # the server frees the dropped session once it runs again
        while True:
            try:
                env.reset(seed=1)
                break
            except RemoteEnvError as error:
                if "capacity" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        env.step("u")

        process.kill()  # dead, mid-episode
        process.wait(timeout=10)
        start_time = time.monotonic()
        with pytest.raises(RemoteEnvError, match=url):
            env.step("d")
        with pytest.raises(RemoteEnvError, match="cannot reach.*interplay serve"):
            env.reset(seed=2)
        assert time.monotonic() - start_time < 30
        with pytest.raises(RemoteEnvError, match="cannot reach"):
            gym.make("interplay/Remote-v0", url=url)
    finally:
        stop(process)


def test_remote_id_is_registered_but_not_listed_as_an_environment():
    with pytest.raises(ValueError, match="needs the url"):
        gym.make("interplay/Remote-v0")
    assert "interplay/Remote-v0" not in {e.id for e in interplay.list_envs()}
    listed = {e.id: e for e in interplay.list_envs(include_unavailable=True)}
    assert "url=" in listed["interplay/Remote-v0"].reason


def test_serve_rejects_bad_input_in_one_line(capsys):
    from interplay import cli

    assert cli.main(["serve", "interplay/Maez-v0", "--port", str(free_port())]) == 2
    assert "Did you mean: interplay/Maze-v0" in capsys.readouterr().err
    assert cli.main(["serve", "interplay/Maze-v0", "--env-kwargs", '{"size": -1}']) == 2
    assert "must be an integer" in capsys.readouterr().err


def test_a_remote_batch_stepped_at_once_plays_as_one_stepped_in_turn(servers, monkeypatch):
    """Remote episodes of a turn are stepped at once (their requests sent together, or from threads); the
    trajectories are those of the plain loop."""
    import interplay.rollout as rollout_module

    spec, agent, seeds = EnvSpec("interplay/Remote-v0", {"url": servers["interplay/Maze-v0"]}), from_spec("expert"), \
        list(range(12))
    sent_ahead = rollout(spec, agent, seeds=seeds, group_size=2)
    monkeypatch.setattr(rollout_module, "SEND_AHEAD", False)  # each call on its own, from threads
    threads = rollout(spec, agent, seeds=seeds, group_size=2)
    monkeypatch.setattr(rollout_module, "MAX_STEP_THREADS", 1)  # one thread: the plain loop
    in_turn = rollout(spec, agent, seeds=seeds, group_size=2)
    record = [t.to_dict() | {"manifest": None} for t in in_turn]
    assert [t.to_dict() | {"manifest": None} for t in sent_ahead] == record
    assert [t.to_dict() | {"manifest": None} for t in threads] == record


def test_env_workers_play_in_local_servers_as_in_process():
    agent, seeds = from_spec("expert"), [0, 1, 2, 3, 4, 5]
    local = rollout(EnvSpec("interplay/Maze-v0", MAZE_KWARGS), agent, seeds=seeds)
    served = rollout(EnvSpec("interplay/Maze-v0", MAZE_KWARGS), agent, seeds=seeds, env_workers=2)
    for s, lo in zip(served, local):
        assert (s.env_id, s.env_kwargs, s.seed, s.messages, s.rewards, s.infos, s.outcome) == (
            lo.env_id, lo.env_kwargs, lo.seed, lo.messages, lo.rewards, lo.infos, lo.outcome)
    from interplay.integrations.local_servers import shared_servers

    servers = shared_servers("interplay/Maze-v0", MAZE_KWARGS, 2)  # the same ones, kept for later rollouts
    assert len(servers.urls) == 2
    servers.stop()
    with pytest.raises(RuntimeError, match="(?s)exited with code.*env_workers=0"):
        rollout(EnvSpec("interplay/Maze-v0", MAZE_KWARGS), agent, seeds=seeds, env_workers=2)
    with pytest.raises(ValueError, match="env_workers must be a non-negative integer"):
        rollout("interplay/Maze-v0", agent, env_workers=-1)


def test_cli_rollout_with_env_workers_writes_the_in_process_trajectories(tmp_path):
    from interplay import cli
    from interplay.rollout import load_trajectories

    common = ["rollout", "--env", "interplay/Maze-v0", "--env-kwargs", json.dumps(MAZE_KWARGS), "-n", "3",
              "--model", "expert"]
    assert cli.main([*common, "--out", str(tmp_path / "local.jsonl")]) == 0
    assert cli.main([*common, "--out", str(tmp_path / "served.jsonl"), "--env-workers", "1"]) == 0
    local, served = load_trajectories(tmp_path / "local.jsonl"), load_trajectories(tmp_path / "served.jsonl")
    assert [t.messages for t in served] == [t.messages for t in local]
    assert [t.prompt_ids + t.completion_ids for t in served] == [t.prompt_ids + t.completion_ids for t in local]
