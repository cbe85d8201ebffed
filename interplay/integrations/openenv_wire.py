"""The OpenEnv wire types of an ``interplay serve`` server: what a step sends and what comes back.

Shared by the server (``openenv_server``) and OpenEnv's typed client (``openenv_client.InterplayClient``);
``RemoteEnv`` reads the same fields from the JSON. They subclass OpenEnv's pydantic bases, so ``/schema``
describes them to any OpenEnv client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from interplay.integrations.openenv_internals import INSTALL, check_openenv

check_openenv()
try:
    from openenv.core.env_server import Action, Observation, State
except ImportError as _error:  # pragma: no cover - a tested version has them
    raise ImportError(f"interplay's OpenEnv integration cannot import OpenEnv's server types: {INSTALL}") from _error

#: Questions an action can ask instead of acting (answered in the observation's ``result``).
QUERIES = ("expert_action", "expert_action_probs", "outcome", "render")


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
    truncated: bool = Field(default=False, description="The episode was cut at the turn limit (or the step "
                            "time limit: info['truncated_reason'] says so).")
    system_prompt: str | None = Field(
        default=None, description="At reset: what an agent should put in its system message."
    )
    max_turns: int | None = Field(default=None, description="At reset: the episode's turn limit (an environment "
                                  "may set it at reset, as Maze does).")
    result: Any = Field(default=None, description="The answer to a query action.")
    expert_ahead: dict[str, Any] | None = Field(
        default=None,
        description="Only when the episode's reset asked for it (reset(expert_ahead=True)) and the episode goes "
        "on: the expert's answers for the state this observation leaves, computed right after the reset or "
        "step, in this order: `probs` (expert_action_probs()) and `action` (expert_action()).",
    )


class InterplayState(State):
    """The served environment and where its episode stands."""

    env_id: str = Field(default="", description="The interplay environment id served.")
    env_kwargs: dict[str, Any] = Field(default_factory=dict, description="Its constructor kwargs.")
    turn: int = Field(default=0, description="Turns played in the current episode.")
    finished: bool = Field(default=True, description="No episode is running (over, or no reset yet).")
    deterministic: bool = Field(default=True, description="Same seed and actions give the same episode.")
    expert: bool = Field(default=False, description="The server answers expert_action(_probs) queries.")
    expert_ahead: bool = Field(default=False, description="reset(expert_ahead=True) makes every observation "
                               "of the episode carry the expert's next answers (`expert_ahead`), saving two "
                               "queries a turn to a client that plays the expert.")
    max_turns: int | None = Field(default=None, description="The environment's turn limit.")
    system_prompt: str = Field(default="", description="What an agent should put in its system message.")


__all__ = ["QUERIES", "InterplayAction", "InterplayObservation", "InterplayState"]
