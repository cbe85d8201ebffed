"""Matches: two players at a two-player TextArena game, many games at once, each seat recorded as its own episode.

``play_matches(game, pairings, seeds)`` plays one game per pairing ``(seat 0 player, seat 1 player)``; a
player is an ``Agent`` (a model, or any interplay agent) or the name of a fixed opponent (``"random"``,
``"builtin"``, ``"expert"``: ``interplay.envs.textarena.duel``). Each round asks every live game for the
seat to move; fixed opponents answer at once, and each agent-played seat is asked in its own session of the
agent (``agent.start(1)``: a model keeps the seat's KV cache, so a turn costs its new tokens only, and a seat's
turns need not line up with other games'; the seats are asked one after another, not in one batch). The same
agent object may sit in both seats of a game (self-play): each seat is still its own chat and session.

Each agent-played seat (every seat, given ``encoder``) becomes a ``Trajectory`` (``Match.trajectories[seat]``) exactly as ``interplay.rollout``
records one: its chat (its observations: the other seat's moves and TextArena's messages, as environment
turns), ``prompt_ids``, ``completion_ids`` with ``agent_mask`` 1 on the seat's own sampled ids and 0 on
everything else, ``logprobs``, ``reply_starts``; one reward, at the seat's last move (``RewardRules``).
The ids are the ones the model was fed and sampled, as
in ``interplay.rollout`` (never re-tokenized text). Each manifest's ``match`` holds both seats' players, the
game's every move and each seat's result, which the viewer shows (``interplay view``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from interplay.agents.base import Agent, Reply, as_reply
from interplay.envs.textarena.duel import FIXED_OPPONENTS, MAX_PLIES, Duel, RewardRules, SeatResult, env_game
from interplay.jsonable import jsonable
from interplay.rollout import Trajectory

#: A seat's player: an agent, or a fixed opponent's name.
Player = Agent | str


def player_name(player: Player) -> str:
    return player if isinstance(player, str) else str(getattr(player, "name", type(player).__name__))


@dataclass
class Match:
    """One finished game: its seed, both players' names, each seat's result and reward, the agent seats' episodes."""

    game: str
    seed: int
    players: tuple[str, str]
    results: tuple[SeatResult, SeatResult]
    rewards: tuple[float, float]
    plies: int
    moves: list[dict[str, Any]]
    trajectories: dict[int, Trajectory] = field(default_factory=dict)


class _Seat:
    """One agent-played seat's session, chat and token record."""

    def __init__(self, player: Player) -> None:
        self.session = None if isinstance(player, str) else player.start(1)
        self.messages: list[dict[str, Any]] = []
        self.prompt_ids: list[int] = []
        self.completion_ids: list[int] = []
        self.agent_mask: list[int] = []
        self.logprobs: list[float] = []
        self.reply_starts: list[int] = []
        self.infos: list[dict[str, Any]] = [{}]
        self.invalid = 0
        self.new: list[dict[str, Any]] = []

    def observe(self, text: str) -> None:
        message = {"role": "user", "content": text}
        self.new.append(message)
        self.messages.append(message)

    def reply(self) -> Reply:
        reply = as_reply(self.session.act({0: self.new}).get(0))
        self.new = []
        self.messages.append({"role": "assistant", "content": reply.text})
        return reply

    def text_reply(self, text: str, encoder: Any) -> Reply:
        """A fixed opponent's move, with ids made from its text as a model's session would feed them."""
        self.messages.append({"role": "assistant", "content": text})
        first = not self.reply_starts
        last = self.completion_ids[self.reply_starts[-1]:] if not first else []
        context = encoder.prompt(self.new) if first else encoder.close(last) + encoder.delta(self.new, None)
        self.new = []
        return Reply(text, encoder.reply_ids(text), None, context)

    def record(self, reply: Reply, invalid: bool) -> None:
        self.infos.append({"invalid_action": invalid})
        self.invalid += invalid
        if reply.token_ids is None:  # a text agent: no ids
            return
        context = list(reply.context_ids or [])
        if not self.reply_starts:
            self.prompt_ids = context
        else:
            self.completion_ids += context
            self.agent_mask += [0] * len(context)
            self.logprobs += [0.0] * len(context)
        self.reply_starts.append(len(self.completion_ids))
        self.completion_ids += list(reply.token_ids)
        self.agent_mask += list(reply.token_mask) if reply.token_mask is not None else [1] * len(reply.token_ids)
        self.logprobs += list(reply.logprobs) if reply.logprobs is not None else [0.0] * len(reply.token_ids)

    def close(self) -> None:
        if self.session is not None:
            self.session.drop([0])
            self.session.close()


def _check_player(player: Any, game: str) -> None:
    if isinstance(player, str):
        if player not in FIXED_OPPONENTS:
            raise ValueError(f"unknown fixed opponent {player!r}; fixed opponents: {', '.join(FIXED_OPPONENTS)} "
                             "(or pass an Agent).")
    elif not isinstance(player, Agent):
        raise TypeError(f"a player is an interplay Agent or a fixed opponent's name, got {type(player).__name__}.")


def play_matches(game: str, pairings: Sequence[tuple[Player, Player]], seeds: Sequence[int], *,
                 rules: RewardRules | None = None, error_allowance: int | None = 1, max_plies: int = MAX_PLIES,
                 labels: Sequence[tuple[str, str]] | None = None, encoder: Any = None) -> list[Match]:
    """Play one game of ``game`` (``interplay/TextArena-<Game>-v0`` or a base name) per pairing, from the seed
    of the same index; see the module docstring. ``labels``: the players' names to record (default: theirs).
    ``encoder``: a ``ChatEncoder``; the fixed opponents' seats are then recorded too, their moves' ids made from
    its chat template (data to imitate them, e.g. a format warm-up on random legal moves)."""
    base = env_game(game)
    if len(pairings) != len(seeds):
        raise ValueError(f"got {len(pairings)} pairings for {len(seeds)} seeds; give one seed per game.")
    for pair in pairings:
        if len(pair) != 2:
            raise ValueError(f"a pairing is (seat 0 player, seat 1 player), got {pair!r:.80}.")
        for player in pair:
            _check_player(player, base)
    rules = rules or RewardRules()
    duels = [Duel(base, error_allowance=error_allowance, max_plies=max_plies).start(int(s)) for s in seeds]
    seats: dict[tuple[int, int], _Seat] = {(g, s): _Seat(pair[s]) for g, pair in enumerate(pairings)
                                           for s in (0, 1) if encoder is not None or not isinstance(pair[s], str)}
    live = list(range(len(duels)))
    while live:
        for g in live:
            duel = duels[g]
            seat = duel.to_move
            player, text = pairings[g][seat], duel.observe(seat)
            row = seats.get((g, seat))
            if row is not None:
                row.observe(text)
            if isinstance(player, str):
                move = duel.fixed_move(seat, player)
                if row is None:
                    duel.act(seat, move)
                else:
                    row.record(row.text_reply(move, encoder), duel.act(seat, move))
                continue
            reply = row.reply()
            row.record(reply, duel.act(seat, reply.text))
        live = [g for g in live if not duels[g].done]
    for row in seats.values():
        row.close()
    return [_match(base, g, duels[g], pairings[g], int(seeds[g]), seats, rules,
                   labels[g] if labels is not None else None, encoder) for g in range(len(duels))]


def _match(base: str, g: int, duel: Duel, pair: tuple[Player, Player], seed: int, seats: dict[tuple[int, int], _Seat],
           rules: RewardRules, label: tuple[str, str] | None, encoder: Any = None) -> Match:
    results = duel.results()
    names = tuple(label) if label is not None else (player_name(pair[0]), player_name(pair[1]))
    rewards = (rules.reward(results[0]), rules.reward(results[1]))
    match = Match(base, seed, names, results, rewards, duel.plies, list(duel.moves))
    record = {"players": list(names), "moves": match.moves,
              "results": [{"outcome": r.outcome, "reason": r.reason} for r in results], "rewards": list(rewards)}
    for s in (0, 1):
        seat = seats.get((g, s))
        if seat is not None:
            match.trajectories[s] = _trajectory(base, duel, seed, s, seat, pair[s], results[s], rewards[s], record,
                                                encoder)
    return match


def _trajectory(base: str, duel: Duel, seed: int, s: int, seat: _Seat, player: Player, result: SeatResult,
                reward: float, record: dict[str, Any], encoder: Any) -> Trajectory:
    final = duel.observe(s)
    seat.messages.append({"role": "user", "content": f"{final}\nGame over: {result.outcome} ({result.reason})".strip()})
    turns = sum(m["role"] == "assistant" for m in seat.messages)
    encoder = encoder if isinstance(player, str) else player.encoder
    prompt = seat.prompt_ids
    if encoder is not None and not prompt:  # the seat never moved: its observations as the prompt, no completion
        prompt = encoder.prompt(seat.messages)
    seat.infos[-1] = {**seat.infos[-1], "success": result.outcome == "win", "outcome": result.outcome}
    env_id = f"interplay/TextArena-{base}-v0"
    return Trajectory(
        env_id=env_id, env_kwargs={}, seed=seed, messages=seat.messages, prompt_ids=prompt,
        completion_ids=seat.completion_ids, agent_mask=seat.agent_mask, logprobs=seat.logprobs,
        rewards=[0.0] * (turns - 1) + [reward] if turns else [], reward=reward if turns else 0.0,
        success=result.outcome == "win", outcome=f"{result.outcome}: {result.reason}", turns=turns,
        invalid_actions=seat.invalid, terminated=result.reason != "timeout", truncated=result.reason == "timeout",
        infos=jsonable(seat.infos), group=0,
        manifest={"env_id": env_id, "env_kwargs": {}, "seed": seed, "seat": s, "agent": player_name(player),
                  "agent_class": "fixed" if isinstance(player, str) else type(player).__name__,
                  "match": jsonable(record), "sampling": {} if isinstance(player, str) else jsonable(player.sampling_params())},
        reply_starts=list(seat.reply_starts) if encoder is not None else None,
    )


__all__ = ["Match", "Player", "play_matches", "player_name"]
