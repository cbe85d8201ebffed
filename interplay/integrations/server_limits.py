"""The limits of an ``interplay serve`` server, and their defaults: the one place they are defined.

Kept apart from the server (which needs OpenEnv) so that the command line can show the defaults
without the extra installed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerLimits:
    """What one ``interplay serve`` process allows. The defaults, and why:

    - ``max_sessions`` 256: a GRPO batch (64 to 256 episodes) fits one server, and 256 idle sessions of
      a text environment cost little memory; beyond it a client is refused with ``CAPACITY_REACHED``
      (``RemoteEnv`` given several urls moves to the next server).
    - ``idle_timeout`` 900 s: a session that sends nothing for 15 minutes is closed. It frees slots held
      by clients that leaked sessions, while a client that waits on a slow model between turns (minutes
      for a long reasoning reply) keeps its episode. Dead clients go sooner: WebSocket pings find them.
    - ``max_message_bytes`` 128 MiB: the largest reply a TextEnv accepts (``MAX_TEXT_LENGTH``, 10M
      characters) still fits when JSON-escaped, so no legal reply is refused; a larger frame closes the
      connection (code 1009). Lower it for a server open to untrusted clients.
    - ``step_timeout`` 30 s: about 7 times the slowest reply measured in the contract fuzz of every
      environment (4.5 s, ReasoningGym sokoban), and half of ``RemoteEnv``'s default 60 s ``timeout``, so
      a client hears "truncated" from the server before it gives up on it.

    None for ``idle_timeout`` or ``step_timeout``: no limit.
    """

    max_sessions: int = 256
    idle_timeout: float | None = 900.0
    max_message_bytes: int = 128 * 2**20
    step_timeout: float | None = 30.0

    def __post_init__(self) -> None:
        for name in ("max_sessions", "max_message_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        for name in ("idle_timeout", "step_timeout"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{name} must be a positive number of seconds or None (no limit), got {value!r}.")

    def describe(self) -> str:
        seconds = {None: "none"}
        return (f"up to {self.max_sessions} sessions, idle timeout {seconds.get(self.idle_timeout, f'{self.idle_timeout:g} s')}, "
                f"messages up to {self.max_message_bytes / 2**20:g} MiB, step time limit "
                f"{seconds.get(self.step_timeout, f'{self.step_timeout:g} s')}")


DEFAULT_LIMITS = ServerLimits()

__all__ = ["DEFAULT_LIMITS", "ServerLimits"]
