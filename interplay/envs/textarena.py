"""TextArena games as interplay environments: ``interplay/TextArena-<Game>-v0``.

TextArena (Guertler et al., 2025, "TextArena") ships ~100 text games with its own protocol:
``env.reset(num_players, seed)``, ``get_observation() -> (player_id, messages)``,
``step(action) -> (done, info)``, ``close() -> (rewards, game_info)``. ``TextArenaEnv`` turns that
protocol into the Gymnasium 5-tuple. One canonical variant per game: TextArena's ``<Game>-v0``
with its default kwargs, without TextArena's observation wrappers (interplay shows only what is
new since the agent's last turn, not the whole history every turn).

Games that cannot run offline on this machine (NLTK downloads, OpenRouter API keys, f-strings that
need Python 3.12, three or more players, missing data files) are listed by
``interplay.list_envs(include_unavailable=True)`` with the reason, not registered. Availability
comes from ``_AVAILABLE``/``_UNAVAILABLE`` below, measured by ``probe_games()`` for the TextArena
version in ``_PROBED_VERSION`` (tests/test_textarena.py re-probes every game to keep the table
honest); under another TextArena version ``register_games()`` probes once and caches the result in
``$XDG_CACHE_HOME/interplay/textarena-<version>.json``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import itertools
import json
import os
import random
import re
from collections import deque
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from interplay.envs.core import TextEnv

#: Replies are cut to their last MAX_REPLY_CHARS characters before TextArena reads them.
MAX_REPLY_CHARS = 2000

_PROBED_VERSION = "0.7.4"

# base name -> (number of players, one-line description). Measured with probe_games().
_AVAILABLE: dict[str, tuple[int, str]] = {
    "2048": (1, "Slide and merge tiles on a 4x4 board until a 2048 tile appears."),
    "Bandit": (1, "Multi-armed bandit: press coloured buttons for 20 turns, then name the best one."),
    "Blackjack": (1, "Play 5 hands of blackjack against the dealer: hit or stand."),
    "Countdown": (1, "Reach a target number by combining six numbers with + - * /."),
    "Crosswords": (1, "Fill a small crossword from its clues, one letter at a time."),
    "Cryptarithm": (1, "Assign digits to letters so that SEND + MORE = MONEY holds."),
    "FifteenPuzzle": (1, "Slide tiles of the 15-puzzle into order (random shuffle; may be unsolvable)."),
    "FrozenLake": (1, "Walk across a 4x4 frozen lake to the goal without falling into a hole."),
    "GuessTheNumber": (1, "Guess a number in 1-20 in 10 tries with higher/lower hints."),
    "LightsOut": (1, "Toggle lights on a 5x5 grid (a press flips its neighbours) until all are off."),
    "LogicPuzzle": (1, "Solve a zebra-style logic grid puzzle from clues."),
    "Mastermind": (1, "Crack a 4-digit code (digits 1-6, no repeats) from black/white peg feedback."),
    "Minesweeper": (1, "Clear an 8x8 minefield with 10 mines by revealing and flagging cells."),
    "PegJump": (1, "Peg solitaire on a triangular board: jump pegs until one is left."),
    "RushHour": (1, "Slide cars on a 6x6 grid to let the red car out (a sliding-block puzzle)."),
    "Secretary": (1, "The secretary problem: accept or reject 5 candidates seen one at a time."),
    "Set": (1, "Find sets of three cards in the card game Set."),
    "Slitherlink": (1, "Draw a single loop on a 4x4 Slitherlink grid that satisfies the clues."),
    "Sokoban": (1, "Push 3 boxes onto targets in a 6x6 Sokoban room."),
    "Sudoku": (1, "Fill a 9x9 Sudoku with 60 given clues."),
    "ThreeCardMonte": (1, "Follow the ball under three shuffled cups."),
    "TowerOfHanoi": (1, "Move 3 disks from tower A to tower C, never a larger disk on a smaller one."),
    "Alquerque": (2, "Alquerque, a draughts-like capture game on a 5x5 lattice, vs an opponent."),
    "Battleship": (2, "Battleship on a 5x5 grid: sink the opponent's fleet first."),
    "Breakthrough": (2, "Breakthrough on 8x8: first to reach the opposite row wins."),
    "Briscola": (2, "Briscola, an Italian trick-taking card game."),
    "Chopsticks": (2, "Chopsticks finger game: tap hands, split fingers, knock out both hands."),
    "ColonelBlotto": (2, "Colonel Blotto: split 20 units over 3 fields, 9 rounds."),
    "ConnectFour": (2, "Connect Four on a 6x7 board."),
    "Crusade": (2, "Crusade, a chess-variant capture game on an 8x8 board."),
    "GameOfPureStrategy": (2, "Game of Pure Strategy (GOPS): bid cards for prizes."),
    "GermanWhist": (2, "German Whist, a two-player trick-taking card game."),
    "Golf": (2, "Golf card game: swap cards to minimise the sum of your grid."),
    "HighSociety": (2, "High Society: bid money cards for luxury and prestige cards."),
    "IndianPoker": (2, "Indian poker: bet on a card you cannot see, 5 rounds."),
    "IteratedMatchingPennies": (2, "Iterated matching pennies, 10 rounds."),
    "IteratedPrisonersDilemma": (2, "Iterated prisoner's dilemma with a chat turn, 10 rounds."),
    "IteratedRockPaperScissors": (2, "Iterated rock-paper-scissors, 9 rounds."),
    "IteratedTwoThirdsAverage": (2, "Guess two thirds of the average, 10 rounds."),
    "IteratedUltimatumGame": (2, "Iterated ultimatum game: propose and accept splits of a pool of 50."),
    "KuhnPoker": (2, "Kuhn poker (three-card poker), 3 rounds."),
    "LinesOfAction": (2, "Lines of Action: connect all your pieces into one group."),
    "LiarsDice": (2, "Liar's dice with 5 dice each: bid or call a bluff."),
    "MemoryGame": (2, "Memory (concentration) on a 4x4 grid: find more pairs than the opponent."),
    "Nim": (2, "Nim with piles 3, 4, 5: whoever takes the last object wins."),
    "Othello": (2, "Othello (Reversi) on 8x8."),
    "PigDice": (2, "Pig dice game: roll or hold, first to 100 points."),
    "Poker": (2, "Texas hold'em poker, 10 hands."),
    "QuantumTicTacToe": (2, "Quantum tic-tac-toe with entangled moves and collapse."),
    "SantoriniBaseFixed": (2, "Santorini with fixed worker placement: move and build, climb to level 3."),
    "SimpleBlindAuction": (2, "Talk, then bid blind for 5 items with private valuations."),
    "SimpleNegotiation": (2, "Trade resources by offers and accepts to raise your inventory value."),
    "SimpleTak": (2, "Simple Tak on 4x4: build a road across the board."),
    "Snake": (2, "Multiplayer snake on a 5x5 grid: eat apples, do not crash."),
    "SpiteAndMalice": (2, "Spite and Malice, a competitive patience card game."),
    "Stratego": (2, "Stratego on a 10x10 board: capture the flag."),
    "Surround": (2, "Surround (Tron): move without hitting a trail."),
    "Tak": (2, "Tak on 4x4 with stones and a capstone: build a road."),
    "TicTacToe": (2, "Tic-tac-toe on a 3x3 board."),
    "TruthAndDeception": (2, "One player states facts, the other must tell the true one from the lie."),
    "TwoDollar": (2, "Negotiate how to split two dollars, with secret role instructions."),
    "UltimateTicTacToe": (2, "Ultimate tic-tac-toe: nine boards, where you play sends the opponent."),
    "WildTicTacToe": (2, "Wild tic-tac-toe: place X or O, whoever completes a line wins."),
    "PublicGoodsGame": (2, "Public goods game: talk, then contribute to a multiplied common pot, 3 rounds."),
    "MarketEntryGame": (2, "Market entry game: talk, then enter a crowded market or stay out, 5 rounds."),
    "NewRecruit": (2, "New Recruit: a multi-issue job-offer negotiation."),
}

_NLTK = "needs the NLTK 'words' corpus (nltk.download('words')), which cannot be downloaded offline"
_OPENROUTER = "needs an OpenRouter API key (OPENROUTER_API_KEY) for its LLM judge or opponent"
_PY312 = "TextArena's code has f-strings that only Python >= 3.12 parses (SyntaxError on this Python)"
_UNAVAILABLE: dict[str, str] = {
    "Hangman": _NLTK,
    "WordLadder": _NLTK,
    "Wordle": _NLTK,
    "WordSearch": _NLTK,
    "DontSayIt": _NLTK,
    "LetterAuction": _NLTK,
    "SpellingBee": _NLTK,
    "WordChains": _NLTK,
    "Codenames": _NLTK,
    "GuessWho": _OPENROUTER,
    "TwentyQuestions": _OPENROUTER,
    "Debate": _OPENROUTER,
    "ScenarioPlanning": _OPENROUTER,
    "Klondike": "TextArena's Klondike module has a syntax error on this Python (SyntaxError at import)",
    "Checkers": _PY312,
    "Chess": _PY312,
    "IteratedStagHunt": _PY312,
    "ReverseTicTacToe": _PY312,
    "UltimateTexasHoldem": _PY312,
    "UsedCarNegotiation": "the installed TextArena package lacks its data file instructions/blue_book.txt",
    "UsedCar": "registered by TextArena, but its module textarena.envs.UsedCar does not exist",
    "ScorableGames": "the installed TextArena package lacks its games_descriptions/ data folder",
    "BabyAiText": "needs the old 'gym' package and BabyAI (pip install gym minigrid), not installed",
    "Taboo": "needs 4 or more players (an even number); interplay plays 1- and 2-player games",
    "ThreePlayerTicTacToe": "needs exactly 3 players; interplay plays 1- and 2-player games",
    "ThreePlayerGOPS": "needs exactly 3 players; interplay plays 1- and 2-player games",
    "ThreePlayerIPD": "needs exactly 3 players; interplay plays 1- and 2-player games",
    "CharacterConclave": "needs 3 to 15 players; interplay plays 1- and 2-player games",
    "SettlersOfCatan": "needs exactly 4 players; interplay plays 1- and 2-player games",
    "SecretMafia": "needs 5 to 15 players; interplay plays 1- and 2-player games",
}

_UNLIMITED = 10**9  # error allowance that never ends a game
_BRACKETED = re.compile(r"\[[^\[\]\n]{1,40}\]")


# ---- the TextArena registry, read lazily (importing textarena costs ~0.5 s) ------------------------
def _ta_registry() -> dict[str, Any]:
    with _quiet():  # some game modules try (and fail) to download NLTK data at import
        from textarena.envs.registration import ENV_REGISTRY

    return ENV_REGISTRY


def textarena_games() -> dict[str, str]:
    """Every game in TextArena's registry: base name -> canonical TextArena id (``<Game>-v0``)."""
    variants: dict[str, list[str]] = {}
    for ta_id in _ta_registry():
        variants.setdefault(re.match(r"^(.*?)-v\d+", ta_id).group(1), []).append(ta_id)
    return {base: (f"{base}-v0" if f"{base}-v0" in ids else ids[0]) for base, ids in variants.items()}


def _make_ta_env(base: str) -> tuple[Any, bool]:
    """A fresh, unwrapped TextArena env of the canonical variant, and whether TextArena wraps bare
    replies in brackets for it (its ActionFormattingWrapper)."""
    spec = _ta_registry()[textarena_games()[base]]
    module_name, class_name = spec.entry_point.split(":")
    env = getattr(importlib.import_module(module_name), class_name)(**spec.kwargs)
    wrappers = spec.default_wrappers or []
    return env, any(w.__name__ == "ActionFormattingWrapper" for w in wrappers)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # Some games print (RushHour: "Generated puzzle in 1 attempts"); an env's stdout is not theirs.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _reason(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, LookupError) and "nltk" in text.lower():
        return _NLTK
    if "OpenRouter" in text:
        return _OPENROUTER
    if isinstance(error, SyntaxError):
        return f"TextArena's module does not parse on this Python: {error.msg}"
    if isinstance(error, AssertionError) and "player" in text.lower():
        return f"needs another player count ({text.strip()[:80]}); interplay plays 1- and 2-player games"
    return f"{type(error).__name__}: {' '.join(text.split())[:100]}"


def probe_game(base: str) -> tuple[int, str]:
    """Try a game here: returns (players, "") when it runs with 1 or 2 players, (0, reason) if not."""
    reason = "runs with neither 1 nor 2 players"
    for players in (1, 2):
        try:
            with _quiet():
                env, _ = _make_ta_env(base)
                env.reset(num_players=players, seed=0)
                if players == 1 and type(env.state).__name__ != "SinglePlayerState":
                    continue  # a multi-player game that tolerates 1 player is not a 1-player game
                for action in ("[0]", "garbage", ""):
                    env.get_observation()
                    if env.step(action)[0]:
                        break
            return players, ""
        except Exception as error:  # any failure means "not playable here"; the reason says which
            reason = _reason(error)
    return 0, reason


def probe_games() -> dict[str, tuple[int, str]]:
    """Probe every TextArena game (about 10 s): base name -> (players, reason if unavailable)."""
    return {base: probe_game(base) for base in textarena_games()}


def _availability() -> tuple[dict[str, int], dict[str, str]]:
    try:
        version = metadata.version("textarena")
    except metadata.PackageNotFoundError:
        return {}, {"*": "textarena is not installed (pip install textarena)"}
    if version == _PROBED_VERSION:
        return {b: p for b, (p, _) in _AVAILABLE.items()}, dict(_UNAVAILABLE)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "interplay"
    path = cache / f"textarena-{version}.json"
    try:
        probed = json.loads(path.read_text())
    except (OSError, ValueError):
        probed = probe_games()
        with contextlib.suppress(OSError):
            cache.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(probed, indent=0))
    available = {b: p for b, (p, reason) in probed.items() if not reason}
    return available, {b: reason for b, (p, reason) in probed.items() if reason}


def register_games() -> None:
    """Register every TextArena game that runs here; list the others with their reason."""
    from interplay.registry import register, register_unavailable

    available, unavailable = _availability()
    for base, players in sorted(available.items()):
        description = _AVAILABLE.get(base, (players, f"TextArena's {base}."))[1]
        if players == 2:
            description += " (vs a built-in or callable opponent)"
        register(
            f"interplay/TextArena-{base}-v0",
            "interplay.envs.textarena:TextArenaEnv",
            f"[TextArena] {description}",
            kwargs={"game": base},
        )
    for base, reason in sorted(unavailable.items()):
        register_unavailable(f"interplay/TextArena-{base}-v0", reason)


# ---- the environment --------------------------------------------------------------------------------
class TextArenaEnv(TextEnv):
    """A TextArena game, seen by one player (the agent).

    Observation: the text the agent's player received since its last turn: TextArena's game
    messages, the opponent's moves as ``[Player k] ...``, and TextArena's own message after an
    invalid move (the agent's own move is not echoed back). The first observation holds the rules.
    Action: the agent's whole reply; TextArena parses it (most games read a ``[bracketed]`` move;
    where TextArena's default variant wraps bare replies in brackets, so does this env).
    Reward: 0 until the end; then 1.0 for a win and 0.0 for a draw or loss (``reward="binary"``), or
    TextArena's own reward for the agent (``reward="textarena"``: +1/0/-1 in 2-player games,
    often a completion fraction in 1-player games). ``info["textarena_reward"]`` always holds it.
    A win is TextArena reward >= 1 in 1-player games, more reward than the opponent in 2-player ones.
    Termination: TextArena says the game is done. Truncation: ``max_turns`` agent turns.
    ``info["outcome"]``: ``"win"``, ``"loss"`` or ``"draw"``, then TextArena's reason where short.

    Invalid moves: ``info["invalid_action"]`` is True when TextArena rejected the reply (detected
    from its "attempted an invalid move" message). By default they never end the game
    (``error_allowance=None``); an integer restores TextArena's rule (with 1, its default, a second
    invalid move in a row loses the game). A reply TextArena raises on counts as invalid.

    Two-player games: the other player is part of the environment. ``opponent=None`` is the
    built-in opponent: it plays a uniformly random move among candidates TextArena accepts
    (tried on a copy of the game; candidates are the bracketed moves the opponent's view mentions,
    plus game-specific generators and small integers). A callable ``opponent(observation) -> str``
    gets the opponent's view in the same format. Opponents keep TextArena's error allowance: one
    that errs twice in a row loses.
    ``player``: the agent's seat (0 moves first); None alternates with the seed (seed % 2).

    Seeding: TextArena draws from Python's global ``random`` (a few games also numpy's); the env
    swaps in its own generator state around every TextArena call, so the same seed and replies
    give the same episode even with many envs in one process.

    Kwargs: ``game`` (TextArena base name, e.g. "TowerOfHanoi"), ``player``, ``opponent``,
    ``reward``, ``error_allowance``, ``max_turns`` (default 100).
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
        available, unavailable = _availability()
        if game not in available:
            why = unavailable.get(game) or f"known games: {', '.join(sorted(available))}"
            raise ValueError(f"TextArena game {game!r} cannot be played here: {why}")
        if player not in (None, 0, 1) or (available[game] == 1 and player == 1):
            raise ValueError(f"player must be None, 0 or 1 (0 only for 1-player games), got {player!r}.")
        if opponent is not None and not callable(opponent):
            raise TypeError(f"opponent must be a callable observation -> reply, got {type(opponent).__name__}.")
        if reward not in ("binary", "textarena"):
            raise ValueError(f"reward must be 'binary' or 'textarena', got {reward!r}.")
        if error_allowance is not None and (not isinstance(error_allowance, int) or error_allowance < 0):
            raise ValueError(f"error_allowance must be None or a non-negative int, got {error_allowance!r}.")
        self.game, self.num_players = game, available[game]
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
        saved_py, saved_np = random.getstate(), np.random.get_state()
        random.setstate(self._py_state)
        np.random.set_state(self._np_state)
        try:
            with _quiet():
                yield
        finally:
            self._py_state, self._np_state = random.getstate(), np.random.get_state()
            random.setstate(saved_py)
            np.random.set_state(saved_np)

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
        self._py_state = random.Random(seed).getstate()
        self._np_state = np.random.RandomState(seed % 2**32).get_state()
        with self._ta_context():
            self._ta, self._bracket_bare = _make_ta_env(self.game)
            self._ta.reset(num_players=self.num_players, seed=seed)
            self._ta_allowance = getattr(self._ta.state, "error_allowance", 1)
        self._outcome, self._seen = "unfinished", {}
        done = self._play_opponent()
        observation = self._drain(self.player)
        self._last_obs = observation
        if done:  # the opponent ended the game before the agent moved (rare)
            self._finished = True
            return observation, self._final_info()
        return observation, {"player": self.player}

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
        expert = _EXPERTS.get(self.game)
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
                    _admin(),
                    to_id=pid,
                )
                return True, bool(state.done)
        new = state.observations[pid][before:]
        invalid = any("attempted an invalid move" in str(text) for _, text, _ in new)
        invalid |= bool(state.game_info.get(pid, {}).get("invalid_move")) and done
        return invalid, bool(done)

    def _allowance(self, pid: int) -> int:
        if pid != self.player:
            return self._ta_allowance
        return _UNLIMITED if self.error_allowance is None else self.error_allowance

    def _play_opponent(self) -> bool:
        """Let the other player move until it is the agent's turn; returns done."""
        state = self._ta.state
        for _ in range(500):  # bounded: opponents lose after repeated invalid moves anyway
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
        """A uniformly random candidate move that TextArena accepts and that does not lose on the
        spot (a legal but losing move if there is no other), each tested on a copy of the game."""
        seen = "\n".join(self._seen.get(pid, []))
        candidates = list(dict.fromkeys(_candidates(self.game, self._ta.state.game_state, pid, seen)))
        order = self.np_random.permutation(len(candidates))
        saved = (self._py_state, self._np_state)
        fallback = candidates[int(order[0])] if candidates else "[0]"
        try:
            for i in order[:80]:
                trial = copy.deepcopy(self._ta)
                with self._ta_context():
                    trial.state.error_allowance = _UNLIMITED
                    before = len(trial.state.observations[pid])
                    try:
                        done, _ = trial.step(candidates[i])
                        rewards = trial.close()[0] if done else None
                    except Exception:
                        continue
                new = trial.state.observations[pid][before:]
                if any("attempted an invalid move" in str(text) for _, text, _ in new):
                    continue
                if rewards and rewards.get(pid, 0) < max(rewards.values()):
                    fallback = candidates[i]  # legal, but it loses at once (or TextArena said so)
                    continue
                return candidates[i]
        finally:
            self._py_state, self._np_state = saved  # trials must not move the game's randomness
        return fallback

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


def _admin() -> Any:
    from textarena.core import ObservationType

    return ObservationType.GAME_ADMIN


# ---- the built-in opponent's candidate moves -------------------------------------------------------
def _candidates(game: str, game_state: Any, pid: int, seen: str) -> list[str]:
    moves = []
    for move in _BRACKETED.findall(seen):  # "[attack M O]" in the rules -> "[attack 0 1]", ...
        holes = re.findall(r"\b[A-Zx]\b", move) if re.search(r"[a-z]{2}", move) else []
        if 0 < len(holes) <= 2:
            # Split at the holes rather than str.format: seen text (the agent's reply) may hold braces.
            parts = re.split(r"\b[A-Zx]\b", move)
            for values in itertools.product(range(14), repeat=len(holes)):
                moves.append(parts[0] + "".join(f"{v}{part}" for v, part in zip(values, parts[1:])))
        else:
            moves.append(move)
    generator = _GENERATORS.get(game)
    if generator is not None:
        with contextlib.suppress(Exception):
            moves = generator(game_state, pid) + moves
    return moves + [f"[{i}]" for i in range(64)] + ["[Accept]", "[Reject]"]


def _nim_moves(game_state: Any, pid: int) -> list[str]:
    return [f"[{i} {q}]" for i, n in enumerate(game_state["piles"]) for q in range(1, n + 1)]


_GENERATORS: dict[str, Callable[[Any, int], list[str]]] = {
    "Nim": _nim_moves,
    "ConnectFour": lambda gs, pid: [f"[col {c}]" for c in range(len(gs["board"][0]))],
    "UltimateTicTacToe": lambda gs, pid: [f"[{b} {r} {c}]" for b in range(9) for r in range(3) for c in range(3)],
    "Battleship": lambda gs, pid: [f"[{chr(65 + r)}{c}]" for r in range(10) for c in range(10)],
    "ColonelBlotto": lambda gs, pid: [f"[A{a} B{b} C{20 - a - b}]" for a in range(21) for b in range(21 - a)],
    "TwoDollar": lambda gs, pid: [f"[Propose] ${x / 4:.2f}" for x in range(9)],
    "NewRecruit": lambda gs, pid: ["[Propose] " + "".join(p) for p in itertools.product("ACE", repeat=8)][::97],
    "Tak": lambda gs, pid: [f"[place () {{({r},{c}): [F{pid}]}}]" for r in range(4) for c in range(4)],
    "WildTicTacToe": lambda gs, pid: [f"[{s} {i}]" for s in "XO" for i in range(9)],
}


# ---- experts: cheap solvers that read the game state ------------------------------------------------
def _hanoi_expert(ta_env: Any, player: int, rng: np.random.Generator) -> str:
    """Optimal next move from any legal position: move the largest misplaced disk to its target,
    after parking every smaller disk on the third tower."""
    towers = ta_env.state.game_state["towers"]
    where = {disk: name for name, disks in towers.items() for disk in disks}
    target = "C"
    for disk in sorted(where, reverse=True):
        if where[disk] == target:
            continue
        source = where[disk]
        spare = ({"A", "B", "C"} - {source, target}).pop()
        smaller = [d for d in where if d < disk]
        if all(where[d] == spare for d in smaller):
            return f"[{source} {target}]"
        target = spare  # first bring the smaller disks to the spare tower
    raise AssertionError("Tower of Hanoi expert called on a solved puzzle")


def _guess_expert(ta_env: Any, player: int, rng: np.random.Generator) -> str:
    """Binary search over the numbers the hints so far allow (uses only what the agent saw)."""
    low, high = ta_env.min_number, ta_env.max_number
    for guess, hint in ta_env.state.game_state["guess_history"]:
        if "higher" in hint:
            low = max(low, guess + 1)
        elif "lower" in hint:
            high = min(high, guess - 1)
    return f"[{(low + high) // 2}]"


def _pegs(code: tuple[int, ...], guess: tuple[int, ...]) -> tuple[int, int]:
    black = sum(c == g for c, g in zip(code, guess))
    common = sum(min(code.count(d), guess.count(d)) for d in set(guess))
    return black, common - black


def _mastermind_expert(ta_env: Any, player: int, rng: np.random.Generator) -> str:
    """Play a random code consistent with every feedback so far (uses only what the agent saw)."""
    game_state = ta_env.state.game_state
    length, numbers = game_state["code_length"], game_state["num_numbers"]
    digits = range(1, numbers + 1)
    codes = (
        itertools.product(digits, repeat=length)
        if game_state["duplicate_numbers"]
        else itertools.permutations(digits, length)
    )
    history = [(tuple(h["guess"]), (h["black"], h["white"])) for h in game_state["history"]]
    consistent = [c for c in codes if all(_pegs(c, g) == fb for g, fb in history)]
    choice = consistent[int(rng.integers(len(consistent)))]
    return "[" + " ".join(map(str, choice)) + "]"


def _nim_expert(ta_env: Any, player: int, rng: np.random.Generator) -> str:
    """Bouton's theorem: move to a position whose nim-sum is 0; from a lost position take one."""
    piles = ta_env.state.game_state["piles"]
    total = 0
    for n in piles:
        total ^= n
    winning = [(i, n - (n ^ total)) for i, n in enumerate(piles) if total and (n ^ total) < n]
    if winning:
        i, q = winning[int(rng.integers(len(winning)))]
        return f"[{i} {q}]"
    nonempty = [i for i, n in enumerate(piles) if n > 0]
    return f"[{nonempty[int(rng.integers(len(nonempty)))]} 1]"


def _rush_hour_expert(ta_env: Any, player: int, rng: np.random.Generator) -> str:
    """Breadth-first search over car positions; the first move of a shortest solution."""
    vehicles = ta_env.state.game_state["vehicles"]
    cars = {vid: (v.row, v.col, v.length, v.horizontal) for vid, v in vehicles.items()}
    names = sorted(cars)
    start = tuple((cars[n][0], cars[n][1]) for n in names)

    def moves(positions: tuple[tuple[int, int], ...]) -> Iterator[tuple[str, tuple[tuple[int, int], ...]]]:
        grid = set()
        for name, (r, c) in zip(names, positions):
            length, horizontal = cars[name][2], cars[name][3]
            grid.update((r + (0 if horizontal else i), c + (i if horizontal else 0)) for i in range(length))
        for k, (name, (r, c)) in enumerate(zip(names, positions)):
            length, horizontal = cars[name][2], cars[name][3]
            for sign, step in (("+", 1), ("-", -1)):
                front = (r, c + (length if step > 0 else -1)) if horizontal else (r + (length if step > 0 else -1), c)
                exits = name == "X" and step > 0 and front == (2, 6)
                if exits or (0 <= front[0] < 6 and 0 <= front[1] < 6 and front not in grid):
                    moved = (r, c + step) if horizontal else (r + step, c)
                    yield f"[{name}{sign}]", positions[:k] + (moved,) + positions[k + 1 :]

    x = names.index("X")
    first: dict[tuple[tuple[int, int], ...], str | None] = {start: None}
    queue = deque([start])
    while queue:
        positions = queue.popleft()
        for move, nxt in moves(positions):
            if nxt in first:
                continue
            first[nxt] = first[positions] or move
            if nxt[x][0] == 2 and nxt[x][1] >= 6 - cars["X"][2]:
                return first[nxt]
            queue.append(nxt)
    raise AssertionError("Rush Hour expert: no solution from this position")


_EXPERTS: dict[str, Callable[[Any, int, np.random.Generator], str]] = {
    "TowerOfHanoi": _hanoi_expert,
    "GuessTheNumber": _guess_expert,
    "Mastermind": _mastermind_expert,
    "Nim": _nim_expert,
    "RushHour": _rush_hour_expert,
}
