"""OpenEnv: serve any interplay environment over the network, and play one that runs elsewhere.

Server (``openenv_server``): ``interplay serve ENV_ID --port P`` (or :func:`serve` / :func:`make_app`)
serves a registered id with OpenEnv's ``create_app``: the OpenEnv WebSocket session protocol on ``/ws``
(one environment instance per connection, many sessions at once), ``/health``, ``/schema``,
``/metadata``, and OpenEnv's stateless ``POST /reset``, within :class:`ServerLimits` (sessions at once,
idle timeout, message size, step time limit). Any OpenEnv client (``openenv.core.GenericEnvClient``, or
:class:`InterplayClient` here) can play it:

- ``reset`` with ``{"seed": int | None, "options": {...}, "expert_ahead": bool}``;
- ``step`` with an :class:`InterplayAction` ``{"message": "<the agent's whole reply>"}``; the
  answer is an :class:`InterplayObservation`: ``text`` (the observation), ``info`` (the
  environment's info dict, as JSON), ``terminated``, ``truncated``, plus OpenEnv's ``reward`` and
  ``done`` (terminated or truncated). A step over the server's time limit is answered truncated, with
  ``info["truncated_reason"]``;
- ``state``: an :class:`InterplayState` (the served id and kwargs, turn, whether the episode is
  over, whether an expert is served, the system prompt).

An action with ``query`` set (``"expert_action"``, ``"expert_action_probs"``, ``"outcome"``,
``"render"``) does not act: the observation carries the answer in ``result``. :class:`RemoteEnv`
uses it for ``expert_action()`` and friends, so the expert's draws happen exactly when an
in-process caller would make them. ``interplay serve --no-expert`` answers None instead (for an
evaluation server that agents must not be able to ask for the answer).

A client that plays the expert asks for the expert's distribution and reply before every step: two round
trips a turn besides the step. ``reset`` with ``"expert_ahead": true`` saves them: until the episode ends,
each observation carries ``expert_ahead`` = ``{"probs": ..., "action": ...}``, the answers to those two
queries for the state it leaves, asked on the server right after the reset or step (in that order, as
a rollout asks). :class:`RemoteEnv` (``expert_ahead=True``, set by ``rollout`` for an agent that wants
the expert's replies) answers the first ``expert_action_probs()`` and ``expert_action()`` of each state
from them and asks the server for any later one, so the expert's draws are those of an in-process run.

Client (``openenv_client``): :class:`RemoteEnv` (registered as ``interplay/Remote-v0``, taking ``url=``,
one url or a pool) is a ``TextEnv`` whose episodes are played by the server: same observations, rewards,
info keys and seeded determinism as in-process, so ``interplay.rollout.rollout``, training and
evaluation use it like any id. Every call waits at most ``timeout`` seconds; a server that dies or stops
answering raises :class:`RemoteEnvError` (the episode is lost; ``reset()`` starts a new session). The
session of a RemoteEnv dropped without ``close()`` serves the next RemoteEnv of the same urls (after
its reset), for up to ``openenv_client.PARKED_SECONDS``.

Observations, infos and reset options travel as JSON: tuples arrive as lists, numpy scalars as
Python numbers, non-finite floats as strings (as in ``Trajectory.infos``).

The OpenEnv versions interplay was tested with, and the internals it relies on, are in
``openenv_internals``; an untested version is refused at import with what to install.
"""

from __future__ import annotations

from interplay.integrations.openenv_client import InterplayClient, RemoteEnv, RemoteEnvError, ServerError
from interplay.integrations.openenv_internals import INTERNALS, TESTED_OPENENV, check_openenv
from interplay.integrations.openenv_server import (
    DEFAULT_LIMITS,
    InterplayEnvironment,
    ServerLimits,
    make_app,
    serve,
)
from interplay.integrations.openenv_wire import QUERIES, InterplayAction, InterplayObservation, InterplayState

__all__ = [
    "DEFAULT_LIMITS",
    "INTERNALS",
    "QUERIES",
    "TESTED_OPENENV",
    "InterplayAction",
    "InterplayClient",
    "InterplayEnvironment",
    "InterplayObservation",
    "InterplayState",
    "RemoteEnv",
    "RemoteEnvError",
    "ServerError",
    "ServerLimits",
    "check_openenv",
    "make_app",
    "serve",
]
