"""TextArena games as interplay environments: ``interplay/TextArena-<Game>-v0``.

TextArena (Guertler et al., 2025, "TextArena") ships ~100 text games with a protocol of its own.
One canonical variant per game: TextArena's ``<Game>-v0`` with its default kwargs, without
TextArena's observation wrappers (interplay shows only what is new since the agent's last turn,
not the whole history every turn). Games that cannot run here (NLTK downloads, OpenRouter API
keys, f-strings that need Python 3.12, three or more players, missing data files) are listed by
``interplay.list_envs(include_unavailable=True)`` with the reason, not registered.

The package, module by job:

- ``games``: one record per game (players, description, expert, opponent moves, or why it cannot
  be played);
- ``availability``: which games run here (the records, or a probe where they do not apply);
- ``env``: ``TextArenaEnv``, the adapter from TextArena's protocol to Gymnasium's;
- ``opponent``: the built-in opponent of two-player games; ``experts``: solvers behind
  ``expert_action()``; ``arena``: TextArena itself, imported only when a game is made or probed;
- ``duel``: a two-player game with both seats played from outside (self-play, ``interplay.matches``),
  its reward rules (win, loss, draw, illegal moves, timeout) and the fixed opponents.

``register_games()`` (run at ``import interplay``) reads only the records: it imports no TextArena
code, probes no game and writes nothing.
"""

from __future__ import annotations

from interplay.envs.textarena.arena import textarena_games
from interplay.envs.textarena.availability import (
    NOT_INSTALLED,
    installed_version,
    playable,
    probe_game,
    probe_games,
    records_apply,
)
from interplay.envs.textarena.env import MAX_REPLY_CHARS, TextArenaEnv
from interplay.envs.textarena.games import GAMES, PROBED_VERSION, Game

__all__ = [
    "GAMES",
    "MAX_REPLY_CHARS",
    "PROBED_VERSION",
    "Game",
    "TextArenaEnv",
    "playable",
    "probe_game",
    "probe_games",
    "register_games",
    "textarena_games",
]


def register_games() -> None:
    """Register every recorded TextArena game that runs here; list the others with their reason.

    Reads only the records: imports no TextArena code, probes no game. Where the records were
    measured with another TextArena or Python (``records_apply()`` is False), the recorded games are
    registered and each is probed when first made (``TextArenaEnv`` then says why one cannot run);
    ``probe_games()`` measures every game of the installed TextArena, and ``TextArenaEnv(game=...)``
    plays one without a record.
    """
    from interplay.registry import register, register_unavailable

    if installed_version() is None:
        register_unavailable("interplay/TextArena-*-v0", NOT_INSTALLED)
        return
    note = "" if records_apply() else f" (measured with TextArena {PROBED_VERSION} on Python < 3.12)"
    for base, game in sorted(GAMES.items()):
        if game.unavailable:
            register_unavailable(f"interplay/TextArena-{base}-v0", game.unavailable + note)
            continue
        description = game.description
        if game.players == 2:
            description += " (vs a built-in or callable opponent)"
        register(
            f"interplay/TextArena-{base}-v0",
            "interplay.envs.textarena:TextArenaEnv",
            f"[TextArena] {description}",
            kwargs={"game": base},
        )
