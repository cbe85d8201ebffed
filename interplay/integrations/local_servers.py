"""Environment servers on this machine, started and stopped by interplay: ``--env-workers N``.

CPU-heavy environments (reasoning-gym tasks, TextArena games, code execution) step in the trainer's
process one at a time, on one core, while the model waits. :class:`LocalServers` runs them in N
``interplay serve`` processes instead, and ``rollout(..., env_workers=N)`` plays them through
``RemoteEnv`` with a pool of those urls, so a batch's steps run on N cores at once.

Each server is a real ``interplay serve`` subprocess on a free 127.0.0.1 port, importing the same
interplay as this process; its output goes to a log file, whose end is quoted if it dies.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import interplay

#: How long a server may take to import its environment and answer /health.
START_TIMEOUT = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return json.loads(response.read()).get("status") == "healthy"
    except (OSError, ValueError):
        return False


class LocalServers:
    """N ``interplay serve ENV_ID`` processes on this machine; a context manager (``with`` stops them).

    ``urls`` are theirs, for ``RemoteEnv(url=urls)``. ``check()`` raises if one has died, with the end
    of its log. ``extra`` are more ``interplay serve`` flags (``--step-timeout 5``...).
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any] | None = None, count: int = 1, *,
                 extra: tuple[str, ...] = (), log_dir: str | Path | None = None) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"the number of environment workers must be a positive integer, got {count!r}.")
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs or {})
        self._log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="interplay-serve-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self._processes: list[subprocess.Popen] = []
        self.urls: list[str] = []
        self.logs: list[Path] = []
        try:
            for i in range(count):
                self._start(i, extra)
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _start(self, i: int, extra: tuple[str, ...]) -> None:
        port = free_port()
        log = self._log_dir / f"server-{i}.log"
        command = [sys.executable, "-m", "interplay.cli", "serve", self.env_id, "--port", str(port),
                   "--env-kwargs", json.dumps(self.env_kwargs), *extra]
        # The servers import the interplay this process imports (a checkout, not only an installed copy).
        source = str(Path(interplay.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)}
        with open(log, "w") as out:
            self._processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env))
        self.urls.append(f"http://127.0.0.1:{port}")
        self.logs.append(log)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        waiting = set(range(len(self.urls)))
        while waiting:
            self.check()
            waiting = {i for i in waiting if not healthy(self.urls[i])}
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"environment server {self.urls[min(waiting)]} ({self.env_id}) did not answer "
                                   f"/health within {START_TIMEOUT:g} s; its log:\n{self._tail(min(waiting))}")
            if waiting:
                time.sleep(0.1)

    def _tail(self, i: int, lines: int = 20) -> str:
        try:
            return "\n".join(self.logs[i].read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def check(self) -> None:
        """Raise RuntimeError if a server has exited, with the end of its log."""
        for i, process in enumerate(self._processes):
            if process.poll() is not None:
                raise RuntimeError(
                    f"environment server {i} ({self.env_id} at {self.urls[i]}) exited with code {process.returncode}; "
                    f"the end of its log ({self.logs[i]}):\n{self._tail(i)}\nFix what the log says, or play the "
                    "environments in this process (env_workers=0, no --env-workers).")

    def stop(self) -> None:
        """Stop every server (SIGTERM, then SIGKILL after 10 s)."""
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def __enter__(self) -> LocalServers:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<LocalServers {self.env_id} x{len(self.urls)}>"


_SHARED: dict[str, LocalServers] = {}


def shared_servers(env_id: str, env_kwargs: dict[str, Any] | None, count: int) -> LocalServers:
    """``count`` local servers of ``env_id`` with ``env_kwargs``, started at the first call and kept for later
    ones (a training run's rollouts), stopped when this process exits. Raises if one has died since."""
    key = json.dumps([env_id, env_kwargs or {}, count], sort_keys=True, default=str)
    servers = _SHARED.get(key)
    if servers is None:
        servers = _SHARED[key] = LocalServers(env_id, env_kwargs, count)
        if len(_SHARED) == 1:
            atexit.register(_stop_shared)
    servers.check()
    return servers


def _stop_shared() -> None:
    for servers in _SHARED.values():
        servers.stop()
    _SHARED.clear()


__all__ = ["LocalServers", "free_port", "healthy", "shared_servers"]
