"""Evaluating players of two-player games: win/draw/loss by seat against fixed opponents, and ratings.

- ``evaluate_game(game, agent, opponents, n)``: ``n`` games per seat against each fixed opponent (``"random"``,
  ``"builtin"``, ``"expert"`` where the game has one; ``interplay.envs.textarena.duel``), on held-out seeds
  (``interplay.seeds.EVAL_SEED_START`` on). Per opponent and seat (``first``: the agent moves first, seat 0;
  ``second``; ``all``): counts of wins, draws and losses, each rate with Wilson's 95% interval
  (``interplay.metrics.proportion_interval``), and how many games ended by illegal moves or a timeout.
  The same seeds and the same seeded agent give the same table (fixed opponents draw from each game's seed).
- ``round_robin(game, players, n)`` + ``bradley_terry(games, names)``: every pair plays ``n`` games in each
  seat order; a Bradley-Terry model (Bradley & Terry, 1952; a draw counts half a win for each side, and
  each pair gets one virtual draw so that a player that wins every game keeps a finite rating) is fitted by
  Hunter's MM iterations and reported on the Elo scale (400 log10 of the strength; the mean rating is 0),
  with a 95% percentile interval from resampling the games (bootstrap, seeded).

``interplay eval --env interplay/TextArena-<Game>-v0 --model M`` prints the first table; with ``--models A B
...`` (checkpoints, say) also the rating table of the models and the fixed opponents playing each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interplay.envs.textarena.duel import MAX_PLIES, RewardRules, env_game, fixed_opponents
from interplay.matches import Player, play_matches, player_name
from interplay.metrics import proportion_interval
from interplay.seeds import EVAL_SEED_START

SEATS = ("first", "second")
#: Bootstrap resamples of the rating intervals.
RATING_BOOTSTRAP = 200


def wdl(outcomes: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Counts and rates (Wilson 95% intervals, ``[rate, low, high]``) of ``(outcome, reason)`` pairs of one player."""
    n = len(outcomes)
    out: dict[str, Any] = {"n": n}
    for kind in ("win", "draw", "loss"):
        count = sum(o == kind for o, _ in outcomes)
        out[kind] = count
        if n:
            ci = proportion_interval(count, n)
            out[f"{kind}_rate"] = [ci.mean, ci.low, ci.high]
    out["illegal_losses"] = sum(o == "loss" and r == "illegal" for o, r in outcomes)
    out["timeouts"] = sum(r == "timeout" for _, r in outcomes)
    return out


def evaluate_game(game: str, agent: Player, opponents: Sequence[str] | None = None, n: int = 100, *,
                  seed_start: int = EVAL_SEED_START, error_allowance: int | None = 1, max_plies: int = MAX_PLIES,
                  rules: RewardRules | None = None) -> dict[str, Any]:
    """Win/draw/loss of ``agent`` against each fixed opponent, ``n`` games per seat (see the module docstring)."""
    base = env_game(game)
    opponents = list(opponents) if opponents else fixed_opponents(base)
    known = fixed_opponents(base)
    for opponent in opponents:
        if opponent not in known:
            raise ValueError(f"{base} has no fixed opponent {opponent!r}; it has {', '.join(known)}.")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n (games per seat and opponent) must be a positive integer, got {n!r}.")
    seeds = [seed_start + i for i in range(n)]
    pairings: list[tuple[Player, Player]] = []
    for opponent in opponents:
        pairings += [(agent, opponent)] * n + [(opponent, agent)] * n
    matches = play_matches(base, pairings, seeds * (2 * len(opponents)), rules=rules,
                           error_allowance=error_allowance, max_plies=max_plies)
    table: dict[str, Any] = {}
    for k, opponent in enumerate(opponents):
        block = matches[2 * n * k: 2 * n * (k + 1)]
        by_seat = {seat: [(m.results[s].outcome, m.results[s].reason) for m in block[s * n:(s + 1) * n]]
                   for s, seat in enumerate(SEATS)}
        table[opponent] = {**{seat: wdl(by_seat[seat]) for seat in SEATS},
                           "all": wdl(by_seat["first"] + by_seat["second"])}
    return {"env": f"interplay/TextArena-{base}-v0", "model": player_name(agent), "games_per_seat": n,
            "seed_start": seed_start, "error_allowance": error_allowance, "max_plies": max_plies,
            "opponents": table}


def format_wdl(result: Mapping[str, Any]) -> str:
    """``evaluate_game``'s result as a text table."""
    lines = [f"{result['env']} {result['model']}: win / draw / loss by seat, {result['games_per_seat']} games per "
             "seat and opponent, 95% Wilson intervals",
             f"{'opponent':<10} {'seat':<7} {'n':>4}  {'win':<21} {'draw':<21} {'loss':<21} illegal-losses timeouts"]
    for opponent, rows in result["opponents"].items():
        for seat in (*SEATS, "all"):
            row = rows[seat]
            cells = ["{:.2f} [{:.2f}, {:.2f}]".format(*row[f"{k}_rate"]) for k in ("win", "draw", "loss")]
            lines.append(f"{opponent:<10} {seat:<7} {row['n']:>4}  {cells[0]:<21} {cells[1]:<21} {cells[2]:<21} "
                         f"{row['illegal_losses']:>14} {row['timeouts']:>8}")
    return "\n".join(lines)


def round_robin(game: str, players: Mapping[str, Player], n: int = 20, *, seed_start: int = EVAL_SEED_START,
                error_allowance: int | None = 1, max_plies: int = MAX_PLIES) -> list[tuple[str, str, float]]:
    """Every pair of ``players`` (name -> agent or fixed opponent) plays ``n`` games in each seat order; returns
    ``(first player, second player, first player's score)`` per game, score 1 win, 0.5 draw, 0 loss."""
    names = list(players)
    if len(names) < 2:
        raise ValueError(f"a rating needs at least two players, got {names}.")
    pairings, labels = [], []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for first, second in ((a, b), (b, a)):
                pairings += [(players[first], players[second])] * n
                labels += [(first, second)] * n
    seeds = [seed_start + i % n for i in range(len(pairings))]
    matches = play_matches(env_game(game), pairings, seeds, error_allowance=error_allowance, max_plies=max_plies,
                           labels=labels)
    score = {"win": 1.0, "draw": 0.5, "loss": 0.0}
    return [(m.players[0], m.players[1], score[m.results[0].outcome]) for m in matches]


def _fit(names: Sequence[str], games: Sequence[tuple[str, str, float]], iterations: int = 500) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    k = len(names)
    wins = np.zeros((k, k))  # wins[i, j]: i's score against j
    for a, b, s in games:
        wins[index[a], index[b]] += s
        wins[index[b], index[a]] += 1.0 - s
    wins += 0.5 * (1 - np.eye(k))  # one virtual draw per pair
    played = wins + wins.T
    strength = np.ones(k)
    for _ in range(iterations):
        new = wins.sum(1) / (played / (strength[:, None] + strength[None, :])).sum(1)
        new /= np.exp(np.log(new).mean())
        if np.allclose(new, strength, rtol=1e-10, atol=1e-12):
            break
        strength = new
    ratings = 400.0 * np.log10(strength)
    return ratings - ratings.mean()


def bradley_terry(games: Sequence[tuple[str, str, float]], names: Sequence[str] | None = None,
                  bootstrap: int = RATING_BOOTSTRAP, seed: int = 0) -> dict[str, dict[str, float]]:
    """Bradley-Terry ratings on the Elo scale with bootstrap 95% intervals: ``name -> {"rating", "low", "high",
    "games", "score"}`` (see the module docstring); ``games`` as ``round_robin`` returns them."""
    names = list(names) if names is not None else list(dict.fromkeys(n for a, b, _ in games for n in (a, b)))
    for a, b, s in games:
        if a not in names or b not in names or not 0.0 <= s <= 1.0:
            raise ValueError(f"a game is (player, player, score in [0, 1]) between players of {names}, got {(a, b, s)}.")
    ratings = _fit(names, games)
    rng = np.random.default_rng(seed)
    samples = np.array([_fit(names, [games[i] for i in rng.integers(0, len(games), len(games))])
                        for _ in range(bootstrap)]) if games and bootstrap else np.zeros((0, len(names)))
    out = {}
    for i, name in enumerate(names):
        mine = [s if a == name else 1.0 - s for a, b, s in games if name in (a, b)]
        low, high = np.quantile(samples[:, i], [0.025, 0.975]) if len(samples) else (np.nan, np.nan)
        out[name] = {"rating": float(ratings[i]), "low": float(low), "high": float(high), "games": len(mine),
                     "score": float(np.mean(mine)) if mine else float("nan")}
    return out


def format_ratings(ratings: Mapping[str, Mapping[str, float]]) -> str:
    lines = ["Bradley-Terry ratings (Elo scale, mean 0), 95% bootstrap intervals",
             f"{'player':<40} {'rating':>7}  {'interval':<17} {'games':>5} {'score':>6}"]
    for name, r in sorted(ratings.items(), key=lambda item: -item[1]["rating"]):
        lines.append(f"{name[-40:]:<40} {r['rating']:>7.0f}  [{r['low']:>6.0f}, {r['high']:>6.0f}] {r['games']:>5} "
                     f"{r['score']:>6.2f}")
    return "\n".join(lines)


def eval_command(args: Any, make_agent: Any) -> int:
    """``interplay eval`` on a two-player game: ``make_agent(name)`` builds each model's agent."""
    import json
    from pathlib import Path

    names = args.models or [args.model]
    if len(set(names)) != len(names):
        raise ValueError(f"--models lists a model twice: {names}; give each checkpoint once.")
    if args.coverage or args.plots or args.samples != 1:
        raise ValueError("--coverage, --plots and --samples are for one-player tasks; on a two-player game -n is the "
                         "number of games per seat and opponent.")
    opponents = args.opponents.split(",") if args.opponents else None
    max_plies = MAX_PLIES if args.max_plies is None else args.max_plies
    agents = {name: make_agent(name) for name in names}
    results: dict[str, Any] = {"models": {}}
    for name, agent in agents.items():
        result = evaluate_game(args.env, agent, opponents, args.n, seed_start=args.seed_start,
                               error_allowance=args.error_allowance, max_plies=max_plies)
        result["model"] = name
        results["models"][name] = result
        print(format_wdl(result))
    if len(names) > 1:
        players: dict[str, Player] = {**agents, **{f"[{o}]": o for o in (opponents or fixed_opponents(args.env))}}
        games = round_robin(args.env, players, args.n, seed_start=args.seed_start,
                            error_allowance=args.error_allowance, max_plies=max_plies)
        results["ratings"] = bradley_terry(games, list(players))
        print(format_ratings(results["ratings"]))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


def is_two_player_game(env_id: str) -> bool:
    """Whether ``env_id`` names a two-player TextArena game (``interplay eval`` then plays matches)."""
    try:
        env_game(env_id)
    except ValueError:
        return False
    return True


__all__ = ["bradley_terry", "evaluate_game", "format_ratings", "format_wdl", "is_two_player_game", "round_robin",
           "wdl"]
