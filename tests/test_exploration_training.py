"""Exploration shapers and the critique loss inside real multi-turn GRPO runs (tiny model, CPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from trl import GRPOConfig, GRPOTrainer

from interplay import make
from interplay.cli import _exploration_value
from interplay.envs.teachers import SelfCritique
from interplay.scoring import teacher_forced
from interplay.seeds import task_key
from interplay.training.exploration import ExplorationConfig, GroupInfo, apply_shapers, build_shapers
from interplay.training.grpo import (
    GRPOTrainingConfig,
    build_grpo_trainer,
    grpo_defaults,
    make_rollout_func,
    train_grpo,
)
from interplay.training.grpo_reward import REWARD_STATE_FILE

CODE = "interplay/CodeBreaker-v0"
MATH = "interplay/MathFeedback-v0"
# digits=1: any lone digit in a reply is a guess, so even the untrained model gets the teacher's hints.
CODE_KWARGS = {"digits": 1, "max_attempts": 3}
FAST_GRPO = {"max_steps": 2, "per_device_train_batch_size": 8, "num_generations": 4, "logging_steps": 1,
             "save_strategy": "no", "disable_tqdm": True}


def _config(**overrides):
    return GRPOTrainingConfig(**{"env": CODE, "env_kwargs": CODE_KWARGS, "model": "tiny", "max_new_tokens": 6,
                                 "eval_episodes": 2, **overrides})


def _batch(env, seeds, g=4):
    return [{"prompt": task_key(env, s)} for s in seeds for _ in range(g)]


@pytest.mark.parametrize("spec, metric", [
    ("outcome_count:0.1", "explore/outcome_count"),
    ("batch_diversity:0.1", "explore/batch_diversity"),
    ("repexp:0.01", "explore/repexp"),
    ("pkpo:k=2", "explore/pkpo"),
])
def test_grpo_run_with_each_exploration_method_logs_its_bonus(tmp_path, spec, metric):
    args = GRPOConfig(output_dir=str(tmp_path), **grpo_defaults(**FAST_GRPO))
    result = train_grpo(_config(exploration=spec), args)
    logged = [e for e in result.log_history if "loss" in e]
    assert [e["step"] for e in logged] == [1, 2]
    assert all(metric in e and math.isfinite(e[metric]) for e in logged)
    if metric == "explore/batch_diversity":  # a penalty: never positive
        assert all(e[metric] <= 0 for e in logged)
    if metric == "explore/outcome_count":  # UCB-Con: 0.1 · (min(1, 1/sqrt(N)) − 0.5)
        assert all(-0.05 <= e[metric] <= 0.05 for e in logged)


def test_grpo_run_with_critique_loss_logs_its_nll(tmp_path):
    args = GRPOConfig(output_dir=str(tmp_path), **grpo_defaults(**FAST_GRPO))
    result = train_grpo(_config(critique_weight=0.5), args)
    logged = [e for e in result.log_history if "loss" in e]
    assert [e["step"] for e in logged] == [1, 2]
    assert all(e["critique/nll"] > 0 and math.isfinite(e["critique/nll"]) for e in logged)


def test_repexp_gets_hidden_vectors_of_the_models_width(tmp_path):
    config = _config(exploration="repexp")
    trainer, _ = build_grpo_trainer(config, GRPOConfig(output_dir=str(tmp_path), **grpo_defaults(**FAST_GRPO)))
    prompts = [task_key(CODE, 3)] * 4
    model = trainer.model.train()  # as during training, where TRL reads model.training
    out = make_rollout_func(config)(prompts, trainer)
    assert np.asarray(out["hidden"]).shape == (4, model.config.hidden_size)
    # Batched and right-padded, each vector is the mean over that episode's agent tokens alone.
    for i in range(4):
        ids = torch.tensor([out["prompt_ids"][i] + out["completion_ids"][i]])
        with torch.no_grad():
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
        agent = torch.tensor([0] * len(out["prompt_ids"][i]) + out["env_mask"][i], dtype=torch.bool)
        assert np.allclose(out["hidden"][i], hidden[agent].mean(0).numpy(), atol=1e-5)
    assert model.training  # the extra forward restores the mode TRL reads
    alone = teacher_forced(model, out["prompt_ids"][:1], out["completion_ids"][:1], out["env_mask"][:1], hidden=True)
    assert np.allclose(alone.hidden, out["hidden"][:1], atol=1e-5)


@pytest.mark.parametrize("representation", ["start", "policy"])
def test_repexp_reads_a_frozen_copy_of_the_start_unless_asked_for_the_policy(tmp_path, representation):
    from interplay.models import load

    config = _config(exploration=ExplorationConfig(methods=["repexp"],
                                                   params={"repexp": {"representation": representation}}))
    trainer, _ = build_grpo_trainer(config, GRPOConfig(output_dir=str(tmp_path), **grpo_defaults(**FAST_GRPO)))
    rollout_func = make_rollout_func(config)
    prompts = [task_key(CODE, 3)] * 4
    start, _ = load(config.model)
    with torch.no_grad():  # an update moves the policy
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    out = rollout_func(prompts, trainer)

    def scored(model):
        return teacher_forced(model, out["prompt_ids"], out["completion_ids"], out["env_mask"], hidden=True).hidden

    reader, other = (start, trainer.model) if representation == "start" else (trainer.model, start)
    assert np.allclose(out["hidden"], scored(reader), atol=1e-5)
    assert not np.allclose(out["hidden"], scored(other), atol=1e-3)


def test_trl_trains_on_the_shaped_rewards(tmp_path):
    exploration = ExplorationConfig(methods=["pkpo", "outcome_count", "batch_diversity"],
                                    weights={"outcome_count": 0.3, "batch_diversity": 0.2}, params={"pkpo": {"k": 2}})
    config = _config(exploration=exploration)
    trainer, _ = build_grpo_trainer(config, GRPOConfig(output_dir=str(tmp_path), **grpo_defaults(**FAST_GRPO)))
    seen = {}
    reward_func = trainer.reward_funcs[0]

    def recording(**kwargs):  # the real EpisodeReward, its inputs and outputs kept for the check
        seen.update(kwargs, shaped=reward_func(**kwargs))
        return seen["shaped"]

    recording.__name__ = reward_func.__name__
    recording.take_advantage_terms = reward_func.take_advantage_terms
    trainer.reward_funcs[0] = recording
    output = trainer._generate_and_score_completions(_batch(CODE, [11, 12]))
    # The same groups through apply_shapers with fresh shapers: the rewards TRL got, and the outcome-based
    # bonuses, which go onto the advantages after GRPO's normalization (Song et al.'s Â_i + c·b_i).
    shapers, expected, bonus = build_shapers(exploration), [], []
    for start in (0, 4):
        rows = slice(start, start + 4)
        info = GroupInfo(task_key=seen["task"][start], outcomes=seen["outcome"][rows],
                         successes=seen["success"][rows], step=0)
        shaped, parts = apply_shapers(seen["reward"][rows], info, shapers, return_components=True)
        expected += list(shaped)
        bonus += list(parts["advantage"])
    assert seen["shaped"] == pytest.approx(expected)
    assert any(b != 0 for b in bonus)  # a group is never both all-distinct (UCB-Con 0.5 each) and bonus-free
    rewards = torch.tensor(expected, dtype=torch.float32).view(2, 4)
    advantages = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)
    advantages = torch.nan_to_num(advantages.flatten(), nan=0.0) + torch.tensor(bonus, dtype=torch.float32)
    assert torch.allclose(output["advantages"], advantages, atol=1e-4)
    assert reward_func.take_advantage_terms() is None  # taken once, by the trainer


@pytest.mark.parametrize("env, kwargs", [(CODE, CODE_KWARGS), (MATH, {})])
def test_critique_loss_is_the_nll_of_the_teachers_feedback(tmp_path, env, kwargs):
    config = _config(env=env, env_kwargs=kwargs, critique_weight=1.0, max_new_tokens=8)
    trainer, _ = build_grpo_trainer(config, GRPOConfig(output_dir=str(tmp_path), **grpo_defaults(**FAST_GRPO)))
    trainer.model.train()  # as in training: the rollout and the loss read model.training
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's training loop
    inputs = trainer._generate_and_score_completions(_batch(env, [21, 22]))
    mask = inputs["critique_mask"]
    assert mask.shape == inputs["completion_ids"].shape and mask.sum() > 0
    # The marked tokens spell the teacher's feedback, never the agent's replies or the template.
    tokenizer = trainer.processing_class
    assert not (mask.bool() & inputs["tool_mask"].bool()).any()
    marked = tokenizer.decode(inputs["completion_ids"][mask.bool()].tolist())
    assert "<|" not in marked and "attempt" not in marked
    if env == CODE:
        assert set(marked) <= set("+-")  # 1-digit hints: higher or lower

    plain = GRPOTrainer.compute_loss(trainer, trainer.model, inputs)
    with_critique = trainer.compute_loss(trainer.model, inputs)
    nll = trainer._metrics["train"]["critique/nll"][-1]
    assert 0 < nll < 50 and math.isfinite(nll)
    assert with_critique.item() == pytest.approx(plain.item() + nll, rel=1e-5, abs=1e-6)
    with_critique.backward()  # the auxiliary term carries a gradient
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainer.model.parameters())
    trainer.critique_weight = 0.0
    assert trainer.compute_loss(trainer.model, inputs).item() == plain.item()


def test_self_critique_teacher_asks_for_a_critique_and_reads_the_last_answer():
    env = make(MATH, teacher="self", max_attempts=3)
    env.reset(seed=5)
    wrong = "0" if env.unwrapped.task.answer != "0" else "1"
    obs, reward, terminated, _, info = env.step(f"\\boxed{{{wrong}}}")
    assert obs.startswith(SelfCritique.prompt) and "(2 attempts left)" in obs
    assert reward == 0 and not terminated and info["teacher_feedback"] == ""
    answer = env.unwrapped.task.answer
    reply = f"My answer {wrong} was wrong: I added instead of multiplying. \\boxed{{{answer}}}"
    obs, reward, terminated, _, info = env.step(reply)
    assert info["extracted_answer"] == answer and info["correct"] and terminated and reward == 1.0

    code = make(CODE, teacher="self", digits=3)
    code.reset(seed=1)
    secret = code.unwrapped.task.answer
    guess = "000" if secret != "000" else "111"
    obs, *_ = code.step(guess)
    assert obs.startswith(SelfCritique.prompt)
    *_, info = code.step(f"{guess} was wrong, the hints were not used. New guess: {secret}")
    assert info["extracted_answer"] == secret and info["success"]

    rule = make(CODE, digits=3)
    rule.reset(seed=1)
    obs, *_, info = rule.step(guess)
    assert info["teacher_feedback"] and obs.startswith(info["teacher_feedback"])


def test_exploration_short_form_on_the_command_line():
    config = _exploration_value("outcome_count:0.2, pkpo:k=4:k_end=1:anneal_steps=10,repexp:0.05:lam=0.1")
    assert config.methods == ["outcome_count", "pkpo", "repexp"]
    assert config.weights == {"outcome_count": 0.2, "repexp": 0.05}
    assert config.params == {"pkpo": {"k": 4, "k_end": 1, "anneal_steps": 10}, "repexp": {"lam": 0.1}}
    assert _exploration_value('{"methods": ["pkpo"]}') == {"methods": ["pkpo"]}
    assert GRPOTrainingConfig(exploration="batch_diversity").exploration.methods == ["batch_diversity"]
    for bad, message in (("outcome_cnt", "unknown exploration method"), ("pkpo:0.1", "transform"),
                         ("pkpo:kk=2", "unknown parameters"), ("outcome_count:much", "neither a weight")):
        with pytest.raises(Exception, match=message):
            _exploration_value(bad)
    with pytest.raises(ValueError, match="critique_weight"):
        GRPOTrainingConfig(critique_weight=-1.0)


def test_a_resumed_run_continues_the_outcome_counts(tmp_path, monkeypatch):
    import copy

    from transformers import TrainerCallback

    from interplay.training import grpo

    made = []  # every EpisodeReward built, to read its outcome counts during training
    build = grpo.EpisodeReward.__init__

    def recording(self, *args, **kwargs):
        build(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(grpo.EpisodeReward, "__init__", recording)
    counts: dict[str, dict[int, dict]] = {"first": {}, "resumed": {}}

    class Snapshot(TrainerCallback):
        def __init__(self, run):
            self.run = run

        def on_train_begin(self, args, state, control, **kwargs):
            counts[self.run]["begin"] = copy.deepcopy(made[-1].shapers[0].counts)

        def on_save(self, args, state, control, **kwargs):
            counts[self.run][state.global_step] = copy.deepcopy(made[-1].shapers[0].counts)

    config = _config(exploration="outcome_count:0.1")
    steps = {**FAST_GRPO, "save_strategy": "steps", "save_steps": 1, "save_total_limit": None}
    train_grpo(config, GRPOConfig(output_dir=str(tmp_path), **grpo_defaults(**steps)), callbacks=[Snapshot("first")])
    first = counts["first"]
    saved = tmp_path / "checkpoint-1" / REWARD_STATE_FILE.format(rank=0)
    assert saved.exists() and first[1] and first[2] != first[1]

    def total(table):
        return sum(n for outcomes in table.values() for n in outcomes.values())

    per_step = FAST_GRPO["per_device_train_batch_size"]
    assert total(first[1]) == per_step and total(first[2]) == 2 * per_step
    # Resumed after step 1: the counts are step 1's, and step 2 adds one step's episodes to them.
    train_grpo(config, GRPOConfig(output_dir=str(tmp_path), **grpo_defaults(**steps)),
               resume=str(tmp_path / "checkpoint-1"), callbacks=[Snapshot("resumed")])
    resumed = counts["resumed"]
    assert resumed["begin"] == first[1]
    assert total(resumed[2]) == total(first[2]) == 2 * per_step
    assert all(resumed[2][task][outcome] >= n for task, outcomes in first[1].items() for outcome, n in outcomes.items())
    # A checkpoint without the state (an older one) is refused rather than silently restarting the counts.
    saved.unlink()
    with pytest.raises(ValueError, match="no reward-shaper state"):
        train_grpo(config, GRPOConfig(output_dir=str(tmp_path), **grpo_defaults(**steps)),
                   resume=str(tmp_path / "checkpoint-1"))
