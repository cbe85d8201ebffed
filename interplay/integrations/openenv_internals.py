"""Every place where interplay depends on OpenEnv, beyond its wire protocol, and the check that guards them.

OpenEnv renamed its package: ``openenv-core`` stopped at 0.3.0, and the current one is ``openenv``. Both
install the same import package (``openenv``), and OpenEnv's server keeps changing between minor versions
(0.3 to 0.10 added MCP, harness and task routes, and rewrote the client). So interplay states the versions
it was tested with (``TESTED_OPENENV``) and ``check_openenv`` refuses any other when a server is built or
a client connects, with a message that says what to install. Widening a range means running
``tests/test_openenv.py`` and ``tests/test_openenv_limits.py`` against the new version and checking each
entry of ``INTERNALS``.

interplay's client (``RemoteEnv``) speaks the WebSocket protocol itself (``WIRE``), with no OpenEnv
client code: the protocol is what other OpenEnv clients and servers share, so it is the stable part.

``INTERNALS``: what is used, where, and what interplay assumes of it.
"""

from __future__ import annotations

from importlib import metadata

#: Distributions that install the ``openenv`` import package, and the versions interplay was tested
#: with: at least the first, below the second. ``openenv`` is the current name (``pip install
#: 'interplay[openenv]'`` brings it); ``openenv-core`` 0.3.0 is its last release under the old name.
TESTED_OPENENV: dict[str, tuple[str, str]] = {
    "openenv": ("0.10.0", "0.11.0"),
    "openenv-core": ("0.3.0", "0.3.1"),
}

#: What ``pip install`` line to suggest for an untested or missing version.
INSTALL = "pip install 'openenv>=0.10,<0.11'  (or: pip install 'interplay[openenv]')"

INTERNALS: dict[str, str] = {
    "openenv.core.env_server.create_app": "make_app serves InterplayEnvironment with it: /ws sessions, /health, "
                                          "/schema, /metadata, POST /reset; one factory call per session",
    "openenv.core.env_server.ConcurrencyConfig(max_concurrent_envs=)": "the server's session cap; a session over "
                                                                       "it is answered with an error whose code is "
                                                                       "CAPACITY_REACHED, then closed",
    "openenv.core.env_server.Environment": "InterplayEnvironment subclasses it: reset(seed, episode_id, options, "
                                           "expert_ahead), step(action), the state property, get_metadata(), "
                                           "close(); the /ws handler awaits reset_async and step_async when a "
                                           "subclass overrides them (they run the calls in interplay's call "
                                           "threads; the per-step time limit lives there)",
    "Environment.REQUIRES_SINGLE_THREAD_EXECUTOR": "True on InterplayEnvironment: OpenEnv builds every session's "
                                                   "environment in one shared thread instead of starting a thread "
                                                   "per session (without it, sessions still work, each connection "
                                                   "starting a thread)",
    "openenv.core.env_server.Action, Observation, State": "pydantic bases of the wire types; Observation carries "
                                                          "reward and done, State episode_id and step_count",
    "openenv.core.env_server.types.EnvironmentMetadata": "answered on /metadata (name, description, readme_content, "
                                                         "version, author)",
    "openenv.core.env_client.EnvClient": "InterplayClient subclasses it for users of OpenEnv's client, through its "
                                         "documented hooks only: _step_payload, _parse_result, _parse_state",
    "openenv.core.client_types.StepResult": "what InterplayClient._parse_result returns",
    "uvicorn.run(ws_max_size=)": "serve() passes the message size limit to uvicorn, which closes a connection "
                                 "that sends a larger frame (code 1009)",
}

#: The wire protocol (OpenEnv's /ws) that RemoteEnv speaks, as interplay relies on it.
WIRE: dict[str, str] = {
    "reset": '{"type": "reset", "data": {"seed": ..., "options": {...}, "expert_ahead": true}} -> {"type": '
             '"observation", "data": {"observation": {...}, "reward": ..., "done": ...}} (expert_ahead only to a '
             'server whose state says expert_ahead)',
    "step": '{"type": "step", "data": <action fields>} -> an observation answer, as for reset',
    "state": '{"type": "state"} -> {"type": "state", "data": <State fields>}',
    "close": '{"type": "close"}: the server ends the session',
    "error": '{"type": "error", "data": {"message": ..., "code": ...}}: any request can be answered so; a session '
             "refused at connection (CAPACITY_REACHED, the environment failed to build) gets it unasked, then "
             "the close",
}


def installed_openenv() -> tuple[str, str] | None:
    """``(distribution, version)`` of the installed ``openenv`` import package, or None when there is none.

    Both distributions may be installed at once (they share the import package); the one whose files
    Python imports is the one that counts."""
    try:
        import openenv
    except ImportError:
        return None
    imported = getattr(openenv, "__file__", None)
    for name in TESTED_OPENENV:
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if imported and str(distribution.locate_file("openenv/__init__.py")) == imported:
            return name, distribution.version
    for name in TESTED_OPENENV:  # files not found where expected (an editable install): any recorded one
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "openenv", getattr(openenv, "__version__", "unknown")


def check_openenv(found: tuple[str, str] | None = None) -> tuple[str, str]:
    """Raise ImportError unless the installed OpenEnv (``found``; default: the imported one) is a tested
    version; return ``(distribution, version)``."""
    from packaging.version import InvalidVersion, Version

    found = installed_openenv() if found is None else found
    if found is None:
        raise ImportError(f"interplay's OpenEnv integration needs OpenEnv: {INSTALL}")
    name, version = found
    low, high = TESTED_OPENENV.get(name, TESTED_OPENENV["openenv"])
    try:
        tested = Version(low) <= Version(version) < Version(high)
    except InvalidVersion:
        tested = False
    if not tested:
        ranges = "; ".join(f"{n} >= {lo}, < {hi}" for n, (lo, hi) in TESTED_OPENENV.items())
        raise ImportError(
            f"interplay's OpenEnv integration relies on OpenEnv's server internals "
            f"(interplay.integrations.openenv_internals.INTERNALS) and was tested with {ranges}; {name} {version} "
            f"is installed. Install a tested version: {INSTALL}.")
    return name, version
