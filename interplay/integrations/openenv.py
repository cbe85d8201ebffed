"""OpenEnv: serve any interplay environment over the network, and play one that runs elsewhere.

Server: ``interplay serve ENV_ID --port P`` (or :func:`serve` / :func:`make_app`) serves a
registered id with openenv-core's ``create_app``: the OpenEnv WebSocket session protocol on
``/ws`` (one environment instance per connection, many sessions at once), ``/health``,
``/schema``, ``/metadata``, and OpenEnv's stateless ``POST /reset``. Any OpenEnv client
(``openenv.core.GenericEnvClient``, or :class:`InterplayClient` here) can play it:

- ``reset`` with ``{"seed": int | None, "options": {...}}``;
- ``step`` with an :class:`InterplayAction` ``{"message": "<the agent's whole reply>"}``; the
  answer is an :class:`InterplayObservation`: ``text`` (the observation), ``info`` (the
  environment's info dict, as JSON), ``terminated``, ``truncated``, plus OpenEnv's ``reward`` and
  ``done`` (terminated or truncated);
- ``state``: an :class:`InterplayState` (the served id and kwargs, turn, whether the episode is
  over, whether an expert is served, the system prompt).

An action with ``query`` set (``"expert_action"``, ``"expert_action_probs"``, ``"outcome"``,
``"render"``) does not act: the observation carries the answer in ``result``. :class:`RemoteEnv`
uses it for ``expert_action()`` and friends, so the expert's draws happen exactly when an
in-process caller would make them. ``interplay serve --no-expert`` answers None instead (for an
evaluation server that agents must not be able to ask for the answer).

Client: :class:`RemoteEnv` (registered as ``interplay/Remote-v0``, taking ``url=``) is a
``TextEnv`` whose episodes are played by the server: same observations, rewards, info keys and
seeded determinism as in-process, so ``interplay.rollout.rollout``, training and evaluation use it
like any id. Every call waits at most ``timeout`` seconds; a server that dies or stops answering
raises :class:`RemoteEnvError` (the episode is lost; ``reset()`` starts a new session).

Observations, infos and reset options travel as JSON: tuples arrive as lists, numpy scalars as
Python numbers, non-finite floats as strings (as in ``Trajectory.infos``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import json
import os
import threading
import uuid
from collections.abc import Coroutine
from typing import Any, Literal

try:
    from openenv.core.client_types import StepResult
    from openenv.core.env_client import EnvClient
    from openenv.core.env_server import (
        Action,
        ConcurrencyConfig,
        Environment,
        Observation,
        State,
        create_app,
    )
    from openenv.core.env_server.types import EnvironmentMetadata
    from websockets.exceptions import ConnectionClosed
except ImportError as _error:  # pragma: no cover - depends on the install
    raise ImportError(
        "interplay's OpenEnv integration needs openenv-core: pip install 'interplay[openenv]'"
    ) from _error
from pydantic import Field

from interplay.envs.core import TextEnv
from interplay.jsonable import jsonable

__all__ = [
    "InterplayAction",
    "InterplayClient",
    "InterplayEnvironment",
    "InterplayObservation",
    "InterplayState",
    "RemoteEnv",
    "RemoteEnvError",
    "make_app",
    "serve",
]

QUERIES = ("expert_action", "expert_action_probs", "outcome", "render")
DEFAULT_MAX_SESSIONS = 256
#: Largest WebSocket message either side accepts (a 10M-character reply is legal in a TextEnv).
MAX_MESSAGE_BYTES = 128 * 1024 * 1024


# ---- the wire types ----------------------------------------------------------------------------
class InterplayAction(Action):
    """The agent's whole reply for the turn (or, with ``query``, a question that does not act)."""

    message: str = Field(default="", description="The agent's whole reply for the turn.")
    query: Literal["expert_action", "expert_action_probs", "outcome", "render"] | None = Field(
        default=None,
        description="Instead of acting, ask for the expert's next reply, its distribution, the "
        "outcome or the text view; answered in the observation's `result`.",
    )


class InterplayObservation(Observation):
    """What the environment said: the observation text, its info dict, how the episode stands."""

    text: str = Field(default="", description="The observation (the first one holds the task).")
    info: dict[str, Any] = Field(default_factory=dict, description="The environment's info dict.")
    terminated: bool = Field(default=False, description="The episode reached an end state.")
    truncated: bool = Field(default=False, description="The episode was cut at the turn limit.")
    system_prompt: str | None = Field(
        default=None, description="At reset: what an agent should put in its system message."
    )
    result: Any = Field(default=None, description="The answer to a query action.")


class InterplayState(State):
    """The served environment and where its episode stands."""

    env_id: str = Field(default="", description="The interplay environment id served.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Its constructor kwargs.")
    turn: int = Field(default=0, description="Turns played in the current episode.")
    finished: bool = Field(default=True, description="No episode is running (over, or no reset yet).")
    deterministic: bool = Field(default=True, description="Same seed and actions give the same episode.")
    expert: bool = Field(default=False, description="The server answers expert_action(_probs) queries.")
    max_turns: int | None = Field(default=None, description="The environment's turn limit.")
    system_prompt: str = Field(default="", description="What an agent should put in its system message.")


# ---- the server --------------------------------------------------------------------------------
class InterplayEnvironment(Environment[InterplayAction, InterplayObservation, InterplayState]):
    """An OpenEnv ``Environment`` around one instance of a registered interplay environment."""

    SUPPORTS_CONCURRENT_SESSIONS = True  # one gym environment per session, nothing shared

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None, expert: bool = True) -> None:
        from interplay.registry import make

        super().__init__()
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.env = make(env_id, **self.env_kwargs)
        base = self.env.unwrapped
        self.expert = expert and callable(getattr(base, "expert_action", None))
        self._episode_id: str | None = None
        self._steps = 0

    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> InterplayObservation:
        if kwargs:
            raise ValueError(f"unknown reset parameters {sorted(kwargs)}; use seed, episode_id and options.")
        observation, info = self.env.reset(seed=seed, options=options)
        self._episode_id = episode_id or uuid.uuid4().hex
        self._steps = 0
        return InterplayObservation(
            text=observation, info=jsonable(info), system_prompt=getattr(self.env.unwrapped, "system_prompt", "")
        )

    def step(self, action: InterplayAction, timeout_s: float | None = None, **kwargs: Any) -> InterplayObservation:
        if action.query is not None:
            return self._answer(action.query)
        observation, reward, terminated, truncated, info = self.env.step(action.message)
        self._steps += 1
        return InterplayObservation(
            text=observation,
            info=jsonable(info),
            terminated=bool(terminated),
            truncated=bool(truncated),
            done=bool(terminated or truncated),
            reward=float(reward),
        )

    def _answer(self, query: str) -> InterplayObservation:
        base = self.env.unwrapped
        if query == "expert_action":
            result = base.expert_action() if self.expert else None
        elif query == "expert_action_probs":
            result = base.expert_action_probs() if self.expert else None
        elif query == "outcome":
            result = base.outcome()
        else:
            result = self.env.render()
        finished = bool(getattr(base, "finished", False))
        return InterplayObservation(result=jsonable(result), done=finished, terminated=finished)

    @property
    def state(self) -> InterplayState:
        base = self.env.unwrapped
        return InterplayState(
            episode_id=self._episode_id,
            step_count=self._steps,
            env_id=self.env_id,
            env_kwargs=jsonable(self.env_kwargs),
            turn=int(getattr(base, "turn", self._steps)),
            finished=bool(getattr(base, "finished", self._episode_id is None)),
            deterministic=bool(getattr(base, "deterministic", True)),
            expert=self.expert,
            max_turns=getattr(base, "max_turns", None),
            system_prompt=getattr(base, "system_prompt", ""),
        )

    def get_metadata(self) -> EnvironmentMetadata:
        import interplay
        from interplay.registry import describe

        return EnvironmentMetadata(
            name=self.env_id,
            description=describe(self.env_id) or f"interplay environment {self.env_id}",
            readme_content=inspect.getdoc(type(self.env.unwrapped)),
            version=interplay.__version__,
            author="interplay",
        )

    def close(self) -> None:
        self.env.close()


def make_app(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    *,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    session_timeout: float | None = None,
    expert: bool = True,
) -> Any:
    """The FastAPI app (openenv-core's ``create_app``) serving ``env_id`` with ``env_kwargs``.

    One environment is built here, so an unknown id or bad kwargs fail now with the environment's
    own message rather than at the first client's connection.
    """
    from interplay.registry import make

    if not isinstance(max_sessions, int) or max_sessions < 1:
        raise ValueError(f"max_sessions must be a positive integer, got {max_sessions!r}.")
    make(env_id, **(env_kwargs or {})).close()
    factory = functools.partial(InterplayEnvironment, env_id, dict(env_kwargs or {}), expert=expert)
    config = ConcurrencyConfig(max_concurrent_envs=max_sessions, session_timeout=session_timeout)
    return create_app(factory, InterplayAction, InterplayObservation, env_name=env_id, concurrency_config=config)


def serve(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    session_timeout: float | None = None,
    expert: bool = True,
    log_level: str = "warning",
) -> None:
    """Serve ``env_id`` until interrupted (uvicorn); print where, once the environment is built."""
    import uvicorn

    app = make_app(env_id, env_kwargs, max_sessions=max_sessions, session_timeout=session_timeout, expert=expert)
    url = f"http://{host}:{port}"
    print(f"serving {env_id} on {url} (OpenEnv: WebSocket sessions on /ws, /health, /schema, /metadata; up to "
          f"{max_sessions} sessions). Play it with gym.make('interplay/Remote-v0', url='{url}').", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws_max_size=MAX_MESSAGE_BYTES)


# ---- the client --------------------------------------------------------------------------------
class InterplayClient(EnvClient[InterplayAction, InterplayObservation, InterplayState]):
    """openenv-core's async WebSocket client, typed for an ``interplay serve`` server.

    ``step`` takes an :class:`InterplayAction` or the reply as a plain str. ``.sync()`` gives
    openenv's synchronous wrapper; :class:`RemoteEnv` is the Gymnasium face of it.
    """

    def _step_payload(self, action: InterplayAction | str) -> dict[str, Any]:
        if isinstance(action, str):
            return {"message": action}
        return action.model_dump(exclude_defaults=True)

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[InterplayObservation]:
        observation = InterplayObservation(
            **payload.get("observation", {}), reward=payload.get("reward"), done=payload.get("done", False)
        )
        return StepResult(observation=observation, reward=observation.reward, done=observation.done)

    def _parse_state(self, payload: dict[str, Any]) -> InterplayState:
        return InterplayState.model_validate(payload)

    async def _send_and_receive(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            return await super()._send_and_receive(message)
        except ConnectionClosed:
            # A server that refuses a session (at capacity, the environment failed to build) sends
            # the reason and closes at once, which can beat our first request: read the reason.
            try:
                answer = json.loads(await asyncio.wait_for(self._ws.recv(), 1.0))  # type: ignore[union-attr]
            except Exception:
                answer = None
            if isinstance(answer, dict) and answer.get("type") == "error":
                data = answer.get("data") or {}
                raise RuntimeError(
                    f"Server error: {data.get('message', 'Unknown error')} (code: {data.get('code', 'UNKNOWN')})"
                ) from None
            raise


_TIMEOUTS = (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)  # distinct on 3.10


class RemoteEnvError(ConnectionError):
    """The server could not be reached, stopped answering, or closed the session."""


class _Loop:
    """One background event loop per process that runs every RemoteEnv's client coroutines.

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


class RemoteEnv(TextEnv):
    """A ``TextEnv`` played by an ``interplay serve`` server (an OpenEnv server) at ``url``.

    ``gym.make("interplay/Remote-v0", url="http://127.0.0.1:8000")``. Each instance holds one
    WebSocket session: its own environment on the server, so many can play at once. Observations,
    rewards, ``terminated``/``truncated`` and ``info`` are the served environment's, as JSON (see
    the module docstring). ``system_prompt``, ``expert_action()``, ``expert_action_probs()``,
    ``outcome()`` and ``render()`` ask the server.

    Kwargs: ``url`` (http://, https://, ws:// or wss://; required), ``timeout`` (seconds to wait
    for any answer, default 60), ``connect_timeout`` (default 10). The server is contacted at
    construction, so a wrong url fails at ``gym.make``.

    Errors: a server that cannot be reached, dies or does not answer within ``timeout`` raises
    :class:`RemoteEnvError` and loses the episode: ``step()`` then refuses until ``reset()``, which
    opens a new session. An error inside the served environment raises RuntimeError with the
    server's message, and the session goes on.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        render_mode: str | None = "ansi",
    ) -> None:
        if not url or not isinstance(url, str):
            raise ValueError(
                "RemoteEnv needs the url of a running `interplay serve ENV_ID --port P` server, e.g. "
                "gym.make('interplay/Remote-v0', url='http://127.0.0.1:8000')."
            )
        for name, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}.")
        super().__init__(render_mode=render_mode)
        self.url = url
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self._client: InterplayClient | None = None
        self._lost = False
        state = self._call(lambda client: client.state(), "read the server's state")
        self.env_id: str = state.env_id
        self.env_kwargs: dict[str, Any] = state.env_kwargs
        self.deterministic = state.deterministic  # type: ignore[misc]  (a ClassVar on TextEnv)
        self.max_turns = state.max_turns  # type: ignore[assignment]
        self.system_prompt = state.system_prompt
        self._expert = state.expert

    # ---- transport ------------------------------------------------------------------------------
    def _connect(self) -> InterplayClient:
        if self._client is None:
            client = InterplayClient(
                base_url=self.url,
                connect_timeout_s=self.connect_timeout,
                message_timeout_s=self.timeout,
                max_message_size_mb=MAX_MESSAGE_BYTES / 2**20,
            )
            try:
                _Loop.run(client.connect(), self.connect_timeout + 5.0)
            except Exception as error:
                raise RemoteEnvError(
                    f"cannot reach an interplay server at {self.url} ({type(error).__name__}: {error}). "
                    "Start one with `interplay serve ENV_ID --port P` and pass its url."
                ) from None
            self._client = client
        return self._client

    def _drop_connection(self) -> None:
        """Forget a session that cannot be trusted any more (a late answer must not be read as the
        answer to the next request): close it if the server answers, else cut the connection."""
        client, self._client = self._client, None
        if client is None:
            return
        socket = client._ws
        try:
            _Loop.run(client.disconnect(), 1.0)
        except BaseException:
            transport = getattr(socket, "transport", None)
            if transport is not None:
                _Loop.get().call_soon_threadsafe(transport.abort)

    def _call(self, request: Any, doing: str) -> Any:
        client = self._connect()
        try:
            return _Loop.run(request(client), self.timeout + 5.0)
        except RuntimeError as error:
            message = str(error)
            if "CAPACITY_REACHED" in message:
                self._drop_connection()
                raise RemoteEnvError(
                    f"the interplay server at {self.url} is at capacity ({message}); start it with a "
                    "larger --max-sessions or close other sessions."
                ) from None
            if message.startswith("Server error:"):  # the environment raised; the session goes on
                raise RuntimeError(f"the served environment failed to {doing}: {message}") from None
            raise self._lose(doing, error) from None
        except Exception as error:  # connection closed or refused, no answer in time, a garbled answer
            raise self._lose(doing, error) from None
        except BaseException:  # interrupted mid-request: the session's next answer is this one's
            self._lose(doing, KeyboardInterrupt())
            raise

    def _lose(self, doing: str, error: BaseException) -> RemoteEnvError:
        self._drop_connection()
        episode_running = not self._finished
        self._finished, self._lost = True, episode_running
        if isinstance(error, _TIMEOUTS):
            why = f"no answer within {self.timeout:g} s"
        else:
            why = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        lost = f" The episode (turn {self.turn}) is lost; reset() starts a new session." if episode_running else ""
        return RemoteEnvError(f"the interplay server at {self.url} failed to {doing} ({why}).{lost}")

    def _query(self, query: str) -> Any:
        action = InterplayAction(query=query)  # type: ignore[arg-type]
        return self._call(lambda client: client.step(action), f"answer {query}").observation.result

    # ---- the Gymnasium API ----------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        gym_reset = super(TextEnv, self).reset  # gymnasium.Env.reset: seeds self.np_random
        gym_reset(seed=seed)
        data: dict[str, Any] = {"seed": seed}
        if options is not None:
            data["options"] = jsonable(options)
        result = self._call(lambda client: client.reset(**data), "reset")
        observation = result.observation
        self.turn, self._finished, self._lost = 0, False, False
        if observation.system_prompt is not None:
            self.system_prompt = observation.system_prompt
        return observation.text, observation.info

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
        result = self._call(lambda client: client.step(action), "step")
        observation = result.observation
        self.turn = int(observation.info.get("turn", self.turn + 1))
        if observation.terminated or observation.truncated:
            self._finished = True
        reward = 0.0 if result.reward is None else float(result.reward)
        return observation.text, reward, observation.terminated, observation.truncated, observation.info

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        return self._query("render")

    def outcome(self) -> str:
        return self._query("outcome")

    def expert_action(self) -> str | None:
        """The served environment's expert reply (None where it has none, or the server hides it)."""
        return self._query("expert_action") if self._expert else None

    def expert_action_probs(self) -> dict[str, float] | None:
        """The served expert's distribution over its next reply (None where it has none, or the server
        hides the expert)."""
        return self._query("expert_action_probs") if self._expert else None

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                _Loop.run(client.disconnect(), 5.0)
            except BaseException:
                pass
        super().close()

    def __del__(self) -> None:
        # Environments are often dropped without close() (rollout makes and forgets them): end the
        # session anyway, without waiting, so the server's session slots are not used up.
        client, loop = self.__dict__.get("_client"), _Loop._loop
        if client is not None and loop is not None and _Loop._pid == os.getpid() and not loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(client.disconnect(), loop)
            except Exception:
                pass

    def __repr__(self) -> str:
        return f"<RemoteEnv {getattr(self, 'env_id', '?')} at {self.url}>"
