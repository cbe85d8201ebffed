"""TextEnv: the contract every interplay environment keeps (``tests/test_contract.py`` checks it on
every registered id).

Subclasses implement four small hooks and get the rest of the contract for free:

- ``_reset(options) -> (observation, info)``: draw a new task from ``self.np_random``.
- ``_step(action) -> (observation, reward, terminated, info)``: apply the agent's whole reply.
  Put ``invalid_action=True`` in ``info`` when nothing usable could be read from it, and
  ``success`` when the episode ends.
- ``_render() -> str``: the current text view.
- ``outcome() -> str``: a short string naming the end state (final cell, final answer, ...).

and may override ``expert_action()`` and ``expert_action_probs()``. The base class counts turns,
truncates at ``self.max_turns``, fills the ``info`` keys every environment sets (``turn``,
``invalid_action``, and at the end ``success`` and ``outcome``), and refuses to step a finished episode.

An environment class's docstring has Gymnasium's sections, as Markdown headings (``DOC_SECTIONS``):
Description, Action Space, Observation Space, Rewards, Starting State, Episode End, Arguments, Version
History; interplay's environments add Held-out Tasks (how held-out tasks differ from training tasks)
and, where there is one, Expert.
"""

from __future__ import annotations

import string
import sys
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium import spaces
from gymnasium.vector.utils import shared_memory
from gymnasium.wrappers import TimeLimit

#: The sections of an environment class's docstring, in Gymnasium's order (``## Description``, ...).
DOC_SECTIONS = ("Description", "Action Space", "Observation Space", "Rewards", "Starting State", "Episode End",
                "Arguments", "Version History")

# Large enough for any reply an agent can produce (a 1 MB reply is legal, if unwise).
MAX_TEXT_LENGTH = 10_000_000


class AnyText(spaces.Text):
    """A ``Text`` space that contains every string up to ``max_length`` characters.

    Gymnasium's ``Text`` only contains strings over its sampling charset (alphanumerics), but
    observations and replies are free text: unicode, spaces, newlines. Sampling draws printable
    ASCII.
    """

    def __init__(self, max_length: int = MAX_TEXT_LENGTH, **kwargs: Any) -> None:
        kwargs.setdefault("min_length", 0)
        kwargs.setdefault("charset", string.printable)
        super().__init__(max_length, **kwargs)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        # The default draws up to max_length characters: keep samples short.
        length = int(self.np_random.integers(0, 64))
        chars = self.character_list
        return "".join(chars[i] for i in self.np_random.integers(0, len(chars), size=length))

    def __repr__(self) -> str:
        return f"AnyText(max_length={self.max_length})"


@shared_memory.create_shared_memory.register(AnyText)
def _no_shared_memory(space: AnyText, n: int = 1, ctx: Any = None) -> Any:
    # Gymnasium's shared memory stores Text as charset indices and silently blanks anything else.
    raise ValueError(
        "interplay environments have free-text observations, which gymnasium's shared memory cannot "
        "hold. Use gym.make_vec(..., vectorization_mode='sync'), or 'async' with "
        "vector_kwargs={'shared_memory': False}. To step CPU-heavy environments on several cores during "
        "rollouts, use rollout(..., env_workers=N) or --env-workers N (local environment servers)."
    )


def text_space() -> AnyText:
    return AnyText()


class TextEnv(gym.Env[str, str]):
    """Base class of multi-turn text environments.

    Observation: a string (the first one holds the task and its instructions).
    Action: the agent's whole reply for the turn, any string.
    Reward, termination: defined by the subclass. Truncation: after ``max_turns`` turns, the task's own
    limit (a constructor kwarg; a subclass may set it per episode in ``_reset``), which the observations
    should state. A limit imposed from outside is the ``TurnLimit`` wrapper.
    Expert: ``expert_action()`` (default None: no expert) and ``expert_action_probs()``, the
    distribution a seeded-stochastic expert draws from (default None: deterministic or unknown), which
    makes the expert's log-likelihood exact in the coverage profile.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}

    #: What an agent should put in its system message (may be empty).
    system_prompt: str = ""
    #: Same seed and same actions give the same episode. Set False (and say why in the docstring)
    #: only for wrapped third-party games that cannot be seeded.
    deterministic: ClassVar[bool] = True
    #: A step waits on something outside this interpreter (the network, a subprocess), so ``rollout``
    #: steps a batch of these episodes at once from threads; cheap in-process steps keep the plain loop.
    slow_step: ClassVar[bool] = False

    def __init__(self, max_turns: int = 20, render_mode: str | None = "ansi") -> None:
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; use 'ansi' (or None).")
        if not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns must be a positive integer, got {max_turns!r}.")
        self.render_mode = render_mode
        self.max_turns = max_turns
        self.observation_space = text_space()
        self.action_space = text_space()
        self.turn = 0
        self._finished = True  # no episode yet: reset() first

    # ---- hooks for subclasses -------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        raise NotImplementedError

    def _render(self) -> str:
        raise NotImplementedError

    def outcome(self) -> str:
        """A short string that identifies the current (final) state."""
        raise NotImplementedError

    def expert_action(self) -> str | None:
        """The next reply of an expert, or None where the environment has no expert."""
        return None

    def expert_action_probs(self) -> dict[str, float] | None:
        """The distribution ``expert_action()`` draws its next reply from (reply -> probability), or
        None: a deterministic expert, or one whose distribution is not known."""
        return None

    # ---- the Gymnasium API ----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self.turn = 0
        self._finished = False
        self._time_limit = _enclosing_time_limit(self)
        observation, info = self._reset(options)
        if self._time_limit is not None and self._time_limit < self.max_turns:
            observation += turn_limit_note(self._time_limit)
        return observation, {**info, "turn": 0, "invalid_action": False}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._finished:
            raise RuntimeError(
                f"{type(self).__name__}.step() called on a finished episode (or before reset()); "
                "call reset() to start a new one."
            )
        if not isinstance(action, str):
            raise TypeError(
                f"{type(self).__name__}.step() takes the agent's reply as a str, got "
                f"{type(action).__name__}: {action!r:.80}"
            )
        self.turn += 1
        observation, reward, terminated, info = self._step(action)
        truncated = not terminated and self.turn >= self.turn_limit
        info = {"invalid_action": False, **info, "turn": self.turn}
        if terminated or truncated:
            self._finished = True
            info.setdefault("success", False)
            info.setdefault("outcome", self.outcome())
        return observation, float(reward), bool(terminated), bool(truncated), info

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        return self._render()

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def turn_limit(self) -> int:
        """The turn limit the current episode is held to: ``max_turns``, or the step limit of a
        gymnasium ``TimeLimit`` around the environment where that is tighter."""
        time_limit = getattr(self, "_time_limit", None)
        return self.max_turns if time_limit is None else min(self.max_turns, time_limit)


def turn_limit_note(max_turns: int) -> str:
    """The sentence a limit imposed from outside adds to the first observation."""
    return f"\nTurn limit: {max_turns} turns."


# The frames between a wrapper's reset and the environment's: wrappers' reset methods and the passive
# environment checker gymnasium runs on the first reset.
_RESET_FRAMES = frozenset({"reset", "env_reset_passive_checker"})


def _enclosing_time_limit(env: TextEnv) -> int | None:
    """The step limit of a gymnasium ``TimeLimit`` whose ``reset`` is resetting ``env``, if any.

    ``gym.make(id, max_episode_steps=N)`` wraps the environment in ``TimeLimit(N)`` after creating it,
    and nothing tells the environment: its callers are the only trace. ``TimeLimit`` alone would end
    the episode at N steps without telling the agent and without the end-of-episode info keys, so the
    environment applies ``TurnLimit``'s rule itself (the ``TimeLimit`` then never acts first)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_name in _RESET_FRAMES:
        caller = frame.f_locals.get("self")
        if isinstance(caller, TimeLimit) and caller.unwrapped is env:
            return int(caller._max_episode_steps)
        frame = frame.f_back
    return None


class TurnLimit(gym.Wrapper[str, str, str, str], gym.utils.RecordConstructorArgs):
    """Truncates an episode after ``max_turns`` agent turns: gymnasium's ``TimeLimit`` for text
    environments, and it tells the agent.

    A task's own turn limit is the environment's (``TextEnv.max_turns``, set by its kwargs or by a
    registered id such as ``interplay/Maze-4x4-v0``), and its observation states it in its own words.
    This wrapper is a limit imposed from outside (``rollout(max_turns=...)``, ``--max-turns``, a
    training config's ``max_turns``). An agent must not be held to a limit it was not told, so where
    the wrapper is tighter than the environment's own limit for the episode, it appends the sentence
    ``Turn limit: N turns.`` to the first observation; where it is not, observations pass unchanged.

    The wrapper is recorded as gymnasium records wrappers (``env.spec.additional_wrappers``), and
    ``interplay.rollout`` writes it into every trajectory's manifest (``wrappers``, ``turn_limit``),
    so a replay applies it again. ``limit`` is the limit in force for the current episode.
    """

    def __init__(self, env: gym.Env, max_turns: int) -> None:
        if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
            raise ValueError(f"max_turns must be a positive integer, got {max_turns!r}.")
        gym.utils.RecordConstructorArgs.__init__(self, max_turns=max_turns)
        gym.Wrapper.__init__(self, env)
        self.max_turns = max_turns
        self.limit: int | None = None  # set at reset
        self._turns = 0
        self._finished = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        # The limit already in force is known after reset (a maze sets its own per episode); None: unknown.
        own = _limit_in_force(self.env)
        self.limit = self.max_turns if own is None else min(own, self.max_turns)
        self._turns, self._finished = 0, False
        if own is None or self.max_turns < own:
            observation += turn_limit_note(self.max_turns)
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._finished:  # the inner environment does not know this wrapper ended the episode
            raise RuntimeError("step() called on an episode TurnLimit has ended (or before reset()); call reset().")
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._turns += 1
        if not (terminated or truncated) and self._turns >= self.max_turns:
            # The episode ends here: the end-of-episode keys every TextEnv sets.
            truncated = True
            info = {**info, "success": bool(info.get("success", False)),
                    "outcome": info.get("outcome") or self.env.unwrapped.outcome()}
        self._finished = terminated or truncated
        return observation, reward, terminated, truncated, info


def _limit_in_force(env: gym.Env) -> int | None:
    """The turn limit ``env`` holds its episode to: an inner ``TurnLimit``'s, else the environment's
    own (``TextEnv.turn_limit``); None where it is not known."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, TurnLimit):
            return env.limit
        env = env.env
    return getattr(env, "turn_limit", getattr(env, "max_turns", None))
