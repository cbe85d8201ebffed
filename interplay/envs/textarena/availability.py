"""Which TextArena games can be played here, and why the others cannot.

Where the installed TextArena is the version the records in games.py were measured with (and
Python is older than 3.12, which some of TextArena's modules need), the records answer. Elsewhere a
game is probed the first time it is made, once per process; ``probe_games()`` probes them all.
Nothing here runs at ``import interplay``, and nothing is written to disk.
"""

from __future__ import annotations

import sys
from importlib import metadata

from interplay.envs.textarena import arena
from interplay.envs.textarena.games import GAMES, NEEDS_NLTK, NEEDS_OPENROUTER, PROBED_VERSION

NOT_INSTALLED = "textarena is not installed (pip install textarena)"

_probed: dict[str, tuple[int, str]] = {}  # games probed in this process: base name -> (players, reason)


def installed_version() -> str | None:
    try:
        return metadata.version("textarena")
    except metadata.PackageNotFoundError:
        return None


def records_apply() -> bool:
    """Whether the records in games.py describe this installation."""
    return installed_version() == PROBED_VERSION and sys.version_info < (3, 12)


def playable(game: str) -> tuple[int, str]:
    """``(players, "")`` when ``game`` can be played here, ``(0, reason)`` when it cannot."""
    if installed_version() is None:
        return 0, NOT_INSTALLED
    if not records_apply():
        if game not in _probed:
            _probed[game] = probe_game(game)
        return _probed[game]
    record = GAMES.get(game)
    if record is None:
        known = sorted(base for base, g in GAMES.items() if not g.unavailable)
        return 0, f"known games: {', '.join(known)}"
    return record.players, record.unavailable


def probe_game(base: str) -> tuple[int, str]:
    """Try a game here: returns (players, "") when it runs with 1 or 2 players, (0, reason) if not."""
    if base not in arena.textarena_games():
        return 0, f"TextArena {installed_version()} has no game {base!r}"
    reason = "runs with neither 1 nor 2 players"
    for players in (1, 2):
        try:
            with arena.quiet():
                env, _ = arena.make_game(base)
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
    """Probe every game in TextArena's registry (seconds): base name -> (players, reason if unavailable).
    The results also answer ``playable`` for the rest of the process."""
    probed = {base: probe_game(base) for base in arena.textarena_games()}
    _probed.update(probed)
    return probed


def _reason(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, LookupError) and "nltk" in text.lower():
        return NEEDS_NLTK
    if "OpenRouter" in text:
        return NEEDS_OPENROUTER
    if isinstance(error, SyntaxError):
        return f"TextArena's module does not parse on this Python: {error.msg}"
    if isinstance(error, AssertionError) and "player" in text.lower():
        return f"needs another player count ({text.strip()[:80]}); interplay plays 1- and 2-player games"
    return f"{type(error).__name__}: {' '.join(text.split())[:100]}"
