"""``interplay serve``: any registered environment as an OpenEnv server, with limits a shared server needs.

``serve(ENV_ID)`` (or :func:`make_app` under your own ASGI server) serves the id with OpenEnv's
``create_app``: the WebSocket session protocol on ``/ws`` (one environment instance per connection, many
sessions at once), ``/health``, ``/schema``, ``/metadata`` and OpenEnv's stateless ``POST /reset``. The
wire types are in ``openenv_wire``; what each request does is in ``interplay.integrations.openenv``'s
docstring.

:class:`ServerLimits` holds the limits and their defaults (the one place they are defined): sessions at
once, how long a session may stay silent, the largest message, and how long one step may take. A step
over its limit ends the episode as truncated, with the reason in ``info``, and the session stays usable
(the next ``reset`` gets a fresh environment: the one that overran is abandoned to its thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import uuid
from typing import Any

from interplay.integrations.openenv_internals import INSTALL
from interplay.integrations.openenv_wire import InterplayAction, InterplayObservation, InterplayState
from interplay.integrations.server_limits import DEFAULT_LIMITS, ServerLimits

try:
    from openenv.core.env_server import ConcurrencyConfig, Environment, create_app
    from openenv.core.env_server.types import EnvironmentMetadata
except ImportError as _error:  # pragma: no cover - a tested version has them
    raise ImportError(f"interplay's OpenEnv server cannot import OpenEnv's create_app: {INSTALL}") from _error

from interplay.jsonable import jsonable

#: The most environment calls a server runs at once (its sessions' calls, and any abandoned after their time limit).
MAX_CALL_THREADS = 1024

_calls: concurrent.futures.ThreadPoolExecutor | None = None


def _call_threads() -> concurrent.futures.ThreadPoolExecutor:
    """The threads every session's resets, steps and queries run in (one call of a session at a time).

    Shared and kept: a thread per session would be started (and waited for) at every connection, which
    cost a few milliseconds each on a busy machine, more than a whole cheap episode."""
    global _calls
    if _calls is None:
        _calls = concurrent.futures.ThreadPoolExecutor(MAX_CALL_THREADS, thread_name_prefix="interplay-step")
    return _calls


def _after(future: concurrent.futures.Future | None, call: Any) -> None:
    """Run ``call`` in a call thread once ``future`` (a call still running, maybe overrunning) is over."""
    if future is None or future.done():
        _call_threads().submit(call)
    else:
        future.add_done_callback(lambda _: call())


class InterplayEnvironment(Environment[InterplayAction, InterplayObservation, InterplayState]):
    """An OpenEnv ``Environment`` around one instance of a registered interplay environment.

    Resets, steps and queries run in the server's call threads (one call of a session at a time), steps
    and queries awaited for at most ``step_timeout`` seconds, so a slow step neither blocks the server's
    other sessions nor its caller for longer.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True  # one gym environment per session, nothing shared
    # OpenEnv then builds every session's environment in one shared thread instead of starting a thread per
    # session (a few milliseconds each on a busy machine); resets and steps run in the call threads.
    REQUIRES_SINGLE_THREAD_EXECUTOR = True

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None, expert: bool = True,
                 step_timeout: float | None = DEFAULT_LIMITS.step_timeout) -> None:
        super().__init__()
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.step_timeout = step_timeout
        self._build()
        self.expert = expert and callable(getattr(self.env.unwrapped, "expert_action", None))
        self._episode_id: str | None = None
        self._steps = 0
        self._ahead = False  # this episode's observations carry the expert's next answers (reset(expert_ahead=True))

    def _build(self) -> None:
        from interplay.registry import make

        self.env = make(self.env_id, **self.env_kwargs)
        self._last: concurrent.futures.Future | None = None  # the environment's last call (maybe still running)
        self._overran: str | None = None  # why the environment was abandoned, once a call ran over the limit

    def _abandon(self, overran: concurrent.futures.Future | None) -> None:
        """Leave the environment to its call (close it once the call that overran ends) and build a new one."""
        _after(overran, self.env.close)
        self._build()

    async def _run(self, call: Any, doing: str) -> Any:
        self._last = _call_threads().submit(call)
        future = asyncio.wrap_future(self._last)
        # asyncio.wait leaves the call running at the time limit (as shield would) and starts no task.
        done, _ = await asyncio.wait((future,), timeout=self.step_timeout)
        if done:
            return future.result()
        self._overran = (f"the environment took longer than the server's step time limit of {self.step_timeout:g} s "
                         f"to {doing} (interplay serve --step-timeout); the episode ends here, and the next "
                         "reset starts a fresh environment")
        raise asyncio.TimeoutError

    def reset(self, seed: int | None = None, episode_id: str | None = None, options: dict[str, Any] | None = None,
              expert_ahead: bool = False, **kwargs: Any) -> InterplayObservation:
        """A new episode. ``expert_ahead=True``: every observation of the episode carries the expert's next
        answers (``InterplayObservation.expert_ahead``), as if the client asked for them after each call."""
        return self._reset(self._last, seed, episode_id, options, expert_ahead, kwargs)

    async def reset_async(self, seed: int | None = None, episode_id: str | None = None,
                          options: dict[str, Any] | None = None, expert_ahead: bool = False,
                          **kwargs: Any) -> InterplayObservation:
        """``reset`` in a call thread (the /ws handler awaits this), with no time limit."""
        last = self._last
        self._last = _call_threads().submit(self._reset, last, seed, episode_id, options, expert_ahead, kwargs)
        return await asyncio.wrap_future(self._last)

    def _reset(self, last: concurrent.futures.Future | None, seed: int | None, episode_id: str | None,
               options: dict[str, Any] | None, expert_ahead: bool, kwargs: dict[str, Any]) -> InterplayObservation:
        if kwargs:
            raise ValueError(f"unknown reset parameters {sorted(kwargs)}; use seed, episode_id, options and "
                             "expert_ahead.")
        if self._overran is not None:
            self._abandon(last)  # closed once its overrunning call ``last`` ends
        observation, info = self.env.reset(seed=seed, options=options)
        self._episode_id = episode_id or uuid.uuid4().hex
        self._steps = 0
        self._ahead = bool(expert_ahead) and self.expert
        return InterplayObservation(
            text=observation, info=jsonable(info), system_prompt=getattr(self.env.unwrapped, "system_prompt", ""),
            max_turns=getattr(self.env.unwrapped, "max_turns", None), expert_ahead=self._expert_ahead(),
        )

    def step(self, action: InterplayAction, timeout_s: float | None = None, **kwargs: Any) -> InterplayObservation:
        """The synchronous step (OpenEnv's stateless HTTP ``/step``); WebSocket sessions use ``step_async``."""
        if action.query is not None:
            return self._answer(action.query)
        return self._step_ahead(action.message)

    def _step_ahead(self, message: str) -> InterplayObservation:
        """Step, then (with expert_ahead, in the same worker call and time limit) ask the expert about the new state."""
        observation = self._observe(*self.env.step(message))
        observation.expert_ahead = self._expert_ahead()
        return observation

    def _expert_ahead(self) -> dict[str, Any] | None:
        """The expert's answers for the current state, asked in the order a rollout asks (its distribution, then
        its reply), or None: not asked for, or the episode is over (a rollout asks nothing then)."""
        base = self.env.unwrapped
        if not self._ahead or getattr(base, "finished", False):
            return None
        probs = base.expert_action_probs()
        return {"probs": jsonable(probs), "action": jsonable(base.expert_action())}

    async def step_async(self, action: InterplayAction, timeout_s: float | None = None,
                         **kwargs: Any) -> InterplayObservation:
        if self._overran is not None:
            if action.query is not None:
                return self._answer_overran(action.query)
            raise RuntimeError(f"this episode ended: {self._overran}. Call reset() to start a new one.")
        if action.query is not None:
            try:
                return await self._run(functools.partial(self._answer, action.query), f"answer {action.query}")
            except asyncio.TimeoutError:
                raise RuntimeError(self._overran) from None
        try:
            return await self._run(functools.partial(self._step_ahead, action.message), "step")
        except asyncio.TimeoutError:
            return self._truncated()

    def _observe(self, observation: str, reward: float, terminated: bool, truncated: bool,
                 info: dict[str, Any]) -> InterplayObservation:
        self._steps += 1
        return InterplayObservation(text=observation, info=jsonable(info), terminated=bool(terminated),
                                    truncated=bool(truncated), done=bool(terminated or truncated), reward=float(reward))

    def _truncated(self) -> InterplayObservation:
        """The answer to a step that ran over the limit: the episode ends, truncated, saying why."""
        self._steps += 1
        info = {"turn": self._steps, "success": False, "outcome": "step_timeout", "truncated_reason": self._overran,
                "step_timeout": self.step_timeout}
        return InterplayObservation(text=f"[interplay serve: {self._overran}]", info=info, truncated=True, done=True,
                                    reward=0.0)

    def _answer_overran(self, query: str) -> InterplayObservation:
        result = {"outcome": "step_timeout", "render": f"[{self._overran}]"}.get(query)
        return InterplayObservation(result=result, done=True, truncated=True)

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
            finished=self._overran is not None or bool(getattr(base, "finished", self._episode_id is None)),
            deterministic=bool(getattr(base, "deterministic", True)),
            expert=self.expert,
            expert_ahead=self.expert,
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
        _after(self._last, self.env.close)  # after any call still running


_timeout = getattr(asyncio, "timeout", None)  # Python 3.11+


class IdleTimeout:
    """ASGI middleware that closes a WebSocket session after ``seconds`` without a message from the client.

    OpenEnv's own idle reaper skips WebSocket sessions, so it is done here, below the app: the client
    gets a close frame with the reason (code 1001), and the app sees a disconnect and frees the session.
    The clock runs only while the app waits for the client, not while a step is computed.
    """

    def __init__(self, app: Any, seconds: float | None) -> None:
        self.app, self.seconds = app, seconds

    def __getattr__(self, name: str) -> Any:  # app.state, app.routes... of the wrapped FastAPI app
        return getattr(self.app, name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket" or self.seconds is None:
            return await self.app(scope, receive, send)
        closed = False

        async def timed_receive() -> dict[str, Any]:
            nonlocal closed
            if closed:
                return {"type": "websocket.disconnect", "code": 1001}
            try:
                if _timeout is None:  # Python 3.10
                    return await asyncio.wait_for(receive(), self.seconds)
                async with _timeout(self.seconds):  # no task per message, unlike wait_for
                    return await receive()
            except asyncio.TimeoutError:
                closed = True
                await send({"type": "websocket.close", "code": 1001,
                            "reason": f"idle for {self.seconds:g} s (interplay serve --idle-timeout)"})
                return {"type": "websocket.disconnect", "code": 1001}

        async def guarded_send(message: dict[str, Any]) -> None:
            if not closed:  # the app may still answer or close a session closed here
                await send(message)

        await self.app(scope, timed_receive, guarded_send)


def make_app(env_id: str, env_kwargs: dict[str, Any] | None = None, *, limits: ServerLimits = DEFAULT_LIMITS,
             expert: bool = True) -> Any:
    """The ASGI app (OpenEnv's ``create_app``, inside :class:`IdleTimeout`) serving ``env_id`` with ``env_kwargs``.

    One environment is built here, so an unknown id or bad kwargs fail now with the environment's own
    message rather than at the first client's connection. ``limits.max_message_bytes`` is enforced by the
    ASGI server: :func:`serve` passes it to uvicorn (``ws_max_size``); pass it to yours.
    """
    from interplay.registry import make

    make(env_id, **(env_kwargs or {})).close()
    factory = functools.partial(InterplayEnvironment, env_id, dict(env_kwargs or {}), expert=expert,
                                step_timeout=limits.step_timeout)
    config = ConcurrencyConfig(max_concurrent_envs=limits.max_sessions)
    app = create_app(factory, InterplayAction, InterplayObservation, env_name=env_id, concurrency_config=config)
    return IdleTimeout(app, limits.idle_timeout)


def serve(env_id: str, env_kwargs: dict[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          limits: ServerLimits = DEFAULT_LIMITS, expert: bool = True, log_level: str = "warning") -> None:
    """Serve ``env_id`` until interrupted (uvicorn); print where, once the environment is built."""
    import uvicorn

    app = make_app(env_id, env_kwargs, limits=limits, expert=expert)
    url = f"http://{host}:{port}"
    print(f"serving {env_id} on {url} (OpenEnv: WebSocket sessions on /ws, /health, /schema, /metadata; "
          f"{limits.describe()}). Play it with gym.make('interplay/Remote-v0', url='{url}').", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws_max_size=limits.max_message_bytes)


__all__ = ["DEFAULT_LIMITS", "IdleTimeout", "InterplayEnvironment", "ServerLimits", "make_app", "serve"]
