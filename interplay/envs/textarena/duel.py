"""Two seats at one TextArena game: ``Duel``, the game both players of a match move in, and the fixed opponents.

``TextArenaEnv`` shows a game to one player and plays the other seat itself; a ``Duel`` plays nobody: whoever
drives it (``interplay.matches``) asks ``to_move``, hands that seat its new messages (``observe``) and submits
its reply (``act``), so both seats can be a model (self-play), or one a model and the other a fixed opponent.

Results and rewards (``SeatResult``, ``RewardRules``), the same for training and evaluation:

- the rules end the game: TextArena's rewards decide, per seat, ``win`` / ``loss`` / ``draw`` (reason
  ``"game"``); rewards ``win`` = +1, ``loss`` = -1, ``draw`` = 0;
- illegal moves: a move TextArena rejects is retried by the same seat; ``error_allowance`` (default 1,
  TextArena's own rule) is how many rejected moves in a row a seat may make: the next one loses the game for
  it (reason ``"illegal"``; reward ``illegal``, default -1) and wins it for the other seat (+1). ``None``:
  illegal moves never end the game (only ``max_plies`` does);
- timeout: a game still running after ``max_plies`` submitted moves (both seats', rejected ones included) is
  cut and counted a draw (reason ``"timeout"``; both seats get ``timeout``, default 0).

Fixed opponents (``FIXED_OPPONENTS``): ``"random"``, a uniformly random legal move (tried on a copy of the
game); ``"builtin"``, TextArenaEnv's built-in opponent (random among legal moves that do not lose at once);
``"expert"``, the game's solver where its record has one (Nim). All draw from the duel's seeded generator, so
a match is the same for the same seed and the same replies.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from interplay.envs.textarena.arena import INVALID_MOVE, UNLIMITED_ERRORS
from interplay.envs.textarena.env import TextArenaEnv
from interplay.envs.textarena.opponent import candidate_moves

#: The fixed opponents a match can seat (``fixed_move``).
FIXED_OPPONENTS = ("random", "builtin", "expert")
#: Why a game ended: by its rules, by a seat's illegal moves, or cut at ``max_plies``.
REASONS = ("game", "illegal", "timeout")


@dataclass(frozen=True)
class SeatResult:
    """How a finished game ended for one seat: ``outcome`` "win" / "draw" / "loss", ``reason`` one of ``REASONS``."""

    outcome: str
    reason: str


@dataclass(frozen=True)
class RewardRules:
    """The reward a seat gets for a finished game (one reward, at the seat's last move; see the module docstring)."""

    win: float = 1.0
    loss: float = -1.0
    draw: float = 0.0
    illegal: float = -1.0  # the seat that lost by illegal moves
    timeout: float = 0.0  # both seats of a game cut at max_plies

    def reward(self, result: SeatResult) -> float:
        if result.reason == "timeout":
            return self.timeout
        if result.reason == "illegal" and result.outcome == "loss":
            return self.illegal
        return {"win": self.win, "loss": self.loss, "draw": self.draw}[result.outcome]


def env_game(env_id: str) -> str:
    """TextArena's base name in ``interplay/TextArena-<Game>-v0`` (or a bare base name), refused unless it is
    a two-player game that runs here."""
    from interplay.envs.textarena.availability import playable

    game = env_id
    if env_id.startswith("interplay/TextArena-") and env_id.endswith("-v0"):
        game = env_id[len("interplay/TextArena-"):-len("-v0")]
    elif "/" in env_id:
        raise ValueError(f"{env_id!r} is not a TextArena game: self-play and game evaluation take "
                         "interplay/TextArena-<Game>-v0, e.g. interplay/TextArena-TicTacToe-v0.")
    players, why = playable(game)
    if why:
        raise ValueError(f"TextArena game {game!r} cannot be played here: {why}")
    if players != 2:
        raise ValueError(f"{env_id} is a {players}-player game; self-play and game evaluation need a two-player "
                         "zero-sum game, e.g. TicTacToe, ConnectFour, Nim or KuhnPoker (`interplay list`).")
    return game


#: Moves (both seats', rejected ones included) before a game is cut as a timeout draw, unless a caller says.
MAX_PLIES = 200


class Duel(TextArenaEnv):
    """One TextArena game with both seats played from outside (see the module docstring)."""

    def __init__(self, game: str, error_allowance: int | None = 1, max_plies: int = MAX_PLIES) -> None:
        super().__init__(env_game(game), player=0, error_allowance=error_allowance, max_turns=max_plies,
                         render_mode=None)
        if not isinstance(max_plies, int) or max_plies < 1:
            raise ValueError(f"max_plies must be a positive integer, got {max_plies!r}.")
        self.max_plies = max_plies
        self.plies = 0
        self.forfeit: int | None = None  # the seat that lost by illegal moves
        self.cut = False
        self.moves: list[dict[str, Any]] = []  # every submitted move: {"seat", "move", "invalid"}

    # TextArenaEnv plays the other seat here; a duel plays none.
    def _play_opponent(self) -> bool:
        return bool(self._ta.state.done)

    def _allowance(self, pid: int) -> int:  # the same rule for both seats
        return UNLIMITED_ERRORS if self.error_allowance is None else self.error_allowance

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        self._deal(int(self.np_random.integers(2**31 - 1)))
        self.plies, self.forfeit, self.cut, self.moves = 0, None, False, []
        return "", {}

    def start(self, seed: int) -> Duel:
        """Deal the game of ``seed`` (the same seed: the same deal and the same fixed opponents' draws)."""
        self.reset(seed=seed)
        return self

    @property
    def done(self) -> bool:
        return self.cut or bool(self._ta.state.done)

    @property
    def to_move(self) -> int | None:
        """The seat whose move it is (None once the game is over)."""
        return None if self.done else int(self._ta.state.current_player_id)

    def observe(self, seat: int) -> str:
        """What ``seat`` received since it last moved (its own moves omitted), as TextArenaEnv shows it."""
        text = self._drain(seat)
        self._seen.setdefault(seat, []).append(text)
        return text

    def act(self, seat: int, move: str) -> bool:
        """Submit ``seat``'s reply; returns whether TextArena rejected it."""
        if self.done or seat != self.to_move:
            raise RuntimeError(f"it is not seat {seat}'s move (to move: {self.to_move}, game over: {self.done}).")
        invalid, done = self._act(seat, move)
        self.plies += 1
        self.moves.append({"seat": seat, "move": move, "invalid": invalid})
        if done and invalid:
            self.forfeit = seat
        elif not done and self.plies >= self.max_plies:
            self.cut = True
        return invalid

    def results(self) -> tuple[SeatResult, SeatResult]:
        """Each seat's result of the finished game."""
        if not self.done:
            raise RuntimeError("results() of a game still running.")
        if self.cut:
            return SeatResult("draw", "timeout"), SeatResult("draw", "timeout")
        if not hasattr(self, "_rewards"):
            with self._ta_context():
                self._rewards = dict(self._ta.close()[0] or {})
        r0, r1 = float(self._rewards.get(0, 0.0)), float(self._rewards.get(1, 0.0))
        reason = "illegal" if self.forfeit is not None else "game"
        if self.forfeit is not None:  # TextArena's rewards agree; this keeps the rule whatever they say
            r0, r1 = (-1.0, 1.0) if self.forfeit == 0 else (1.0, -1.0)
        first = "win" if r0 > r1 else "loss" if r0 < r1 else "draw"
        second = {"win": "loss", "loss": "win", "draw": "draw"}[first]
        return SeatResult(first, reason), SeatResult(second, reason)

    def _reset_results(self) -> None:
        self.__dict__.pop("_rewards", None)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        self._reset_results()
        return super().reset(seed=seed, options=options)

    # ---- fixed opponents ---------------------------------------------------------------------------
    def fixed_move(self, seat: int, opponent: str) -> str:
        """The move of fixed opponent ``opponent`` (one of ``FIXED_OPPONENTS``) for ``seat``, after ``observe``."""
        if opponent == "builtin":
            return self._builtin_move(seat)
        if opponent == "random":
            return self._random_move(seat)
        if opponent == "expert":
            if self._record.expert is None:
                raise ValueError(f"{self.game} has no expert; fixed opponents here: random, builtin.")
            with self._ta_context():
                return self._record.expert(self._ta, seat, self.np_random)
        raise ValueError(f"unknown fixed opponent {opponent!r}; known: {', '.join(FIXED_OPPONENTS)}.")

    def _random_move(self, seat: int) -> str:
        """A uniformly random candidate TextArena accepts (each tried on a copy of the game)."""
        seen = "\n".join(self._seen.get(seat, []))
        candidates = list(dict.fromkeys(candidate_moves(self._record.moves, self._ta.state.game_state, seat, seen)))
        order = self.np_random.permutation(len(candidates))
        saved = copy.copy(self._rng)
        try:
            for i in order:
                trial = copy.deepcopy(self._ta)
                with self._ta_context():
                    trial.state.error_allowance = UNLIMITED_ERRORS
                    before = len(trial.state.observations[seat])
                    try:
                        trial.step(candidates[i])
                    except Exception:
                        continue
                if not any(INVALID_MOVE in str(text) for _, text, _ in trial.state.observations[seat][before:]):
                    return candidates[i]
            return candidates[int(order[0])] if candidates else "[0]"
        finally:
            self._rng = saved  # trials must not move the game's randomness


def fixed_opponents(game: str) -> list[str]:
    """The fixed opponents ``game`` has: random and builtin, and expert where its record has one."""
    from interplay.envs.textarena.games import GAMES

    record = GAMES.get(env_game(game))
    return ["random", "builtin"] + (["expert"] if record is not None and record.expert is not None else [])
