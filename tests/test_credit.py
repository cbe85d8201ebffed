"""Turn-level credit (interplay.training.credit): each rule on hand-computed groups, the per-token advantages
TRL's loss gets, the maze's dense reward, and short GRPO runs with each credit (tiny model, CPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from trl import GRPOConfig

from interplay.envs.maze import MazeEnv
from interplay.seeds import task_key
from interplay.training.credit import (
    anchor_step_advantages,
    discounted_returns,
    rebn_advantages,
    turn_of_tokens,
)
from interplay.training.grpo import GRPOTrainingConfig, build_grpo_trainer, grpo_defaults, train_grpo
from interplay.training.grpo_reward import AdvantageTerms, EpisodeReward
from interplay.training.grpo_rollout import make_rollout_func
from interplay.training.grpo_trainer import apply_advantage_terms

MAZE = "interplay/Maze-4x4-v0"
FAST_GRPO = {"max_steps": 2, "per_device_train_batch_size": 8, "num_generations": 4, "logging_steps": 1,
             "save_strategy": "no", "disable_tqdm": True}

# A hand-made group "g" of two episodes and one more episode in group "h", gamma = 0.5:
#   episode 0: states A B C, rewards 0 0 1 -> G = 0.25 0.5 1
#   episode 1: states A B B, rewards 0 0 0 -> G = 0    0   0
#   episode 2: state  A,     reward  1     -> G = 1   (group h: A there is not A of group g)
REWARDS = [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0]]
ANCHORS = [["A", "B", "C"], ["A", "B", "B"], ["A"]]
GROUPS = ["g", "g", "h"]


def test_discounted_returns_to_go():
    assert discounted_returns([0.0, 0.0, 1.0], 0.5).tolist() == [0.25, 0.5, 1.0]
    assert discounted_returns([1.0, -1.0, 2.0], 1.0).tolist() == [2.0, 1.0, 2.0]
    assert discounted_returns([], 0.9).tolist() == []


def test_rebn_normalizes_the_returns_over_every_turn_of_the_batch():
    # G = 0.25 0.5 1 | 0 0 0 | 1: mean 2.75/7, unbiased std over the 7 turns.
    flat = np.array([0.25, 0.5, 1.0, 0.0, 0.0, 0.0, 1.0])
    mean, std = flat.mean(), math.sqrt(((flat - flat.mean()) ** 2).sum() / 6)
    got = rebn_advantages(REWARDS, 0.5, eps=0.0)
    assert [len(a) for a in got] == [3, 3, 1]
    assert np.concatenate(got) == pytest.approx((flat - mean) / std)
    # A two-turn hand example: G = 0.5 1 | 0 0 0 -> mean 0.3, std sqrt(0.8 / 4) = sqrt(0.2).
    got = rebn_advantages([[0.0, 1.0], [0.0, 0.0, 0.0]], 0.5, eps=0.0)
    s = math.sqrt(0.2)
    assert got[0] == pytest.approx([0.2 / s, 0.7 / s]) and got[1] == pytest.approx([-0.3 / s] * 3)


def test_gigpo_step_advantages_compare_turns_from_the_same_state_within_a_group():
    got = anchor_step_advantages(REWARDS, ANCHORS, GROUPS, 0.5, eps=0.0)
    # Step group (g, A): G 0.25 and 0 -> mean 0.125, std sqrt(2 * 0.125^2 / 1) = 0.1768: +-1/sqrt(2).
    # Step group (g, B): G 0.5, 0, 0 (B twice in episode 1) -> mean 1/6, std sqrt((1/9 + 2/36) / 2) = sqrt(1/12).
    # (g, C) and (h, A) hold one turn each: A^S = 0.
    b = math.sqrt(1 / 12)
    assert got[0] == pytest.approx([1 / math.sqrt(2), (1 / 3) / b, 0.0])
    assert got[1] == pytest.approx([-1 / math.sqrt(2), (-1 / 6) / b, (-1 / 6) / b])
    assert got[2] == pytest.approx([0.0])
    # Without the std (scale_rewards="none"; GiGPO's mean_norm): the return minus the step group's mean.
    plain = anchor_step_advantages(REWARDS, ANCHORS, GROUPS, 0.5, scale=False)
    assert plain[0] == pytest.approx([0.125, 1 / 3, 0.0]) and plain[1] == pytest.approx([-0.125, -1 / 6, -1 / 6])
    with pytest.raises(ValueError, match="anchor states"):
        anchor_step_advantages(REWARDS, [["A"], ["A"], ["A"]], GROUPS, 0.5)


def test_episode_reward_hands_the_trainer_each_credits_terms():
    kwargs = dict(prompts=["p"] * 3, completions=[""] * 3, reward=[1.0, 0.0, 1.0], success=[True, False, True],
                  outcome=["x", "y", "x"], turns=[3, 3, 1], invalid_actions=[0, 0, 0], task=GROUPS,
                  turn_rewards=REWARDS, anchors=ANCHORS)
    logged = {}
    episode = EpisodeReward()
    assert episode(**kwargs) == [1.0, 0.0, 1.0] and episode.take_advantage_terms() is None

    anchor = EpisodeReward(credit="anchor", turn_discount=0.5, anchor_weight=0.5)
    assert anchor(**kwargs, log_metric=logged.__setitem__) == [1.0, 0.0, 1.0]  # rewards for A^E unchanged
    terms = anchor.take_advantage_terms()
    expected = anchor_step_advantages(REWARDS, ANCHORS, GROUPS, 0.5)
    assert terms.keep_episode and terms.bonus is None
    for got, want in zip(terms.turns, expected):
        assert got == pytest.approx(0.5 * want)  # omega * A^S
    assert anchor.take_advantage_terms() is None  # taken once
    # Step groups (g,A) 2, (g,B) 3, (g,C) 1, (h,A) 1: 7 turns, 5 of them in shared groups.
    assert logged["credit/step_group_size"] == pytest.approx(7 / 4)
    assert logged["credit/frac_turns_grouped"] == pytest.approx(5 / 7)

    rebn = EpisodeReward(credit="return", turn_discount=0.5)
    rebn(**kwargs)
    terms = rebn.take_advantage_terms()
    assert not terms.keep_episode
    for got, want in zip(terms.turns, rebn_advantages(REWARDS, 0.5)):
        assert got == pytest.approx(want)
    with pytest.raises(ValueError, match="turn_rewards"):
        EpisodeReward(credit="return")(**{**kwargs, "turn_rewards": None})


def test_per_token_advantages_are_each_turns_through_the_token_to_turn_map():
    episode_adv = torch.tensor([1.0, -1.0])
    turns = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]
    index = [[0, 0, 1, 1, 2], [0, 1, 2]]
    # GiGPO: A^E_i + omega A^S_t on each token of turn t; 0 past the episode (padding, out of the loss).
    got = apply_advantage_terms(episode_adv, AdvantageTerms(turns=turns), index, width=6)
    assert got.shape == (2, 6)
    assert got.tolist()[0] == pytest.approx([1.1, 1.1, 1.2, 1.2, 1.3, 0.0])
    assert got.tolist()[1][:3] == pytest.approx([-0.6, -0.5, -0.4])
    # ReBN: the turn's value alone; a bonus goes onto every token of its episode.
    got = apply_advantage_terms(episode_adv, AdvantageTerms(turns=turns, keep_episode=False, bonus=[0.01, 0.0]),
                                index, width=4)
    assert got.tolist()[0] == pytest.approx([0.11, 0.11, 0.21, 0.21])
    assert got.tolist()[1] == pytest.approx([0.4, 0.5, 0.6, 0.0])
    # Episode credit with a bonus stays one advantage per episode.
    assert apply_advantage_terms(episode_adv, AdvantageTerms(bonus=[0.5, 0.5])).tolist() == [1.5, -0.5]
    assert turn_of_tokens([0, 3, 7], 9) == [0, 0, 0, 1, 1, 1, 1, 2, 2]


def test_maze_dense_reward_pays_progress_toward_the_goal():
    env = MazeEnv(size=5, dense_reward=True)
    _, info = env.reset(seed=3)
    d = info["shortest_path"]
    rewards = []
    while True:
        _, reward, terminated, truncated, step = env.step(env.expert_action())
        rewards.append(reward)
        if terminated or truncated:
            break
    assert step["success"] and len(rewards) == d
    assert rewards[:-1] == pytest.approx([1 / d] * (d - 1)) and rewards[-1] == pytest.approx(1.0 + 1 / d)
    # A move away from the goal costs what a move toward it earns; a bump or an unreadable reply earns 0.
    env.reset(seed=3)
    toward = env.expert_action()
    back = {"u": "d", "d": "u", "l": "r", "r": "l"}[toward]
    assert env.step(toward)[1] == pytest.approx(1 / d) and env.step(back)[1] == pytest.approx(-1 / d)
    assert env.step("no idea")[1] == 0.0
    plain = MazeEnv(size=5)
    plain.reset(seed=3)
    assert plain.step(plain.expert_action())[1] == 0.0  # off by default
    with pytest.raises(ValueError, match="dense_reward"):
        MazeEnv(dense_reward=1)


def test_credit_config_is_checked():
    with pytest.raises(ValueError, match="credit must be one of"):
        GRPOTrainingConfig(credit="turn")
    with pytest.raises(ValueError, match="turn_discount"):
        GRPOTrainingConfig(credit="return", turn_discount=0.0)
    with pytest.raises(ValueError, match="exploration"):
        GRPOTrainingConfig(credit="return", exploration="outcome_count")
    assert GRPOTrainingConfig(credit="anchor", exploration="outcome_count").credit == "anchor"


@pytest.mark.parametrize("credit", ["anchor", "return"])
def test_trl_gets_per_token_advantages_of_each_turn(tmp_path, credit):
    config = GRPOTrainingConfig(model="tiny", max_turns=3, max_new_tokens=3, eval_episodes=2, credit=credit,
                                turn_discount=0.9, env_kwargs={"dense_reward": True})
    trainer, _ = build_grpo_trainer(config, GRPOConfig(output_dir=str(tmp_path), **grpo_defaults(**FAST_GRPO)))
    rollout_func = make_rollout_func(config)
    seen = {}

    def recording(prompts, trainer):  # the real rollout, its fields kept for the check
        seen.update(rollout_func(prompts, trainer))
        return seen

    trainer.rollout_func = recording
    batch = [{"prompt": task_key(MAZE, s)} for s in (5, 6) for _ in range(4)]
    output = trainer._generate_and_score_completions(batch)
    advantages, width = output["advantages"], output["completion_ids"].size(1)
    assert advantages.shape == (8, width)
    # The turns: as many as the episode's replies, each agent run inside one turn, in order.
    for i in range(8):
        index, mask = seen["turn_index"][i], seen["env_mask"][i]
        assert len(index) == len(seen["completion_ids"][i]) and index == sorted(index)
        assert sorted({t for t, bit in zip(index, mask) if bit}) == list(range(seen["turns"][i]))
    # Each token's advantage, from the rollout's fields by hand: GRPO's group advantage (+ omega A^S), or ReBN.
    rewards = torch.tensor(seen["reward"]).view(2, 4)
    episode = ((rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)).flatten()
    if credit == "anchor":
        turns = anchor_step_advantages(seen["turn_rewards"], seen["anchors"], seen["task"], 0.9)
    else:
        turns = rebn_advantages(seen["turn_rewards"], 0.9)
    for i in range(8):
        index = seen["turn_index"][i]
        want = [turns[i][t] + (float(episode[i]) if credit == "anchor" else 0.0) for t in index]
        assert advantages[i, :len(index)].tolist() == pytest.approx(want, abs=1e-4)
        assert (advantages[i, len(index):] == 0).all()
    # TRL's loss takes [batch, length] advantages token by token: constant rows give the [batch] loss.
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    rows = torch.linspace(-1.0, 1.0, 8)
    with torch.no_grad():
        per_row = trainer.compute_loss(trainer.model, {**output, "advantages": rows})
        per_token = trainer.compute_loss(trainer.model, {**output, "advantages": rows[:, None].expand(8, width)})
        turned = trainer.compute_loss(trainer.model, output)
    assert torch.allclose(per_row, per_token) and math.isfinite(turned.item())


@pytest.mark.parametrize("credit", ["anchor", "return"])
def test_short_grpo_run_with_turn_level_credit_completes(tmp_path, credit):
    config = GRPOTrainingConfig(model="tiny", max_turns=3, max_new_tokens=3, eval_episodes=2, credit=credit,
                                env_kwargs={"dense_reward": True})
    result = train_grpo(config, GRPOConfig(output_dir=str(tmp_path), **grpo_defaults(**FAST_GRPO)))
    logged = [e for e in result.log_history if "loss" in e]
    assert [e["step"] for e in logged] == [1, 2] and all(math.isfinite(e["loss"]) for e in logged)
    if credit == "anchor":
        assert all(e["credit/step_group_size"] >= 1 for e in logged)


def test_credit_flags_on_the_command_line(tmp_path, monkeypatch):
    import interplay.training.grpo as grpo
    from interplay.cli import main

    captured = {}
    monkeypatch.setattr(grpo, "train_grpo", lambda config, args, resume=None, **kwargs: captured.update(config=config)
                        or grpo.GRPOResult(args.output_dir, [], [], 0.0))
    assert main(["train", "grpo", "--model", "tiny", "--output-dir", str(tmp_path), "--max-steps", "1",
                 "--credit", "anchor", "--turn-discount", "0.9", "--anchor-weight", "0.5",
                 "--env-kwargs", '{"dense_reward": true}']) == 0
    config = captured["config"]
    assert (config.credit, config.turn_discount, config.anchor_weight) == ("anchor", 0.9, 0.5)
    assert config.env_kwargs == {"dense_reward": True}
