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
import collections
import functools
import inspect
import threading
import time
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

#: The most threads a server runs environment calls in (its sessions' calls, and any abandoned after their time limit).
MAX_CALL_THREADS = 1024
#: A call that has run this long no longer holds up the calls queued behind it: another thread takes them.
ESCALATE_SECONDS = 0.01


class _Call:
    """One environment call queued in :class:`_Runner`: its function, the event loop's future for its result,
    and what to run once it is over (closing an environment abandoned to it)."""

    __slots__ = ("error", "fn", "future", "loop", "over", "result", "then")

    def __init__(self, fn: Any, loop: asyncio.AbstractEventLoop | None) -> None:
        self.fn, self.loop = fn, loop
        self.future = loop.create_future() if loop is not None else None
        self.over = False
        self.then: list[Any] = []
        self.result: Any = None
        self.error: BaseException | None = None


class _Runner:
    """The threads every session's resets, steps and queries run in (one call of a session at a time).

    A burst of calls (a rollout's turn: one step per session, at once) is handed over in one wake-up: one
    thread at a time takes the queued calls in order, and the results go back to the event loop in batches
    (one wake-up of the loop per batch), where a thread per call, or a wake-up per call, cost more than a cheap
    step itself. A call that runs longer than ``ESCALATE_SECONDS`` leaves its thread to it: a watchdog (a
    timer on the event loop) hands the queue to another thread, started if none is idle, so a slow step holds
    up the other sessions' calls for at most about that long, and the time limit (enforced by the awaiting
    session, from the call's submission) is what it was with a thread per call.

    Threads are kept (up to ``MAX_CALL_THREADS``): starting one per session cost a few milliseconds each on a
    busy machine, more than a whole cheap episode."""

    def __init__(self) -> None:
        self._lock = threading.Condition(threading.Lock())
        self._queue: collections.deque[_Call] = collections.deque()
        self._threads = 0  # started
        self._awake = 0  # not waiting for work: running a call, or woken to take one
        self._idle = 0  # waiting for work
        self._running: dict[int, float] = {}  # thread -> when its current call started
        self._done: dict[asyncio.AbstractEventLoop, list[_Call]] = {}  # results not yet handed to their loop
        self._watched: set[asyncio.AbstractEventLoop] = set()  # loops with a watchdog timer pending

    def submit(self, fn: Any) -> _Call:
        """Queue ``fn``; its result (or error) comes to ``call.future`` on the running event loop."""
        loop = asyncio.get_running_loop()
        call = _Call(fn, loop)
        with self._lock:
            self._queue.append(call)
            self._wake()
        if loop not in self._watched:
            self._watched.add(loop)
            loop.call_later(ESCALATE_SECONDS, self._watch, loop)
        return call

    def submit_nowait(self, fn: Any) -> None:
        """Queue ``fn`` with no result to wait for (from any thread)."""
        with self._lock:
            self._queue.append(_Call(fn, None))
            self._wake()

    def after(self, call: _Call | None, fn: Any) -> None:
        """Run ``fn`` once ``call`` (maybe still running, maybe overrunning its limit) is over."""
        with self._lock:
            if call is not None and not call.over:
                call.then.append(fn)
                return
        self.submit_nowait(fn)

    def _wake(self) -> None:
        """(Under the lock.) Make sure a thread that is not stuck in a long call will take the queue."""
        if not self._queue:
            return
        now = time.monotonic()
        stuck = sum(1 for started in self._running.values() if now - started > ESCALATE_SECONDS)
        if self._awake - stuck > 0:
            return
        if self._idle:
            self._idle -= 1
            self._awake += 1
            self._lock.notify()
        elif self._threads < MAX_CALL_THREADS:
            self._threads += 1
            self._awake += 1
            threading.Thread(target=self._work, name="interplay-call", daemon=True).start()

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """(On the loop, every ESCALATE_SECONDS while calls run.) Hand the queue on past a call that runs long."""
        with self._lock:
            self._wake()
            busy = bool(self._queue or self._running)
        if busy:
            loop.call_later(ESCALATE_SECONDS, self._watch, loop)
        else:
            self._watched.discard(loop)

    def _work(self) -> None:
        me = threading.get_ident()
        lock = self._lock
        with lock:
            while True:
                while not self._queue:
                    self._awake -= 1
                    self._idle += 1
                    lock.wait()  # whoever notifies moved this thread from idle to awake
                call = self._queue.popleft()
                self._running[me] = time.monotonic()
                lock.release()
                try:
                    try:
                        result, error = call.fn(), None
                    except BaseException as exc:  # handed to the session, as a thread pool would
                        result, error = None, exc
                finally:
                    lock.acquire()
                    del self._running[me]
                    call.over = True
                    then, call.then = call.then, []
                for fn in then:
                    self._queue.appendleft(_Call(fn, None))
                if call.loop is not None:
                    call.result, call.error = result, error
                    done = self._done.setdefault(call.loop, [])
                    done.append(call)
                    if len(done) == 1:
                        try:
                            call.loop.call_soon_threadsafe(self._deliver, call.loop)
                        except RuntimeError:  # the loop is closed: nobody waits for these results
                            self._done.pop(call.loop, None)

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        """(On the loop.) Hand the finished calls' results to their futures."""
        with self._lock:
            done = self._done.pop(loop, [])
        for call in done:
            if not call.future.done():  # not given up (time limit, closed session)
                if call.error is not None:
                    call.future.set_exception(call.error)
                else:
                    call.future.set_result(call.result)
            call.result = call.error = None


_runner = _Runner()


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
        self._last: _Call | None = None  # the environment's last call (maybe still running)
        self._overran: str | None = None  # why the environment was abandoned, once a call ran over the limit

    def _abandon(self, overran: _Call | None) -> None:
        """Leave the environment to its call (close it once the call that overran ends) and build a new one."""
        _runner.after(overran, self.env.close)
        self._build()

    async def _run(self, call: Any, doing: str) -> Any:
        self._last = _runner.submit(call)
        future = self._last.future
        if self.step_timeout is None:
            return await future
        try:  # at the time limit the call runs on in its thread; its future is cancelled, its result dropped
            if _timeout is None:  # Python 3.10
                return await asyncio.wait_for(future, self.step_timeout)
            async with _timeout(self.step_timeout):  # no task per call, unlike wait_for
                return await future
        except asyncio.TimeoutError:
            pass
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
        self._last = _runner.submit(functools.partial(self._reset, last, seed, episode_id, options, expert_ahead, kwargs))
        return await self._last.future

    def _reset(self, last: _Call | None, seed: int | None, episode_id: str | None,
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
        _runner.after(self._last, self.env.close)  # after any call still running


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
