"""The adapter: a TextArena game as a Gymnasium environment, seen by one player (the agent).

TextArena's protocol is ``env.reset(num_players, seed)``, ``get_observation() -> (player_id,
messages)``, ``step(action) -> (done, info)``, ``close() -> (rewards, game_info)``;
``TextArenaEnv`` turns it into the Gymnasium 5-tuple and plays the other seat of two-player games.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any

from interplay.envs.core import TextEnv
from interplay.envs.textarena import arena
from interplay.envs.textarena.availability import playable
from interplay.envs.textarena.games import GAMES, Game
from interplay.envs.textarena.opponent import builtin_move
from interplay.seeds import GlobalRNG

#: Replies are cut to their last MAX_REPLY_CHARS characters before TextArena reads them.
MAX_REPLY_CHARS = 2000
#: Opponent moves in a row after which the game is called a draw (an opponent that makes no progress).
MAX_OPPONENT_MOVES = 500
#: Deals tried at reset before giving up on a game the opponent keeps ending before the agent moves.
MAX_DEALS = 20


class TextArenaEnv(TextEnv):
    """A TextArena game, seen by one player (the agent).

    ## Description

    TextArena's ``<game>-v0`` with its default kwargs, adapted to Gymnasium's API: the agent plays
    one seat; in two-player games the other seat is part of the environment.

    ## Action Space

    Any text (``AnyText``): the agent's whole reply; TextArena parses it (most games read a
    ``[bracketed]`` move; where TextArena's default variant wraps bare replies in brackets, so does this
    env). Replies are cut to their last ``MAX_REPLY_CHARS`` characters.

    Invalid moves: ``info["invalid_action"]`` is True when TextArena rejected the reply (detected from
    its "attempted an invalid move" message). By default they never end the game
    (``error_allowance=None``); an integer restores TextArena's rule (with 1, its default, a second
    invalid move in a row loses the game). A reply TextArena raises on counts as invalid.

    ## Observation Space

    Text (``AnyText``): what the agent's player received since its last turn: TextArena's game
    messages, the opponent's moves as ``[Player k] ...``, and TextArena's own message after an invalid
    move (the agent's own move is not echoed back). The first observation holds the rules.

    ## Rewards

    0 until the end; then 1.0 for a win and 0.0 for a draw or loss (``reward="binary"``), or
    TextArena's own reward for the agent (``reward="textarena"``: +1/0/-1 in 2-player games, often a
    completion fraction in 1-player games). ``info["textarena_reward"]`` always holds it. A win is
    TextArena reward >= 1 in 1-player games, more reward than the opponent in 2-player ones.

    ## Starting State

    TextArena's game reset with a seed drawn from the reset seed. Info at reset: ``player``.

    Two-player games: ``opponent=None`` is the built-in opponent (opponent.py): it plays a uniformly
    random move among candidates TextArena accepts (tried on a copy of the game; candidates are the
    bracketed moves the opponent's view mentions, plus the game's move generator and small integers).
    A callable ``opponent(observation) -> str`` gets the opponent's view in the same format. Opponents
    keep TextArena's error allowance: one that errs twice in a row loses. A deal the opponent ends
    before the agent's first move is dealt again, from the episode's next seed: every episode gives
    the agent a move. ``player``: the agent's seat (0 moves first); None alternates with the seed
    (seed % 2).

    Seeding: TextArena draws from Python's global ``random`` (a few games also numpy's); the env swaps
    in its own generator state around every TextArena call, so the same seed and replies give the same
    episode even with many envs in one process.

    ## Held-out Tasks

    Held-out games are the same game at the held-out seeds (``interplay.seeds``): the same
    distribution as training. Many games have few starting states or one (a fixed puzzle, a start
    whose randomness comes later, a number from a small range), so a held-out game often starts
    exactly like a training game: among TextArena's one-player games, from none (Bandit, Blackjack,
    Crosswords, FifteenPuzzle) to all of the held-out starts (Countdown, Cryptarithm, GuessTheNumber,
    Minesweeper, PegJump); ``benchmarks/split_overlap.py --textarena``, figures in
    ``benchmarks/RESULTS.md``.

    ## Episode End

    Termination: TextArena says the game is done. Truncation: ``max_turns`` agent turns.
    ``info["outcome"]``: ``"win"``, ``"loss"`` or ``"draw"``, then TextArena's reason where short.

    ## Arguments

    - ``game``: TextArena base name, e.g. "TowerOfHanoi".
    - ``player``: 0, 1 or None, see Starting State.
    - ``opponent``: None (built-in) or a callable observation -> reply.
    - ``reward``: "binary" (default) or "textarena".
    - ``error_allowance``: None (default: invalid moves never end the game) or an int.
    - ``max_turns``: default 100.
    - ``render_mode``: "ansi" (default) or None.

    ## Version History

    - v0: the first version.
    """

    def __init__(
        self,
        game: str,
        player: int | None = None,
        opponent: Callable[[str], str] | None = None,
        reward: str = "binary",
        error_allowance: int | None = None,
        max_turns: int = 100,
        render_mode: str | None = "ansi",
    ) -> None:
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        players, why = playable(game)
        if why:
            raise ValueError(f"TextArena game {game!r} cannot be played here: {why}")
        if player not in (None, 0, 1) or (players == 1 and player == 1):
            raise ValueError(f"player must be None, 0 or 1 (0 only for 1-player games), got {player!r}.")
        if opponent is not None and not callable(opponent):
            raise TypeError(f"opponent must be a callable observation -> reply, got {type(opponent).__name__}.")
        if reward not in ("binary", "textarena"):
            raise ValueError(f"reward must be 'binary' or 'textarena', got {reward!r}.")
        if error_allowance is not None and (not isinstance(error_allowance, int) or error_allowance < 0):
            raise ValueError(f"error_allowance must be None or a non-negative int, got {error_allowance!r}.")
        self.game, self.num_players = game, players
        # A game probed here but not in the records has neither an expert nor a move generator.
        self._record = GAMES.get(game) or Game(players, "")
        self.opponent, self.reward_mode, self.error_allowance = opponent, reward, error_allowance
        self._player_kwarg = player
        self.player = player or 0
        self._ta: Any = None
        self._last_obs = ""
        self._outcome = "unfinished"
        self._seen: dict[int, list[str]] = {}

    # ---- isolating TextArena's global randomness ------------------------------------------------
    @contextlib.contextmanager
    def _ta_context(self) -> Iterator[None]:
        with self._rng.active(), arena.quiet():
            yield

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        self._seed_arg = seed  # the seat alternates with the seed the caller gave
        return super().reset(seed=seed, options=options)

    # ---- hooks -------------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        seed = int(self.np_random.integers(2**31 - 1))
        if self._player_kwarg is None and self.num_players == 2:
            self.player = seed % 2 if self._seed_arg is None else self._seed_arg % 2
        for _ in range(MAX_DEALS):
            if not self._deal(seed):
                observation = self._drain(self.player)
                self._last_obs = observation
                return observation, {"player": self.player}
            # The opponent ended the game before the agent's first move (the built-in one can lose
            # by invalid moves where few of its candidates are legal: Golf, Chopsticks). An episode
            # must give the agent a move: deal again, from the next seed of the episode's generator.
            seed = int(self.np_random.integers(2**31 - 1))
        raise RuntimeError(
            f"TextArena's {self.game}: the opponent ended {MAX_DEALS} deals in a row before the agent moved."
        )

    def _deal(self, seed: int) -> bool:
        """Start TextArena's game from ``seed`` and let the opponent move up to the agent's first
        turn; returns whether the game is already over."""
        self._rng = GlobalRNG(seed)
        with self._ta_context():
            self._ta, self._bracket_bare = arena.make_game(self.game)
            self._ta.reset(num_players=self.num_players, seed=seed)
            self._ta_allowance = getattr(self._ta.state, "error_allowance", 1)
        self._outcome, self._seen = "unfinished", {}
        return self._play_opponent()

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        invalid, done = self._act(self.player, action)
        if not done:
            done = self._play_opponent()
        observation = self._drain(self.player)
        info: dict[str, Any] = {"invalid_action": invalid}
        reward = 0.0
        if done:
            info.update(self._final_info())
            reward = info["textarena_reward"] if self.reward_mode == "textarena" else float(info["success"])
            observation = f"{observation}\nGame over: {self._outcome}".strip()
        self._last_obs = observation
        return observation, reward, done, info

    def _render(self) -> str:
        board = getattr(self._ta, "get_board_str", None)
        if board is not None:
            with contextlib.suppress(Exception), self._ta_context():
                return str(board())
        return self._last_obs

    def outcome(self) -> str:
        return self._outcome

    def expert_action(self) -> str | None:
        expert = self._record.expert
        if expert is None or self._finished or self._ta is None:
            return None
        with self._ta_context():
            return expert(self._ta, self.player, self.np_random)

    # ---- the TextArena protocol ------------------------------------------------------------------
    def _drain(self, pid: int) -> str:
        """Player ``pid``'s messages since its last turn, as compact text (its own moves omitted)."""
        state = self._ta.state
        messages, state.observations[pid] = state.observations[pid], []
        lines = []
        for message in messages:
            # (sender, text, kind); a few games pass sender and text the other way round
            sender = next((m for m in message if isinstance(m, int) and not isinstance(m, bool)), -1)
            text = next((m for m in message if isinstance(m, str)), "").strip()
            kind = next((m for m in message if hasattr(m, "name")), None)
            if sender == pid and kind is not None and kind.name == "PLAYER_ACTION":
                continue
            lines.append(text if sender < 0 else f"[{state.role_mapping.get(sender, f'Player {sender}')}] {text}")
        return "\n".join(lines)

    def _act(self, pid: int, action: str) -> tuple[bool, bool]:
        """Submit ``action`` for ``pid``; returns (invalid, done). TextArena exceptions are invalid moves."""
        state = self._ta.state
        # Many games parse with backtracking regexes that take minutes on a megabyte of text;
        # the move is almost always at the end of a reply.
        action = action[-MAX_REPLY_CHARS:]
        if self._bracket_bare and "[" not in action:
            action = f"[{action}]"  # what TextArena's ActionFormattingWrapper does
        before = len(state.observations[pid])
        with self._ta_context():
            state.error_allowance = self._allowance(pid)
            try:
                done, _ = self._ta.step(action)
            except Exception as error:  # the game choked on the text: report it like TextArena does
                state.add_observation(
                    f"Invalid move: the game could not read that reply ({type(error).__name__}). "
                    "Reply with a move in the format the rules give.",
                    arena.admin_message(),
                    to_id=pid,
                )
                return True, bool(state.done)
        new = state.observations[pid][before:]
        invalid = any(arena.INVALID_MOVE in str(text) for _, text, _ in new)
        invalid |= bool(state.game_info.get(pid, {}).get("invalid_move")) and done
        return invalid, bool(done)

    def _allowance(self, pid: int) -> int:
        if pid != self.player:
            return self._ta_allowance
        return arena.UNLIMITED_ERRORS if self.error_allowance is None else self.error_allowance

    def _play_opponent(self) -> bool:
        """Let the other player move until it is the agent's turn; returns done."""
        state = self._ta.state
        for _ in range(MAX_OPPONENT_MOVES):  # bounded: opponents lose after repeated invalid moves anyway
            if state.done or state.current_player_id == self.player:
                return bool(state.done)
            pid = state.current_player_id
            view = self._drain(pid)
            self._seen.setdefault(pid, []).append(view)
            if self.opponent is not None:
                reply = self.opponent(view)
                if not isinstance(reply, str):
                    raise TypeError(f"opponent must return a str, got {type(reply).__name__}: {reply!r:.80}")
            else:
                reply = self._builtin_move(pid)
            if self._act(pid, reply)[1]:
                return True
        self._outcome = "draw: the opponent made no progress"
        return True

    def _builtin_move(self, pid: int) -> str:
        seen = "\n".join(self._seen.get(pid, []))
        saved = copy.copy(self._rng)
        try:
            return builtin_move(self._ta, pid, self._record.moves, seen, self.np_random, self._ta_context)
        finally:
            self._rng = saved  # trials must not move the game's randomness

    def _final_info(self) -> dict[str, Any]:
        with self._ta_context():
            rewards, game_info = self._ta.close()
        rewards = rewards or {}
        mine = float(rewards.get(self.player, 0.0))
        others = [float(r) for p, r in rewards.items() if p != self.player]
        if self.num_players == 1:
            result = "win" if mine >= 1 else "loss"
        else:
            best_other = max(others, default=0.0)
            result = "win" if mine > best_other else "draw" if mine == best_other else "loss"
        if self._outcome == "unfinished":
            reason = " ".join(str((game_info or {}).get(self.player, {}).get("reason") or "").split())
            self._outcome = f"{result}: {reason}" if reason and len(reason) <= 100 else result
        return {"success": result == "win", "outcome": self._outcome, "textarena_reward": mine}
