"""Self-play and two-player game evaluation: reward rules, matches, ratings, a self-play step (tiny model, CPU)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from test_viewer import _dump  # the headless-Chromium page check (skips where there is no Chromium)
from trl import GRPOConfig

from interplay.agents import HFAgent
from interplay.cli import main
from interplay.envs.textarena.duel import Duel, RewardRules, SeatResult, env_game, fixed_opponents
from interplay.games import bradley_terry, evaluate_game, format_ratings, format_wdl, wdl
from interplay.matches import play_matches
from interplay.training.selfplay import (
    SelfPlayConfig,
    build_selfplay_trainer,
    parse_pool,
    role_advantages,
    selfplay_defaults,
)
from interplay.viewer import episode_view, render_html, write_html

TTT = "interplay/TextArena-TicTacToe-v0"


def play(duel: Duel, moves: list[str]) -> Duel:
    for move in moves:
        duel.observe(duel.to_move)
        duel.act(duel.to_move, move)
    return duel


# ---- reward rules -------------------------------------------------------------------------------------------
def test_a_win_and_a_draw_by_the_rules():
    won = play(Duel("TicTacToe").start(0), ["[0]", "[3]", "[1]", "[4]", "[2]"])
    assert won.done and won.results() == (SeatResult("win", "game"), SeatResult("loss", "game"))
    drawn = play(Duel("TicTacToe").start(0), ["[4]", "[0]", "[8]", "[2]", "[1]", "[7]", "[6]", "[3]", "[5]"])
    assert drawn.results() == (SeatResult("draw", "game"), SeatResult("draw", "game"))
    rules = RewardRules(draw=0.25)
    assert [rules.reward(r) for r in won.results()] == [1.0, -1.0]
    assert [rules.reward(r) for r in drawn.results()] == [0.25, 0.25]


def test_illegal_moves_lose_after_the_error_allowance():
    duel = Duel("TicTacToe", error_allowance=1).start(0)
    assert play(duel, ["[4]", "no move"]).done is False  # one rejected move is allowed, the seat moves again
    assert duel.to_move == 1 and duel.moves[-1] == {"seat": 1, "move": "no move", "invalid": True}
    play(duel, ["[4]"])  # the occupied centre: rejected again, in a row
    assert duel.done and duel.forfeit == 1
    assert duel.results() == (SeatResult("win", "illegal"), SeatResult("loss", "illegal"))
    rules = RewardRules(illegal=-2.0)
    assert [rules.reward(r) for r in duel.results()] == [1.0, -2.0]
    strict = play(Duel("TicTacToe", error_allowance=0).start(0), ["x"])
    assert strict.done and strict.results()[0] == SeatResult("loss", "illegal")


def test_a_game_cut_at_max_plies_is_a_timeout_draw():
    duel = play(Duel("TicTacToe", error_allowance=None, max_plies=3).start(0), ["x", "y", "z"])
    assert duel.done and duel.cut and duel.to_move is None
    assert duel.results() == (SeatResult("draw", "timeout"), SeatResult("draw", "timeout"))
    assert [RewardRules(timeout=-0.5).reward(r) for r in duel.results()] == [-0.5, -0.5]
    with pytest.raises(RuntimeError, match="not seat"):
        duel.act(0, "[1]")


def test_games_must_be_two_player_textarena_games():
    assert env_game(TTT) == "TicTacToe"
    with pytest.raises(ValueError, match="two-player"):
        env_game("interplay/TextArena-TowerOfHanoi-v0")
    with pytest.raises(ValueError, match="not a TextArena game"):
        env_game("interplay/Maze-v0")
    assert fixed_opponents("Nim") == ["random", "builtin", "expert"]
    assert fixed_opponents("TicTacToe") == ["random", "builtin"]


# ---- matches: each seat its own episode -----------------------------------------------------------------------
def test_self_play_records_each_seat_with_only_its_own_tokens_as_agent_tokens():
    # One token a reply, and rejected moves retried without end: the untrained model gets both seats moving.
    agent = HFAgent("tiny", max_new_tokens=1, seed=0)
    tokenizer = agent.tokenizer
    matches = play_matches("TicTacToe", [(agent, agent)] * 3, list(range(3)), error_allowance=None, max_plies=30)
    both = 0
    for match in matches:
        assert set(match.trajectories) == {0, 1} and match.rewards[0] == -match.rewards[1]
        for seat, t in match.trajectories.items():
            mine = [m for m in match.moves if m["seat"] == seat]
            assert t.turns == len(mine) == sum(m["role"] == "assistant" for m in t.messages)
            assert len(t.completion_ids) == len(t.agent_mask) == len(t.logprobs)
            agent_ids = [i for i, bit in zip(t.completion_ids, t.agent_mask) if bit]
            # The agent tokens are exactly this seat's replies, in order; none of the other seat's.
            assert tokenizer.decode(agent_ids, skip_special_tokens=True) == "".join(m["move"] for m in mine)
            assert len(agent_ids) == t.turns and all(t.agent_mask[s] for s in t.reply_starts)
            env_text = tokenizer.decode([i for i, bit in zip(t.completion_ids, t.agent_mask) if not bit])
            others = [m for m in match.moves[:-1] if m["seat"] != seat and not m["invalid"]]
            assert env_text.count(f"[Player {1 - seat}]") >= len(others) - 1
            assert t.rewards == ([0.0] * (t.turns - 1) + [match.rewards[seat]] if t.turns else [])
            assert t.manifest["seat"] == seat and t.manifest["match"]["players"] == list(match.players)
        both += all(t.turns for t in match.trajectories.values())
    assert both  # some games gave both seats a move


@pytest.mark.parametrize("game", ["ConnectFour", "Nim", "KuhnPoker"])
def test_other_games_play_to_the_end_in_self_play(game):
    agent = HFAgent("tiny", max_new_tokens=4, seed=0)
    [match] = play_matches(game, [(agent, agent)], [0], max_plies=40)
    assert {r.reason for r in match.results} <= {"game", "illegal", "timeout"} and len(match.trajectories) == 2


def test_fixed_opponents_play_legal_moves_and_the_expert_wins_nim():
    matches = play_matches("Nim", [("expert", "random")] * 3 + [("builtin", "random")] * 3, list(range(6)))
    assert all(not m["invalid"] for match in matches for m in match.moves)
    assert [m.results[0].outcome for m in matches[:3]] == ["win"] * 3


# ---- evaluation and ratings ------------------------------------------------------------------------------------
def test_evaluation_against_fixed_opponents_is_deterministic_for_a_seed():
    def run():
        return evaluate_game(TTT, HFAgent("tiny", max_new_tokens=1, seed=7), ["random", "builtin"], 3)

    first, second = run(), run()
    assert first == second
    row = first["opponents"]["random"]
    assert row["first"]["n"] == row["second"]["n"] == 3 and row["all"]["n"] == 6
    assert row["all"]["win"] + row["all"]["draw"] + row["all"]["loss"] == 6
    assert "second" in format_wdl(first)
    fixed = [evaluate_game(TTT, "random", ["builtin"], 4, seed_start=10**6 + 5) for _ in range(2)]
    assert fixed[0] == fixed[1]


def test_wdl_counts_with_wilson_intervals():
    table = wdl([("win", "game")] * 3 + [("draw", "timeout"), ("loss", "illegal")])
    assert (table["win"], table["draw"], table["loss"], table["n"]) == (3, 1, 1, 5)
    assert table["illegal_losses"] == 1 and table["timeouts"] == 1
    rate, low, high = table["win_rate"]
    assert rate == 0.6 and low == pytest.approx(0.2307, abs=1e-3) and high == pytest.approx(0.8824, abs=1e-3)


def test_bradley_terry_on_hand_made_results():
    # A beats B 3 of 4; with the pair's virtual draw, A scores 3.5 of 5: P(A beats B) = 0.7.
    games = [("A", "B", 1.0)] * 3 + [("B", "A", 1.0)]
    ratings = bradley_terry(games, ["A", "B"], bootstrap=50)
    gap = 400 * math.log10(0.7 / 0.3)
    assert ratings["A"]["rating"] == pytest.approx(gap / 2, abs=1e-3)
    assert ratings["B"]["rating"] == pytest.approx(-gap / 2, abs=1e-3)
    assert ratings["A"]["games"] == 4 and ratings["A"]["score"] == 0.75
    assert ratings["A"]["low"] <= ratings["A"]["rating"] <= ratings["A"]["high"]
    # Draws count half; an even record rates level; a transitive triple keeps its order.
    assert bradley_terry([("A", "B", 0.5)] * 4, bootstrap=0)["A"]["rating"] == pytest.approx(0.0, abs=1e-9)
    triple = [("A", "B", 1.0)] * 5 + [("B", "C", 1.0)] * 5 + [("A", "C", 1.0)] * 5
    r = bradley_terry(triple, bootstrap=0)
    assert r["A"]["rating"] > r["B"]["rating"] > r["C"]["rating"]
    assert sum(v["rating"] for v in r.values()) == pytest.approx(0.0, abs=1e-6)
    assert "rating" in format_ratings(r)
    with pytest.raises(ValueError, match="score"):
        bradley_terry([("A", "B", 2.0)])


# ---- self-play training ----------------------------------------------------------------------------------------
def test_role_conditioned_advantages_keep_a_running_baseline_per_role():
    baselines: dict = {}
    first = role_advantages([1.0, -1.0, 1.0, -1.0], [0, 1, 0, 1], baselines, decay=0.9, game="G")
    assert first == [0.0, 0.0, 0.0, 0.0] and baselines == {("G", 0): 1.0, ("G", 1): -1.0}
    second = role_advantages([-1.0, 1.0], [0, 1], baselines, decay=0.9, game="G")
    assert baselines[("G", 0)] == pytest.approx(0.9 - 0.1) and baselines[("G", 1)] == pytest.approx(-0.8)
    assert second == pytest.approx([-1.8, 1.8])


def test_pool_and_config_errors_are_actionable():
    assert parse_pool("self:2,past,random:1", "TicTacToe") == {"self": 0.5, "past": 0.25, "random": 0.25}
    assert parse_pool("model=runs/a:1,self", "TicTacToe") == {"model=runs/a": 0.5, "self": 0.5}
    with pytest.raises(ValueError, match="unknown 'expert'"):
        parse_pool("self,expert", "TicTacToe")
    assert "expert" in parse_pool("self,expert", "Nim")
    with pytest.raises(ValueError, match="two-player"):
        SelfPlayConfig(env="interplay/TextArena-TowerOfHanoi-v0")
    with pytest.raises(ValueError, match="baseline_decay"):
        SelfPlayConfig(baseline_decay=1.0)


def test_a_self_play_step_masks_and_credits_the_two_seats_apart(tmp_path):
    config = SelfPlayConfig(max_new_tokens=2, eval_games=0, error_allowance=2, baseline_decay=0.5)
    args = GRPOConfig(output_dir=str(tmp_path), **selfplay_defaults(
        max_steps=1, per_device_train_batch_size=8, save_strategy="no", disable_tqdm=True, logging_steps=1))
    trainer = build_selfplay_trainer(config, args)
    seen: dict = {}
    rollout, score = trainer.rollout_func, trainer._generate_and_score_completions

    def spy_rollout(prompts, tr):
        seen["prompts"], seen["out"] = prompts, rollout(prompts, tr)
        return seen["out"]

    def spy_score(inputs):
        seen["scored"] = score(inputs)
        return seen["scored"]

    trainer.rollout_func, trainer._generate_and_score_completions = spy_rollout, spy_score
    trainer.train()
    out = seen["out"]
    assert seen["prompts"][0] == seen["prompts"][1] and seen["prompts"][0].startswith(TTT + " seed=")
    assert out["role"] == [0, 1] * 4
    assert out["opponent"] == ["self"] * 8
    rewards, roles = np.array(out["reward"]), np.array(out["role"])
    assert np.all(rewards[0::2] == -rewards[1::2])  # the two seats of one game: zero-sum
    for ids, mask, logprobs in zip(out["completion_ids"], out["env_mask"], out["logprobs"]):
        assert len(ids) == len(mask) == len(logprobs)
        assert all(lp == 0.0 for lp, bit in zip(logprobs, mask) if not bit)
    # RAE: each seat's episodes against their own role's baseline (the first batch's mean), one value per row.
    expected = [r - rewards[roles == role].mean() for r, role in zip(rewards, roles)]
    advantages = seen["scored"]["advantages"].cpu().numpy()
    assert advantages.shape == (8,) and np.allclose(advantages, expected)
    logged = [e for e in trainer.state.log_history if "loss" in e][0]
    assert "selfplay/baseline_seat0" in logged and "selfplay/win_rate_vs_self" in logged


def test_cli_selfplay_trains_and_eval_prints_win_draw_loss_by_seat(tmp_path, capsys):
    out = tmp_path / "sp"
    assert main(["train", "selfplay", "--env", TTT, "--max-new-tokens", "1", "--eval-games", "2", "--opponents",
                 "self,random", "--output-dir", str(out), "--max-steps", "1", "--per-device-train-batch-size", "4",
                 "--save-strategy", "no", "--disable-tqdm", "true"]) == 0
    printed = capsys.readouterr().out
    assert "saved" in printed and "first" in printed and "second" in printed
    assert main(["eval", "--env", TTT, "--models", "tiny", str(out), "-n", "2", "--max-new-tokens", "1",
                 "--opponents", "random,builtin", "--out", str(tmp_path / "eval.json")]) == 0
    printed = capsys.readouterr().out
    for word in ("random", "builtin", "first", "second", "Bradley-Terry", "[random]"):
        assert word in printed
    assert main(["train", "selfplay", "--env", "interplay/TextArena-TowerOfHanoi-v0", "--output-dir",
                 str(tmp_path / "x")]) == 2
    assert "two-player" in capsys.readouterr().err


def test_the_viewer_shows_both_seats_of_a_game(tmp_path):

    agent = HFAgent("tiny", max_new_tokens=1, seed=0)
    [match] = play_matches("TicTacToe", [(agent, "builtin")], [0], error_allowance=None, max_plies=30)
    view = episode_view(0, match.trajectories[0])
    assert view["seat"] == 0 and view["match"]["players"] == ["tiny", "builtin"]
    assert [m["move"] for m in view["match"]["moves"]] == [m["move"] for m in match.moves]
    assert {m["seat"] for m in view["match"]["moves"]} == {0, 1}
    page = render_html([match.trajectories[0]])
    assert "the game, both seats" in page and "matchBox" in page
    # Rendered in a browser (where there is one): the opened episode shows both seats and every move.
    url = write_html(tmp_path / "game.html", [match.trajectories[0]]).resolve().as_uri()
    dom, _ = _dump(tmp_path, f"{url}#open=0")
    assert "the game, both seats (this episode: seat 0)" in dom and "seat 1 (second): builtin" in dom
    assert len(re.findall(r"\d+\. seat 0 \(this episode\): ", dom)) == sum(m["seat"] == 0 for m in match.moves)
    assert len(re.findall(r"\d+\. seat 1: ", dom)) == sum(m["seat"] == 1 for m in match.moves)


def test_fixed_seats_are_recorded_with_an_encoder_for_imitation():
    from interplay import models
    from interplay.agents.chat import ChatEncoder
    from interplay.training.imitation import sequence_rows

    tokenizer = models.load_tokenizer("tiny")
    matches = play_matches("TicTacToe", [("random", "builtin")] * 2, [0, 1], encoder=ChatEncoder(tokenizer))
    for match in matches:
        for seat, t in match.trajectories.items():
            agent = tokenizer.decode([i for i, bit in zip(t.completion_ids, t.agent_mask) if bit])
            assert agent == "".join(m["move"] + "<|end|>" for m in match.moves if m["seat"] == seat)
            assert t.manifest["agent"] == match.players[seat] and t.manifest["agent_class"] == "fixed"
    assert len(sequence_rows([t for m in matches for t in m.trajectories.values()])) == 4


def test_a_past_snapshot_keeps_its_weights_when_the_policy_moves(tmp_path):
    import torch

    from interplay.training.opponent_pool import OpponentPool

    config = SelfPlayConfig(max_new_tokens=2, eval_games=0, opponents="self:0.5,past:0.5")
    args = GRPOConfig(output_dir=str(tmp_path), **selfplay_defaults(
        max_steps=1, per_device_train_batch_size=8, save_strategy="no", disable_tqdm=True))
    trainer = build_selfplay_trainer(config, args)
    pool = OpponentPool(config)
    pool.refresh(0, trainer.model, lambda model: HFAgent(model, trainer.processing_class, max_new_tokens=2))
    snapshot = pool.snapshots[0][1].model
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        before = snapshot(input_ids=ids).logits.clone()
        for parameter in trainer.model.parameters():
            parameter.add_(0.1)
        assert torch.equal(snapshot(input_ids=ids).logits, before)
        assert not torch.allclose(trainer.model(input_ids=ids).logits, before)
