"""Play an environment that an ``interplay serve`` server (an OpenEnv server) runs: :class:`RemoteEnv`.

``RemoteEnv`` speaks OpenEnv's WebSocket protocol itself (``openenv_internals.WIRE``) over ``websockets``,
with no OpenEnv client code, so changes inside OpenEnv's client cannot break it. Every RemoteEnv of a
process runs its requests on one background event loop (:class:`_Loop`), so requests from several
threads (``rollout`` stepping a batch at once) are in flight together.

Given several urls (a pool of servers serving the same id), each new session goes to the next server in
turn; a server at capacity or unreachable is skipped for the next one.

:class:`InterplayClient` is OpenEnv's own async client, typed for an interplay server, for code that
uses OpenEnv's client API.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import json
import os
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

from interplay.envs.core import TextEnv
from interplay.integrations.openenv_internals import INSTALL
from interplay.integrations.openenv_server import DEFAULT_LIMITS
from interplay.integrations.openenv_wire import InterplayAction, InterplayObservation, InterplayState
from interplay.jsonable import jsonable

try:
    from openenv.core.client_types import StepResult
    from openenv.core.env_client import EnvClient
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed
    from websockets.protocol import State as SocketState
except ImportError as _error:  # pragma: no cover - a tested version has them
    raise ImportError(f"interplay's OpenEnv client cannot import OpenEnv's client or websockets: {INSTALL}") from _error

_TIMEOUTS = (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)  # distinct on 3.10


class RemoteEnvError(ConnectionError):
    """The server could not be reached, stopped answering, or closed the session."""


class ServerError(RuntimeError):
    """The server answered a request with an error message (``code`` is OpenEnv's, e.g. CAPACITY_REACHED)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(f"Server error: {message} (code: {code})")
        self.code = code


class InterplayClient(EnvClient[InterplayAction, InterplayObservation, InterplayState]):
    """OpenEnv's async WebSocket client, typed for an ``interplay serve`` server.

    ``step`` takes an :class:`InterplayAction` or the reply as a plain str. :class:`RemoteEnv` is the
    Gymnasium face of a server and does not use this class.
    """

    def _step_payload(self, action: InterplayAction | str) -> dict[str, Any]:
        if isinstance(action, str):
            return {"message": action}
        return action.model_dump(exclude_defaults=True)

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[InterplayObservation]:
        observation = _observation(payload)
        return StepResult(observation=observation, reward=observation.reward, done=observation.done)

    def _parse_state(self, payload: dict[str, Any]) -> InterplayState:
        return InterplayState.model_validate(payload)


def _observation(payload: dict[str, Any]) -> InterplayObservation:
    return InterplayObservation(**payload.get("observation", {}), reward=payload.get("reward"),
                                done=payload.get("done", False))


def _ws_url(url: str) -> str:
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if url.startswith(http):
            url = ws + url[len(http):]
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"RemoteEnv urls start with http://, https://, ws:// or wss://, got {url!r}.")
    return url.rstrip("/") + ("" if url.rstrip("/").endswith("/ws") else "/ws")


class _Session:
    """One WebSocket session with an OpenEnv server: send a request, read its answer."""

    def __init__(self, socket: ClientConnection, timeout: float) -> None:
        self.socket, self.timeout = socket, timeout

    @classmethod
    async def open(cls, url: str, connect_timeout: float, timeout: float) -> _Session:
        socket = await connect(_ws_url(url), open_timeout=connect_timeout, max_size=DEFAULT_LIMITS.max_message_bytes,
                               compression=None, ping_interval=20, ping_timeout=20)
        return cls(socket, timeout)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            await self.socket.send(json.dumps(message, ensure_ascii=False))
        except ConnectionClosed:
            pass  # a server that refused the session sent why before closing: read it below
        answer = json.loads(await self.socket.recv())  # within the caller's time limit (_Loop.run's)
        if answer.get("type") == "error":
            data = answer.get("data") or {}
            raise ServerError(str(data.get("message", "unknown error")), str(data.get("code", "UNKNOWN")))
        return answer.get("data") or {}

    async def close(self) -> None:
        try:
            await self.socket.send(json.dumps({"type": "close"}))
        except ConnectionClosed:
            pass
        await self.socket.close()

    def abort(self) -> None:
        """Cut the connection now (from the loop's thread): a late answer must not be read as the next one's."""
        transport = getattr(self.socket, "transport", None)
        if transport is not None:
            transport.abort()


class _Sent:
    """A request sent ahead of its call (``RemoteEnv.send_ahead``), and its answer or error once it came."""

    def __init__(self, session: _Session, message: dict[str, Any], timeout: float) -> None:
        self.session, self.message, self.timeout = session, message, timeout
        self._answer: dict[str, Any] | None = None
        self._error: BaseException | None = None

    async def run(self) -> None:
        try:
            if _timeout is None:  # Python 3.10
                self._answer = await asyncio.wait_for(self.session.request(self.message), self.timeout)
            else:
                async with _timeout(self.timeout):
                    self._answer = await self.session.request(self.message)
        except Exception as error:
            self._error = error

    @staticmethod
    async def all(requests: Sequence[_Sent]) -> None:
        await asyncio.gather(*(request.run() for request in requests))

    def fail(self, error: BaseException) -> None:
        if self._answer is None and self._error is None:
            self._error = error

    def answer(self) -> dict[str, Any]:
        if self._error is not None:
            raise self._error
        if self._answer is None:
            raise RuntimeError("a request sent ahead has no answer")
        return self._answer


_timeout = getattr(asyncio, "timeout", None)  # Python 3.11+


class _Loop:
    """One background event loop per process that runs every RemoteEnv's requests.

    Keeping the loop running between calls keeps WebSocket keep-alive pings answered while the
    caller is busy (say, generating with a model), so idle sessions are not dropped.
    """

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None
    _pid: int | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._pid != os.getpid():  # none yet, or inherited by a fork
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="interplay-remote-env", daemon=True).start()
                cls._loop, cls._pid = loop, os.getpid()
            return cls._loop

    @classmethod
    def run(cls, coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, cls.get())
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise


#: How long the session of a RemoteEnv dropped without close() waits for the next RemoteEnv of its pool.
PARKED_SECONDS = 30.0
#: The most such sessions a pool keeps waiting (each holds one of its server's session slots meanwhile).
MAX_PARKED = 256


class _Parked:
    """A session left by a dropped RemoteEnv, with its server's url and state, waiting for the next one."""

    def __init__(self, session: _Session, url: str, state: dict[str, Any]) -> None:
        self.session, self.url, self.state = session, url, state


class _Pool:
    """The servers a RemoteEnv may play on, and where the next session goes (round robin, per process).

    Sessions of RemoteEnvs dropped without ``close()`` (rollout makes one per episode and forgets it) are
    kept for ``PARKED_SECONDS`` and handed to the next RemoteEnvs of the pool: a training run's next
    rollout then skips the connection, the server's environment construction and the state request. The
    next RemoteEnv resets the environment, as a fresh session's would be."""

    _turns: dict[tuple[str, ...], itertools.count] = {}
    _served: dict[tuple[str, ...], dict[str, Any]] = {}  # what the pool's first server said it serves
    _parked: dict[tuple[int, tuple[str, ...]], collections.deque[_Parked]] = {}  # by process and pool
    _lock = threading.Lock()

    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = tuple(urls)
        with self._lock:
            self._turn = self._turns.setdefault(self.urls, itertools.count())

    def check(self, url: str, state: dict[str, Any]) -> None:
        """Raise RemoteEnvError unless the server at ``url`` serves what the pool's other servers serve."""
        served = {"env_id": state.get("env_id"), "env_kwargs": state.get("env_kwargs")}
        with self._lock:
            first = self._served.setdefault(self.urls, {**served, "url": url})
        if (first["env_id"], first["env_kwargs"]) != (served["env_id"], served["env_kwargs"]):
            raise RemoteEnvError(
                f"the servers given to RemoteEnv serve different environments: {url} serves {served['env_id']} "
                f"{served['env_kwargs']}, {first['url']} serves {first['env_id']} {first['env_kwargs']}; a pool "
                "must serve one id with the same kwargs.")

    def park(self, session: _Session, url: str, state: dict[str, Any], loop: asyncio.AbstractEventLoop) -> bool:
        """Keep ``session`` for the next RemoteEnv of the pool (False: too many kept already); closed after
        ``PARKED_SECONDS`` if none takes it."""
        entry = _Parked(session, url, state)
        with self._lock:
            parked = self._parked.setdefault((os.getpid(), self.urls), collections.deque())
            if len(parked) >= MAX_PARKED:
                return False
            parked.append(entry)
        loop.call_soon_threadsafe(loop.call_later, PARKED_SECONDS, self._expire, entry)
        return True

    def _expire(self, entry: _Parked) -> None:
        """(On the loop.) Close a session still waiting after PARKED_SECONDS."""
        with self._lock:
            parked = self._parked.get((os.getpid(), self.urls), collections.deque())
            if not any(e is entry for e in parked):
                return  # taken
            parked.remove(entry)
        asyncio.ensure_future(entry.session.close())

    def take(self) -> _Parked | None:
        """The longest-waiting open session of the pool, or None."""
        dead = []
        with self._lock:
            parked = self._parked.get((os.getpid(), self.urls))
            entry = None
            while parked:
                candidate = parked.popleft()
                if candidate.session.socket.state is SocketState.OPEN:
                    entry = candidate
                    break
                dead.append(candidate)
        for gone in dead:
            _Loop.get().call_soon_threadsafe(gone.session.abort)
        return entry

    def order(self) -> list[str]:
        """Every url, starting with the one whose turn it is."""
        with self._lock:
            start = next(self._turn) % len(self.urls)
        return list(self.urls[start:] + self.urls[:start])


def _urls(url: str | Sequence[str] | None) -> list[str]:
    urls = [url] if isinstance(url, str) else list(url or [])
    if not urls or not all(isinstance(u, str) and u for u in urls):
        raise ValueError(
            "RemoteEnv needs the url of a running `interplay serve ENV_ID --port P` server (or a list of urls of "
            "servers that serve the same id), e.g. gym.make('interplay/Remote-v0', url='http://127.0.0.1:8000').")
    for u in urls:
        _ws_url(u)
    return urls


class RemoteEnv(TextEnv):
    """A ``TextEnv`` played by an ``interplay serve`` server (an OpenEnv server) at ``url``.

    ``gym.make("interplay/Remote-v0", url="http://127.0.0.1:8000")``. Each instance holds one
    WebSocket session: its own environment on the server, so many can play at once. Observations,
    rewards, ``terminated``/``truncated`` and ``info`` are the served environment's, as JSON (see
    ``interplay.integrations.openenv``). ``system_prompt``, ``expert_action()``,
    ``expert_action_probs()``, ``outcome()`` and ``render()`` ask the server; with ``expert_ahead=True``
    the server sends the expert's answers for each new state with the reset or step that reached it, and
    the first ``expert_action_probs()`` and ``expert_action()`` of each state are answered from them with
    no round trip (the same values: the server asked its expert once, as this call would have).
    :meth:`send_ahead` sends the next reset or step of many RemoteEnvs at once (``rollout`` plays each turn
    of a remote batch so: one hand-over to the event loop thread and back, rather than a thread per episode).

    Kwargs: ``url`` (http://, https://, ws:// or wss://; required), or a list of urls of servers that serve
    the same id and kwargs (a pool: each session goes to the next one in turn, skipping a server at
    capacity or unreachable); ``expert_ahead`` (default False; ``rollout`` sets it for an agent that
    plays the expert: the server then asks its expert after every reset and step, which costs an agent
    that never asks); ``timeout`` (seconds to wait for any answer, default 60; above the server's
    step time limit, so a slow step is heard as truncated), ``connect_timeout`` (default 10). A server is
    contacted at construction, so a wrong url fails at ``gym.make``.

    A RemoteEnv dropped without ``close()`` (as ``rollout`` drops its environments) leaves its session for
    ``PARKED_SECONDS`` to the next RemoteEnv of the same urls, which resets it before use (an expert, a
    render or outcome asked before that reset go to a new session): a training run's later rollouts open
    no connections. ``close()`` ends the session at once.

    Errors: a server that cannot be reached, dies or does not answer within ``timeout`` raises
    :class:`RemoteEnvError` and loses the episode: ``step()`` then refuses until ``reset()``, which
    opens a new session. An error inside the served environment raises RuntimeError with the
    server's message, and the session goes on.
    """

    #: Each step waits on the network: rollout steps a batch of these at once (``TextEnv.slow_step``).
    slow_step = True

    def __init__(self, url: str | Sequence[str] | None = None, *, expert_ahead: bool = False, timeout: float = 60.0,
                 connect_timeout: float = 10.0, render_mode: str | None = "ansi") -> None:
        urls = _urls(url)
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}.")
        super().__init__(render_mode=render_mode)
        self.urls, self._pool = urls, _Pool(urls)
        self.url = urls[0]  # the server of the current session
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self._session: _Session | None = None
        self._state: dict[str, Any] = {}  # what the session's server said at connection
        self._recycled = False  # the session was another RemoteEnv's (not reset here yet)
        self._lost = False
        self.env_id, self.env_kwargs = "", {}
        state = self._connect_state()
        self.env_id = state["env_id"]
        self.env_kwargs = state.get("env_kwargs", {})
        self.deterministic = state.get("deterministic", True)  # type: ignore[misc]  (a ClassVar on TextEnv)
        self.max_turns = state.get("max_turns")  # type: ignore[assignment]
        self.system_prompt = state.get("system_prompt", "")
        self._expert = bool(state.get("expert"))
        #: Ask the server for the expert's answers with each reset and step (from the next reset on).
        self.expert_ahead = bool(expert_ahead)
        self._ahead_served = bool(state.get("expert_ahead"))  # older servers do not know reset(expert_ahead=)
        self._ahead: dict[str, Any] = {}  # the current state's expert answers not yet handed out
        self._sent: _Sent | None = None  # the next call's request, sent ahead with others (send_ahead)

    # ---- transport ------------------------------------------------------------------------------
    def _connect(self) -> _Session:
        """The current session, or a new one on the next server of the pool that takes it."""
        if self._session is None:
            self._connect_state()
        return self._session  # type: ignore[return-value]

    def _connect_state(self, recycle: bool = True) -> dict[str, Any]:
        """A session left by a dropped RemoteEnv of the pool (``recycle``), or else a new one on the next server
        of the pool that takes it; return that server's state."""
        parked = self._pool.take() if recycle else None
        if parked is not None:
            self._session, self.url, self._state, self._recycled = parked.session, parked.url, parked.state, True
            return parked.state
        failures = []
        for url in self._pool.order():
            try:
                session = _Loop.run(_Session.open(url, self.connect_timeout, self.timeout), self.connect_timeout + 5.0)
            except Exception as error:
                failures.append(f"{url}: cannot reach it ({type(error).__name__}: {error})")
                continue
            try:  # a server at capacity accepts the connection, then sends why it refuses the session
                state = _Loop.run(session.request({"type": "state"}), self.timeout)
            except ServerError as error:
                _Loop.run(session.close(), 5.0)
                failures.append(f"{url}: {'at capacity' if error.code == 'CAPACITY_REACHED' else 'refused'} ({error})")
                continue
            except Exception as error:
                _Loop.get().call_soon_threadsafe(session.abort)
                failures.append(f"{url}: cannot reach it ({type(error).__name__}: {error})")
                continue
            try:
                self._pool.check(url, state)
            except RemoteEnvError:
                _Loop.run(session.close(), 5.0)
                raise
            self._session, self.url, self._state, self._recycled = session, url, state, False
            return state
        at_capacity = all("at capacity" in failure for failure in failures)
        advice = ("start the servers with a larger --max-sessions, add servers to the url list, or close other "
                  "sessions" if at_capacity else "start one with `interplay serve ENV_ID --port P` and pass its url")
        raise RemoteEnvError(f"no interplay server took a session: {'; '.join(failures)}. To fix: {advice}.")

    def _drop_connection(self) -> None:
        """Forget a session that cannot be trusted any more (a late answer must not be read as the
        answer to the next request): close it if the server answers, else cut the connection."""
        session, self._session = self._session, None
        if session is None:
            return
        try:
            _Loop.run(session.close(), 1.0)
        except BaseException:
            _Loop.get().call_soon_threadsafe(session.abort)

    def _call(self, message: dict[str, Any], doing: str) -> dict[str, Any]:
        sent, self._sent = self._sent, None
        session = self._connect()
        try:
            if sent is not None:  # this call's request went ahead (send_ahead): its answer, or its error
                if sent.session is not session or sent.message != message:
                    raise RuntimeError(f"a request sent ahead ({sent.message.get('type')}) is not the call made "
                                       f"({message.get('type')}); the session's state is unknown")
                return sent.answer()
            return _Loop.run(session.request(message), self.timeout)
        except ServerError as error:  # the environment raised; the session goes on
            raise RuntimeError(f"the served environment failed to {doing}: {error}") from None
        except Exception as error:  # connection closed or refused, no answer in time, a garbled answer
            raise self._lose(doing, error) from None
        except BaseException:  # interrupted mid-request: the session's next answer is this one's
            self._lose(doing, KeyboardInterrupt())
            raise

    def _lose(self, doing: str, error: BaseException) -> RemoteEnvError:
        self._ahead = {}
        self._drop_connection()
        episode_running = not self._finished
        self._finished, self._lost = True, episode_running
        if isinstance(error, _TIMEOUTS):
            why = f"no answer within {self.timeout:g} s"
        else:
            why = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        lost = f" The episode (turn {self.turn}) is lost; reset() starts a new session." if episode_running else ""
        return RemoteEnvError(f"the interplay server at {self.url} failed to {doing} ({why}).{lost}")

    def _step(self, data: dict[str, Any], doing: str) -> InterplayObservation:
        return _observation(self._call({"type": "step", "data": data}, doing))

    def _query(self, query: str) -> Any:
        if self._recycled:  # not reset here yet: ask a fresh environment, as a new session would
            self._drop_connection()
            self._connect_state(recycle=False)
        return self._step({"query": query}, f"answer {query}").result

    # ---- the Gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        gym_reset = super(TextEnv, self).reset  # gymnasium.Env.reset: seeds self.np_random
        gym_reset(seed=seed)
        data = self._reset_data(seed, options)
        self._ahead = {}
        for attempt in range(3):
            recycled = self._recycled
            try:
                answer = self._call({"type": "reset", "data": data}, "reset")
                break
            except RemoteEnvError:
                if not recycled:  # a recycled session the server has closed since: try another, then a new one
                    raise
                self._connect_state(recycle=attempt < 1)
        observation = _observation(answer)
        self._recycled = False
        self._ahead = dict(observation.expert_ahead or {})
        self.turn, self._finished, self._lost = 0, False, False
        if observation.system_prompt is not None:
            self.system_prompt = observation.system_prompt
        if observation.max_turns is not None:  # the episode's own (Maze sets it at reset)
            self.max_turns = observation.max_turns
        return observation.text, observation.info

    def _reset_data(self, seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        data: dict[str, Any] = {"seed": seed}
        if options is not None:
            data["options"] = jsonable(options)
        if self.expert_ahead and self._expert and self._ahead_served:
            data["expert_ahead"] = True
        return data

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._finished:
            raise RuntimeError(
                "RemoteEnv.step() called on a finished episode (or before reset())"
                + (", lost with the connection to the server" if self._lost else "")
                + "; call reset() to start a new one."
            )
        if not isinstance(action, str):
            raise TypeError(
                f"RemoteEnv.step() takes the agent's reply as a str, got {type(action).__name__}: {action!r:.80}"
            )
        self._ahead = {}
        observation = self._step({"message": action}, "step")
        self._ahead = dict(observation.expert_ahead or {})
        self.turn = int(observation.info.get("turn", self.turn + 1))
        if observation.terminated or observation.truncated:
            self._finished = True
        reward = 0.0 if observation.reward is None else float(observation.reward)
        return observation.text, reward, observation.terminated, observation.truncated, observation.info

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        return self._query("render")

    def outcome(self) -> str:
        return self._query("outcome")

    def expert_action(self) -> str | None:
        """The served environment's expert reply (None where it has none, or the server hides it)."""
        if not self._expert:
            return None
        if "action" in self._ahead:
            return self._ahead.pop("action")
        return self._query("expert_action")

    def expert_action_probs(self) -> dict[str, float] | None:
        """The served expert's distribution over its next reply (None where it has none, or the server
        hides the expert)."""
        if not self._expert:
            return None
        if "probs" in self._ahead:
            return self._ahead.pop("probs")
        return self._query("expert_action_probs")

    @staticmethod
    def send_ahead(calls: Sequence[tuple[RemoteEnv, str, Any]]) -> list[bool]:
        """Send the next request of several RemoteEnvs at once and wait (on this thread) until every one is
        answered: ``(env, "reset", seed)`` or ``(env, "step", action)``. Each env's next ``reset(seed=seed)`` or
        ``step(action)``, which must be that call, then returns its answer (or raises its error) with no
        round trip. ``rollout`` plays a turn of a remote batch so: one hand-over to the loop thread and back
        for the whole turn, rather than a thread per episode. Returns, per call, whether it was sent (an
        env with no open session, a finished episode or a non-str action is left to its own call)."""
        sent: list[tuple[RemoteEnv, _Sent]] = []
        for env, kind, arg in calls:
            if env._sent is not None or env._session is None or env._session.socket.state is not SocketState.OPEN:
                continue
            if kind == "reset":
                message = {"type": "reset", "data": env._reset_data(arg, None)}
            elif kind == "step" and isinstance(arg, str) and not env._finished:
                message = {"type": "step", "data": {"message": arg}}
            else:
                continue
            sent.append((env, _Sent(env._session, message, env.timeout)))
        if sent:
            requests = [entry for _, entry in sent]
            try:
                _Loop.run(_Sent.all(requests), max(entry.timeout for entry in requests) + 5.0)
            except BaseException:  # interrupted: a late answer must not be read as the next request's
                for env, entry in sent:
                    _Loop.get().call_soon_threadsafe(entry.session.abort)
                    env._session, env._ahead = None, {}
                    env._finished, env._lost = True, not env._finished
                raise
            for env, entry in sent:
                env._sent = entry
        ids = {id(env) for env, _ in sent}
        return [id(env) in ids for env, _, _ in calls]

    def answers_at_hand(self, query: str) -> bool:
        """Whether ``expert_action()`` or ``expert_action_probs()`` (``query``) would answer with no round trip:
        no expert is served, or the last observation brought the answer (``expert_ahead``). ``rollout`` asks
        the others at once, from threads."""
        return not self._expert or {"expert_action": "action", "expert_action_probs": "probs"}.get(query) in self._ahead

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                _Loop.run(session.close(), 5.0)
            except BaseException:
                pass
        super().close()

    def __del__(self) -> None:
        # Environments are often dropped without close() (rollout makes and forgets them): end the
        # session anyway, without waiting, so the server's session slots are not used up.
        # The session is kept a while for the next RemoteEnv of the pool (a training run's next rollout).
        session, loop = self.__dict__.get("_session"), _Loop._loop
        if session is not None and loop is not None and _Loop._pid == os.getpid() and not loop.is_closed():
            try:
                if not self._pool.park(session, self.url, self._state, loop):
                    asyncio.run_coroutine_threadsafe(session.close(), loop)
            except Exception:
                pass

    def __repr__(self) -> str:
        where = self.url if len(getattr(self, "urls", ())) < 2 else f"{self.url} (pool of {len(self.urls)})"
        return f"<RemoteEnv {getattr(self, 'env_id', '?')} at {where}>"


__all__ = ["InterplayClient", "RemoteEnv", "RemoteEnvError", "ServerError"]
