"""Where environments and agents meet: play many episodes at once and record Trajectory records.

Each turn asks the agent for all live episodes in one batch (a session keeps model caches);
finished episodes drop out. The token ids recorded are the ids the model was fed and sampled —
never re-tokenized text: ``prompt_ids`` (system + first observation + generation prompt), then
``completion_ids`` alternating sampled reply ids (``agent_mask`` 1, with their log-probs) and
environment turns as the chat-template delta (``agent_mask`` 0, log-prob 0.0). The sequence ends
with the last reply (the final observation is in ``messages`` only), as TRL's GRPO expects.
For text agents (expert, random, remote, human) ids come from ``tokenizer=`` by the same
template deltas, with the agent's text tokenized; without a tokenizer they stay empty.

Agent failures: a row whose reply is missing or not a string is played as "" and the error is
recorded in that turn's ``infos[t]["agent_error"]``; a batch call that raises stops the rollout
with ``AgentError`` (other rows cannot be trusted then).

Expert play: for agents that want expert actions, the distribution the expert's reply was drawn from
(``expert_action_probs()``, where the environment knows one) is recorded in each turn's
``infos[t]["expert_action_probs"]``, so log μ(y|x) of a seeded-stochastic expert is exact.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import platform
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit

from interplay.agents.base import Agent, Reply, Session, as_reply
from interplay.agents.chat import ChatEncoder, Message
from interplay.envs.core import TextEnv, TurnLimit
from interplay.jsonable import jsonable


@dataclass(frozen=True)
class EnvSpec:
    """An environment id with constructor kwargs and a reset seed (None: drawn and recorded)."""

    id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None


@dataclass
class Trajectory:
    env_id: str
    env_kwargs: dict[str, Any]
    seed: int
    messages: list[Message]
    prompt_ids: list[int]
    completion_ids: list[int]
    agent_mask: list[int]
    logprobs: list[float]
    rewards: list[float]
    reward: float
    success: bool
    outcome: str
    turns: int
    invalid_actions: int
    terminated: bool
    truncated: bool
    infos: list[dict[str, Any]]
    group: int
    manifest: dict[str, Any]
    #: Where ``prompt_ids + completion_ids`` (+ the last reply's close) part from a fresh render of
    #: ``messages`` with the chat template: the first differing index, None when they agree (or the
    #: trajectory has no ids). Templates that drop earlier reasoning make them differ by design, and so
    #: do sampled replies whose ids are not the canonical tokenization of their text.
    fresh_render_diff: int | None = None
    #: Where each reply's own ids begin in ``completion_ids`` (the first at 0), one per turn; None in
    #: records made before it was kept (``turn_index`` then reads the turns off ``agent_mask``).
    reply_starts: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def spans(self) -> list[tuple[int, int, bool]]:
        """The runs of ``completion_ids``: ``(start, end, by_agent)`` for each reply (``agent_mask`` 1) and
        each environment turn (0), in order. (A thinking budget's inserted marker splits a reply in two.)"""
        runs: list[tuple[int, int, bool]] = []
        for i, bit in enumerate(self.agent_mask):
            if runs and runs[-1][2] == bool(bit):
                runs[-1] = (runs[-1][0], i + 1, bool(bit))
            else:
                runs.append((i, i + 1, bool(bit)))
        return runs

    def turn_index(self) -> list[int]:
        """Per token of ``completion_ids``, the turn (reply) it belongs to: a reply's ids and the environment
        turn after it (its close and the next observation) carry the reply's turn."""
        from interplay.training.credit import turn_of_tokens

        starts = self.reply_starts
        if starts is None:
            starts = [start for start, _, by_agent in self.spans() if by_agent]
            if len(starts) != self.turns:  # a thinking budget's marker splits replies: runs are not turns
                raise ValueError(f"this trajectory records no reply_starts and its {len(starts)} agent runs are not "
                                 f"its {self.turns} turns; record it again with this interplay.")
            starts = [0, *starts[1:]]
        return turn_of_tokens(starts, len(self.completion_ids))


class ReplayMismatch(RuntimeError):
    """Replaying a trajectory produced a different observation than the one recorded."""


def _specs(envs: str | EnvSpec | Sequence[str | EnvSpec], seeds: Sequence[int] | None) -> list[EnvSpec]:
    def spec(item: Any) -> EnvSpec:
        if isinstance(item, EnvSpec):
            return item
        if isinstance(item, str):
            return EnvSpec(item)
        raise TypeError(f"environments are given as ids (str) or EnvSpec(id, kwargs, seed), got {item!r:.80}.")

    if isinstance(envs, (str, EnvSpec)):
        base = spec(envs)
        if seeds is None:
            return [base]
        return [EnvSpec(base.id, base.kwargs, int(s)) for s in seeds]
    specs = [spec(item) for item in envs]
    if seeds is not None:
        if len(seeds) != len(specs):
            raise ValueError(f"got {len(seeds)} seeds for {len(specs)} environments; give one seed per environment.")
        specs = [EnvSpec(s.id, s.kwargs, int(seed)) for s, seed in zip(specs, seeds)]
    return specs


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("interplay", "torch", "transformers", "trl", "gymnasium", "tokenizers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            if package == "interplay":
                import interplay

                versions[package] = interplay.__version__
    return versions


class _Episode:
    """One live episode: its environment, chat and token record."""

    def __init__(self, spec: EnvSpec, seed: int, group: int, max_turns: int | None = None,
                 urls: list[str] | None = None, expert_ahead: bool = False) -> None:
        from interplay.registry import make

        self.spec, self.seed, self.group = spec, seed, group
        # With env_workers, the same environment runs in local servers (urls) and is played through RemoteEnv.
        self.env = make("interplay/Remote-v0", url=urls) if urls else make(spec.id, **spec.kwargs)
        if not isinstance(self.env.unwrapped, TextEnv):
            raise TypeError(f"{spec.id} makes a {type(self.env.unwrapped).__name__}, not an interplay TextEnv: rollout "
                            "needs its contract (system_prompt, max_turns, outcome(), expert_action_probs()). "
                            "Subclass interplay.envs.core.TextEnv (see examples/plugin).")
        if expert_ahead and hasattr(self.env.unwrapped, "expert_ahead"):
            # A remote environment then sends the expert's answers with each observation: one round trip a turn.
            self.env.unwrapped.expert_ahead = True
        if max_turns is not None:  # a limit from outside the task: a wrapper, recorded in the manifest
            self.env = TurnLimit(self.env, max_turns)
        #: The environment takes its requests ahead of its calls (RemoteEnv.send_ahead) behind wrappers that
        #: pass every call through unchanged, so a turn of a remote batch is one hand-over to its event loop.
        self.sends_ahead = _sends_ahead(self.env)

    def begin(self) -> None:
        """Reset the environment (at the episode's seed) and start the chat."""
        observation, info = self.env.reset(seed=self.seed)
        # The limit this episode is held to; the environment's own is known after reset (a maze sets it then).
        self.turn_limit = self.env.limit if isinstance(self.env, TurnLimit) else self.env.unwrapped.turn_limit
        self.wrappers = [{"name": w.name, "entry_point": w.entry_point, "kwargs": jsonable(w.kwargs)}
                         for w in self.env.spec.additional_wrappers]
        system = self.env.unwrapped.system_prompt
        self.messages: list[Message] = [{"role": "system", "content": system}] if system else []
        self.messages.append({"role": "user", "content": observation})
        self.new: list[Message] = list(self.messages)  # messages the agent has not seen yet
        self.system = system or None
        self.last_reply: list[int] = []  # the ids of the last reply (what closes it depends on them)
        self.prompt_ids: list[int] = []
        self.completion_ids: list[int] = []
        self.agent_mask: list[int] = []
        self.logprobs: list[float] = []
        self.reply_starts: list[int] = []
        self.rewards: list[float] = []
        self.infos: list[dict[str, Any]] = [jsonable(info)]
        self.invalid_actions = 0
        self.terminated = self.truncated = False

    def add_ids(self, context: list[int], reply: list[int], logprobs: list[float] | None,
                mask: list[int] | None = None) -> None:
        if not self.prompt_ids and not self.completion_ids:
            self.prompt_ids = list(context)
        else:
            self.completion_ids += context
            self.agent_mask += [0] * len(context)
            self.logprobs += [0.0] * len(context)
        self.reply_starts.append(len(self.completion_ids))
        self.completion_ids += reply
        self.agent_mask += list(mask) if mask is not None else [1] * len(reply)
        self.logprobs += list(logprobs) if logprobs is not None else [0.0] * len(reply)
        self.last_reply = list(reply)

    def text_agent_ids(self, encoder: ChatEncoder, text: str) -> None:
        """Ids for a text agent's reply, made the way a model agent's session makes them."""
        first = not self.prompt_ids
        context = encoder.prompt(self.new) if first else encoder.close(self.last_reply) + encoder.delta(self.new, self.system)
        self.add_ids(context, encoder.reply_ids(text), None)

    def fresh_render_diff(self, encoder: ChatEncoder) -> int | None:
        if not self.prompt_ids:
            return None
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")
        ids = self.prompt_ids + self.completion_ids + encoder.close(self.last_reply)
        return encoder.fresh_render_diff(self.messages[: last + 1], ids)

    def record_reply(self, reply: Reply, encoder: ChatEncoder | None, model_ids: bool) -> None:
        """The reply's ids (the agent's own, or made from its text) and its message."""
        if encoder is not None:
            if model_ids and reply.token_ids is not None:
                self.add_ids(reply.context_ids or [], reply.token_ids, reply.logprobs, reply.token_mask)
            else:
                self.text_agent_ids(encoder, reply.text)
        message = {"role": "assistant", "content": reply.text}
        if reply.reasoning is not None:
            message["reasoning_content"] = reply.reasoning
        self.messages.append(message)

    def step(self, reply: Reply, error: str | None, expert_probs: Any) -> bool:
        """Play the reply's text in the environment and record the result; True when the episode ended."""
        observation, reward, terminated, truncated, info = self.env.step(reply.text)
        info = jsonable(info)
        if error:
            info["agent_error"] = error
        if expert_probs is not None:
            info["expert_action_probs"] = jsonable(expert_probs)
        self.rewards.append(reward)
        self.infos.append(info)
        self.invalid_actions += bool(info.get("invalid_action"))
        self.messages.append({"role": "user", "content": observation})
        self.new = [self.messages[-1]]
        if terminated or truncated:
            self.terminated, self.truncated = terminated, not terminated
        return terminated or truncated


#: Wrappers that pass reset(seed=...) and step(action) through unchanged, once per call: an environment behind
#: only these may be sent its requests ahead (``RemoteEnv.send_ahead``).
_PASS_THROUGH = (OrderEnforcing, PassiveEnvChecker, TimeLimit, TurnLimit)


def _sends_ahead(env: gym.Env) -> bool:
    while isinstance(env, gym.Wrapper):
        if type(env) not in _PASS_THROUGH:
            return False
        env = env.env
    return callable(getattr(env, "send_ahead", None))


#: Send the requests of a turn's remote episodes together (``RemoteEnv.send_ahead``); False: each call on its own.
SEND_AHEAD = True


def _send_ahead(episodes: list[_Episode], kind: str, args: dict[int, Any]) -> bool:
    """Send the remote episodes' next requests (``kind`` "reset" or "step", row -> seed or reply text) together,
    and wait for their answers; True when every row's call is then answered at hand (no thread needed)."""
    if not SEND_AHEAD:
        return False
    by_class: dict[type, list[tuple[Any, str, Any]]] = {}
    for row, arg in args.items():
        if episodes[row].sends_ahead:
            env = episodes[row].env.unwrapped
            by_class.setdefault(type(env), []).append((env, kind, arg))
    sent = [all(cls.send_ahead(calls)) for cls, calls in by_class.items()]
    return sum(len(calls) for calls in by_class.values()) == len(args) and all(sent)


#: The most environment calls a rollout has in flight at once (threads; each mostly waits on a server).
MAX_STEP_THREADS = 128


def _slow_step(spec_id: str) -> bool:
    """Whether the id's environment class declares ``slow_step`` (its steps wait outside this interpreter)."""
    try:
        entry_point = gym.spec(spec_id).entry_point
        creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    except Exception:  # an unknown id fails later, with make()'s message
        return False
    return bool(getattr(creator, "slow_step", False))


def _at_hand(env: Any, query: str) -> bool:
    """Whether ``env`` answers ``query`` (an expert method) without waiting outside this interpreter: an
    in-process environment, or a remote one that received the answer with its last observation."""
    at_hand = getattr(env, "answers_at_hand", None)
    return bool(at_hand(query)) if at_hand is not None else not getattr(env, "slow_step", False)


class _Calls:
    """Runs one call per live episode (make, reset, expert queries, step), in row order.

    Where an environment's steps wait outside the interpreter (``TextEnv.slow_step``: a remote server, a
    subprocess), the calls of a turn run at once from a thread pool, so a turn of a remote batch costs
    about one round trip, not one per episode. Each episode's calls stay in the order the plain loop
    makes them, so trajectories and seeds are the same; cheap in-process environments keep the plain loop.
    Remote environments (``RemoteEnv.send_ahead``) get a turn's resets or steps sent together first
    (:func:`_send_ahead`), and their calls then run in the plain loop, answered at hand.
    """

    _threads: concurrent.futures.ThreadPoolExecutor | None = None
    _pid: int | None = None
    _lock = threading.Lock()

    def __init__(self, at_once: bool, size: int) -> None:
        self._pool = self._shared() if at_once and min(MAX_STEP_THREADS, size) > 1 else None

    @classmethod
    def _shared(cls) -> concurrent.futures.ThreadPoolExecutor:
        """The process's step threads, kept between rollouts: starting 64 threads costs more than a turn."""
        with cls._lock:
            if cls._threads is None or cls._pid != os.getpid():  # none yet, or inherited by a fork
                cls._threads, cls._pid = concurrent.futures.ThreadPoolExecutor(MAX_STEP_THREADS, "interplay-step"), \
                    os.getpid()
            return cls._threads

    def map(self, call: Callable[[Any], Any], items: Iterable[Any], at_once: bool = True) -> list[Any]:
        """``[call(item) for item in items]``; the first error (in item order) is raised. ``at_once=False``: the
        plain loop (every call answers at once, so threads would only add their hand-over cost)."""
        if self._pool is None or not at_once:
            return [call(item) for item in items]
        return list(self._pool.map(call, items))

    def expert(self, episodes: list[_Episode], live: list[int], query: str) -> dict[int, Any]:
        """Row -> the episode's ``expert_action()`` or ``expert_action_probs()`` (``query``), asked at once only
        where some environment would wait for its answer (a remote one without it at hand)."""
        def ask(row: int) -> Any:
            return getattr(episodes[row].env.unwrapped, query)()

        wait = any(not _at_hand(episodes[row].env.unwrapped, query) for row in live)
        return dict(zip(live, self.map(ask, live, at_once=wait)))

    def close(self) -> None:
        self._pool = None  # the threads are kept for the next rollout


def _manifest(agent: Agent, encoder: ChatEncoder | None) -> dict[str, Any]:
    """What every trajectory of a rollout shares: who played, how it sampled, tokenizer and versions."""
    return {
        "agent": agent.name,
        "agent_class": type(agent).__name__,
        "sampling": jsonable(agent.sampling_params()),
        **(encoder.fingerprint() if encoder else {}),
        "versions": _versions(),
    }


def _replies(session: Session, agent: Agent, episodes: list[_Episode], live: list[int], calls: _Calls
             ) -> dict[int, tuple[Reply, str | None]]:
    """One turn of the agent for every live episode: row -> (reply, error)."""
    expert = None
    if agent.wants_expert_actions:
        expert = calls.expert(episodes, live, "expert_action")
    replies = session.act({row: episodes[row].new for row in live}, expert_actions=expert)
    out = {}
    for row in live:
        reply = as_reply(replies.get(row)) if isinstance(replies, dict) else as_reply(None)
        missing = isinstance(replies, dict) and row not in replies
        out[row] = (reply, f"agent {agent.name!r} returned no reply for this episode" if missing else reply.error)
    return out


def rollout(
    envs: str | EnvSpec | Sequence[str | EnvSpec],
    agent: Agent,
    *,
    seeds: Sequence[int] | None = None,
    group_size: int = 1,
    max_turns: int | None = None,
    tokenizer: Any = None,
    progress: bool = False,
    env_workers: int = 0,
) -> list[Trajectory]:
    """Play one episode per environment spec (``group_size`` episodes per spec, same seed) with ``agent``.

    Args:
        envs: an id, an ``EnvSpec``, or a list of them (any mix of environments).
        seeds: one reset seed per spec (with a single id/spec: one episode per seed). Specs without
            a seed get a random one, recorded in the trajectory.
        group_size: G episodes per spec, reset with the same seed (a GRPO group); consecutive in
            the output, sharing ``Trajectory.group``.
        max_turns: a limit imposed from outside the task: every environment is wrapped in
            ``TurnLimit(max_turns)``, which truncates and, where it is tighter than the environment's own
            limit, says so in the first observation. Each trajectory's manifest records the wrappers
            (``wrappers``) and the limit the episode was held to (``turn_limit``). None: the
            environment's own limit, part of the task (its id and kwargs).
        tokenizer: for text agents, a tokenizer (or a ``ChatEncoder``, to pass chat-template kwargs)
            that gives their replies ids, so trajectories carry ids (model agents carry their own).
        progress: show a tqdm bar over finished episodes.
        env_workers: N > 0 runs the environments in N local ``interplay serve`` processes per distinct
            (id, kwargs) and plays them through ``RemoteEnv``, so CPU-heavy environments step on several
            cores (needs the openenv extra). The servers are started once per process and kept for later
            rollouts (``interplay.integrations.local_servers.shared_servers``). Trajectories are the same
            as in-process: ids, kwargs and seeds are the spec's.

    Environments whose steps wait outside this interpreter (remote ones, those declaring
    ``TextEnv.slow_step``) are stepped at once within each turn, from threads; others one after another.
    """
    if not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}.")
    if max_turns is not None and (not isinstance(max_turns, int) or max_turns < 1):
        raise ValueError(f"max_turns must be a positive integer or None, got {max_turns!r}.")
    if isinstance(env_workers, bool) or not isinstance(env_workers, int) or env_workers < 0:
        raise ValueError(f"env_workers must be a non-negative integer (0: environments in this process), "
                         f"got {env_workers!r}.")
    specs = _specs(envs, seeds)
    drawn = random.SystemRandom()
    starts = []
    for group, spec in enumerate(specs):
        seed = spec.seed if spec.seed is not None else drawn.randrange(2**31)
        starts += [(spec, seed, group)] * group_size
    urls = _worker_urls(specs, env_workers)
    calls = _Calls(bool(urls) or any(_slow_step(spec.id) for spec in specs), len(starts))
    try:
        return _play(starts, agent, calls, urls, max_turns, tokenizer, progress)
    finally:
        calls.close()


def _worker_urls(specs: list[EnvSpec], env_workers: int) -> dict[int, list[str]]:
    """Group (spec index) -> the urls of the local servers running its environment (none without env_workers)."""
    if not env_workers:
        return {}
    from interplay.integrations.local_servers import shared_servers

    return {group: shared_servers(spec.id, spec.kwargs, env_workers).urls for group, spec in enumerate(specs)}


def _step(args: tuple[_Episode, Reply, str | None, Any]) -> bool:
    episode, reply, error, expert_probs = args
    return episode.step(reply, error, expert_probs)


def _play(starts: list[tuple[EnvSpec, int, int]], agent: Agent, calls: _Calls, urls: dict[int, list[str]],
          max_turns: int | None, tokenizer: Any, progress: bool) -> list[Trajectory]:
    episodes = calls.map(lambda start: _Episode(*start, max_turns, urls.get(start[2]), agent.wants_expert_actions),
                         starts)
    at_hand = _send_ahead(episodes, "reset", {row: episode.seed for row, episode in enumerate(episodes)})
    calls.map(_Episode.begin, episodes, at_once=not at_hand)
    model_ids = agent.encoder is not None
    encoder = agent.encoder if model_ids else tokenizer if isinstance(tokenizer, ChatEncoder) else \
        ChatEncoder(tokenizer) if tokenizer is not None else None
    manifest = _manifest(agent, encoder)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(episodes), desc="episodes", unit="ep")
    session = agent.start(len(episodes))
    live = list(range(len(episodes)))
    while live:
        # A seeded-stochastic expert's distribution over its replies (drawn before it acts), recorded for
        # the exact log μ(y|x) of the coverage profile (interplay.evaluation.expert_log_likelihood).
        expert_probs = calls.expert(episodes, live, "expert_action_probs") if agent.wants_expert_actions else {}
        replies = _replies(session, agent, episodes, live, calls)
        for row, (reply, _) in replies.items():
            episodes[row].record_reply(reply, encoder, model_ids)
        at_hand = _send_ahead(episodes, "step", {row: reply.text for row, (reply, _) in replies.items()})
        ended = calls.map(_step, [(episodes[row], *replies[row], expert_probs.get(row)) for row in replies],
                          at_once=not at_hand)
        finished = [row for row, end in zip(replies, ended) if end]
        if finished:
            session.drop(finished)
            gone = set(finished)
            live = [row for row in live if row not in gone]
            if bar is not None:
                bar.update(len(finished))
    session.close()
    if bar is not None:
        bar.close()
    return [_trajectory(episode, manifest, encoder) for episode in episodes]


def _trajectory(episode: _Episode, manifest: dict[str, Any], encoder: ChatEncoder | None) -> Trajectory:
    last = episode.infos[-1]
    env = episode.env.unwrapped
    return Trajectory(
        env_id=episode.spec.id,
        env_kwargs=jsonable(episode.spec.kwargs),
        seed=episode.seed,
        messages=episode.messages,
        prompt_ids=episode.prompt_ids,
        completion_ids=episode.completion_ids,
        agent_mask=episode.agent_mask,
        logprobs=episode.logprobs,
        rewards=episode.rewards,
        reward=float(sum(episode.rewards)),
        success=bool(last.get("success", False)),
        outcome=str(last.get("outcome") or env.outcome()),
        turns=len(episode.rewards),
        invalid_actions=episode.invalid_actions,
        terminated=episode.terminated,
        truncated=episode.truncated,
        infos=episode.infos,
        group=episode.group,
        manifest={"env_id": episode.spec.id, "env_kwargs": jsonable(episode.spec.kwargs), "seed": episode.seed,
                  "wrappers": episode.wrappers, "turn_limit": episode.turn_limit, **manifest},
        fresh_render_diff=episode.fresh_render_diff(encoder) if encoder is not None else None,
        reply_starts=episode.reply_starts if encoder is not None else None,
    )


def replay(trajectory: Trajectory) -> list[str]:
    """Re-run the environment with the recorded replies; return every observation (first one
    included). Raises ``ReplayMismatch`` at the first observation that differs from the record."""
    from interplay.registry import make

    env = make(trajectory.env_id, **trajectory.env_kwargs)
    for wrapper in trajectory.manifest.get("wrappers", []):  # as recorded: a TurnLimit changes the first observation
        env = load_env_creator(wrapper["entry_point"])(env, **wrapper["kwargs"])
    observation, _ = env.reset(seed=trajectory.seed)
    chat = [m for m in trajectory.messages if m["role"] != "system"]
    recorded = [m["content"] for m in chat if m["role"] == "user"]
    replies = [m["content"] for m in chat if m["role"] == "assistant"]
    observations = [observation]
    for turn, reply in enumerate([None, *replies]):
        if reply is not None:
            observations.append(env.step(reply)[0])
        if observations[-1] != recorded[turn]:
            raise ReplayMismatch(
                f"replaying {trajectory.env_id} (seed {trajectory.seed}, kwargs {trajectory.env_kwargs}) gave a "
                f"different observation at turn {turn}:\n  recorded: {recorded[turn][:300]!r}\n"
                f"  replayed: {observations[-1][:300]!r}\nThe environment is not deterministic, or its code "
                f"changed since the recording (manifest versions: {trajectory.manifest.get('versions')})."
            )
    return observations


def save_trajectories(path: str | Path, trajectories: Sequence[Trajectory]) -> None:
    """Write one JSON object per line (creating the parent directory)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for trajectory in trajectories:
            f.write(json.dumps(trajectory.to_dict(), ensure_ascii=False) + "\n")


def load_trajectories(path: str | Path) -> list[Trajectory]:
    names = {f.name for f in fields(Trajectory)}
    trajectories = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                trajectories.append(Trajectory(**{k: v for k, v in record.items() if k in names}))
            except (json.JSONDecodeError, TypeError) as error:
                raise ValueError(f"{path}:{number} is not a trajectory record: {error}") from error
    return trajectories


def to_dataset(trajectories: Sequence[Trajectory]) -> Any:
    """A ``datasets.Dataset`` with one row per trajectory. ``env_kwargs``, ``infos`` and ``manifest``
    are JSON strings (their keys differ between environments, which Arrow columns cannot hold)."""
    from datasets import Dataset

    rows = []
    for trajectory in trajectories:
        row = trajectory.to_dict()
        for key in ("env_kwargs", "infos", "manifest"):
            row[key] = json.dumps(row[key], ensure_ascii=False)
        rows.append(row)
    return Dataset.from_list(rows)


__all__ = [
    "EnvSpec",
    "ReplayMismatch",
    "Trajectory",
    "load_trajectories",
    "replay",
    "rollout",
    "save_trajectories",
    "to_dataset",
]
