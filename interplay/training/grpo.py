"""Multi-turn outcome-based RL: TRL's ``GRPOTrainer`` with a ``rollout_func`` that plays whole episodes.

GRPO (Shao et al. 2024, "DeepSeekMath"): for G episodes from one initial state, the advantage of
episode i is ``(R_i - mean(R)) / std(R)``; TRL computes it and the clipped policy-gradient loss.
interplay adds the episodes:

- The prompt dataset holds one row per task, its key ``"<env id> seed=<seed>"`` (``interplay.seeds.task_key``);
  TRL repeats each prompt ``num_generations`` times, so the G episodes of a group reset with the same seed.
- ``rollout_func(prompts, trainer)`` plays them with the trainer's live model (an ``HFAgent`` over
  it, no copy, KV-cached turns, never ``model.eval()``), or with ``use_vllm`` through TRL's own vLLM
  generation (a ``VLLMAgent``: each turn's token ids in, sampled ids and log-probs out), and returns ``prompt_ids``, ``completion_ids``
  (agent replies and environment turns concatenated, ending in eos), ``logprobs`` (sampled; 0.0 on
  environment tokens), ``env_mask`` (1 agent, 0 environment: TRL multiplies it into the loss mask), and
  per episode ``reward`` (``sum_t discount^t r_t``), ``success``, ``outcome``, ``turns``,
  ``invalid_actions`` and ``task`` (env id + seed) for the reward function.
- ``EpisodeReward`` is the one place where episode rewards become the rewards TRL sees: grouped by
  task, shaped by ``interplay.training.exploration`` when ``GRPOTrainingConfig.exploration`` is set,
  and logged (success rate, mean turns, invalid-action rate, fraction of groups whose rewards are all
  equal, distinct outcomes per group, and ``explore/<name>``: each shaper's mean change of the
  reward, or of the advantage for the outcome-based bonuses, which ``CritiqueGRPOTrainer`` adds to
  GRPO's normalized advantages as Song et al. do) into the trainer's metrics. With a ``repexp`` shaper the rollout also returns ``hidden``:
  per episode the mean last-layer hidden state over its agent tokens (one extra no-grad forward).
- Turn-level credit (``GRPOTrainingConfig.credit``: ``"return"``, ReBN; ``"anchor"``, GiGPO; see
  ``interplay.training.credit``): the rollout also returns per episode ``turn_rewards``, ``anchors`` (the
  observation each turn replied to) and ``turn_index`` (per completion token, its turn); ``EpisodeReward``
  computes per-turn advantages with the episode rewards, and ``CritiqueGRPOTrainer`` turns GRPO's advantages
  into per-token ones ([batch, completion length]) through ``turn_index`` (``apply_advantage_terms``).
- Critique prediction (``GRPOTrainingConfig.critique_weight > 0``): the rollout returns
  ``critique_mask`` (1 on the environment tokens that spell a teacher's feedback, ``info
  ["teacher_feedback"]`` of feedback environments; the chat-template tokens around it and the
  "(n attempts left)" note are 0), and ``CritiqueGRPOTrainer`` adds ``critique_weight`` × the mean
  NLL of those tokens to the GRPO loss, so the student also learns to say what its teacher would
  say about its attempt (learning from natural-language feedback by predicting the critique, in
  the spirit of critique fine-tuning). Logged as ``critique/nll``.

Resuming (``train_grpo(resume=...)``) restores what the reward shapers remember (the outcome counts of
``outcome_count``): ``RewardStateCheckpoints`` saves it with every TRL checkpoint.

``CritiqueGRPOTrainer`` relies on TRL internals, all listed in ``interplay.training.trl_internals``, which
also holds the TRL versions it was tested with; building it with another TRL fails with a clear message.

Multi-GPU: ``accelerate launch --num_processes 4 -m interplay.cli train grpo --env interplay/Maze-v0
--model DIR --output-dir OUT``. Each process plays its share of the episodes with its replica of the
model; keep ``per_device_train_batch_size`` a multiple of ``num_generations`` so a group is never split
across processes (the reward shapers see whole groups). DeepSpeed ZeRO-3 (sharded parameters) is not
supported by the rollout, which samples from the unwrapped module.

vLLM: with ``use_vllm=True`` each turn of every live episode is sampled by TRL's own vLLM generation
(token ids in, sampled ids and log-probs out: ``episode_agent``, ``vllm_reply_args``); otherwise the
trainer's model samples, with KV caches kept across turns.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from interplay.agents.chat import ChatEncoder, generation_stop_ids
from interplay.agents.tokens import pad_batch
from interplay.rollout import EnvSpec, Trajectory, rollout
from interplay.seeds import parse_task_key, task_key, train_seeds
from interplay.training.common import (
    AdapterBase,
    HeldOutSuccessCallback,
    agent_kwargs,
    check_launch,
    start_model,
    use_console,
    with_bf16_where_supported,
)
from interplay.training.config import GRPOTrainingConfig, grpo_task_count
from interplay.training.credit import CREDITS, anchor_step_advantages, rebn_advantages, step_groups
from interplay.training.exploration import (
    ExplorationConfig,
    GroupInfo,
    RepExpBonus,
    apply_shapers,
    build_shapers,
)
from interplay.training.trl_internals import GENERATE_EXTRA_FIELDS, check_trl, quiet_rollout_func_notice

#: The GRPO hyperparameters measured to learn with the tiny model on a CPU (benchmarks/RESULTS.md); see
#: ``grpo_defaults``.
GRPO_DEFAULTS: dict[str, Any] = {
    "beta": 0.0,
    "loss_type": "dapo",
    "learning_rate": 3e-4,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "temperature": 1.0,
    "num_generations": 8,
    "per_device_train_batch_size": 64,
    "gradient_accumulation_steps": 1,
    "num_iterations": 1,
    "max_steps": 20,
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 10,
    "save_total_limit": 2,
    "report_to": "none",
    "gradient_checkpointing": False,  # TRL defaults to True: slower steps, to save memory a small model does not need
}

def grpo_defaults(**overrides: Any) -> dict[str, Any]:
    """``GRPO_DEFAULTS`` for TRL's ``GRPOConfig``, bf16 where a GPU supports it."""
    return with_bf16_where_supported(GRPO_DEFAULTS, **overrides)


def parse_task_prompt(prompt: Any) -> tuple[str, int]:
    """``(env_id, seed)`` of a prompt-dataset row: a ``task_key`` without kwargs (they are the config's)."""
    parsed = parse_task_key(prompt)
    if parsed is None or parsed[2]:
        raise ValueError("GRPO prompts must be task keys like 'interplay/Maze-v0 seed=12' (interplay.seeds.task_key), "
                         f"got {prompt!r:.100}; build the dataset with interplay.training.grpo.prompt_dataset.")
    return parsed[0], parsed[1]


def prompt_dataset(config: GRPOTrainingConfig, n: int) -> Any:
    """``n`` task prompts on consecutive training seeds from ``config.seed_start``."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [task_key(config.env, s) for s in train_seeds(n, config.seed_start)]})


def turn_anchors(trajectory: Trajectory) -> list[str]:
    """Per turn, the observation the agent replied to (GiGPO's anchor state): the user message before each reply."""
    messages = trajectory.messages
    return [str(messages[k - 1]["content"]) if k > 0 and messages[k - 1]["role"] == "user" else ""
            for k, m in enumerate(messages) if m["role"] == "assistant"]


def episode_fields(trajectories: Sequence[Trajectory], eos_id: int, discount: float = 1.0,
                   credit: str = "episode") -> dict[str, list]:
    """What ``rollout_func`` returns to TRL for played episodes (see the module docstring). With a turn-level
    ``credit`` also, per episode, ``turn_index`` (per completion token, its turn), ``turn_rewards`` and, for
    ``"anchor"``, ``anchors`` (per turn, the observation replied to)."""
    keys = ["prompt_ids", "completion_ids", "logprobs", "env_mask", "reward", "success", "outcome", "turns",
            "invalid_actions", "task"]
    if credit != "episode":
        keys += ["turn_index", "turn_rewards"] + (["anchors"] if credit == "anchor" else [])
    out: dict[str, list] = {key: [] for key in keys}
    for t in trajectories:
        completion, mask, logprobs = list(t.completion_ids), list(t.agent_mask), list(t.logprobs)
        if not completion or completion[-1] != eos_id:
            # The last reply hit max_new_tokens: the episode is over all the same, and TRL reads a sequence
            # without eos as truncated (and may drop it), so close it with an environment-side eos.
            completion, mask, logprobs = completion + [eos_id], mask + [0], logprobs + [0.0]
        out["prompt_ids"].append(list(t.prompt_ids))
        out["completion_ids"].append(completion)
        out["logprobs"].append(logprobs)
        out["env_mask"].append(mask)
        out["reward"].append(float(sum(r * discount**turn for turn, r in enumerate(t.rewards))))
        out["success"].append(bool(t.success))
        out["outcome"].append(t.outcome)
        out["turns"].append(t.turns)
        out["invalid_actions"].append(t.invalid_actions)
        out["task"].append(task_key(t.env_id, t.seed))
        if credit != "episode":
            index = t.turn_index()
            out["turn_index"].append(index + [index[-1] if index else 0] * (len(completion) - len(index)))
            out["turn_rewards"].append([float(r) for r in t.rewards])
            if credit == "anchor":
                anchors = turn_anchors(t)
                if len(anchors) != len(t.rewards):
                    raise ValueError(f"{task_key(t.env_id, t.seed)}: {len(anchors)} replies but {len(t.rewards)} "
                                     "rewards; anchor credit needs one observation per turn.")
                out["anchors"].append(anchors)
    return out


def critique_mask(trajectory: Trajectory, encoder: ChatEncoder) -> list[int]:
    """1 on the ``completion_ids`` of ``trajectory`` that spell a teacher's feedback, else 0.

    Environment turn j (the j-th run of ``agent_mask`` 0) is the close of the agent's reply and the delta
    that carries the observation of step j+1; where that step's ``info["teacher_feedback"]`` is not
    empty, the delta is encoded again with character spans (``ChatEncoder.delta_spans``) and its tokens
    inside the feedback text are marked. Where those ids do not end the recorded run (the recording used
    other template kwargs, say) the whole environment turn is marked instead.
    """
    mask = [0] * len(trajectory.completion_ids)
    runs = [(start, end) for start, end, by_agent in trajectory.spans() if not by_agent]
    replies = [i for i, m in enumerate(trajectory.messages) if m["role"] == "assistant"]
    system = trajectory.messages[0]["content"] if trajectory.messages[0]["role"] == "system" else None
    for j, (lo, hi) in enumerate(runs):
        info = trajectory.infos[j + 1] if j + 1 < len(trajectory.infos) else {}
        feedback = info.get("teacher_feedback") or ""
        if not feedback or j >= len(replies) or replies[j] + 1 >= len(trajectory.messages):
            continue
        ids, text, spans = encoder.delta_spans([trajectory.messages[replies[j] + 1]], system)
        at = text.find(feedback)
        first = hi - len(ids)
        if at < 0 or first < lo or ids != trajectory.completion_ids[first:hi]:
            mask[lo:hi] = [1] * (hi - lo)
            continue
        for k, (a, b) in enumerate(spans):
            mask[first + k] = int(a < at + len(feedback) and b > at)
    return mask


@torch.no_grad()
def episode_hidden(model: Any, prompt_ids: Sequence[list[int]], completion_ids: Sequence[list[int]],
                   agent_masks: Sequence[list[int]], batch_size: int = 16) -> list[list[float]]:
    """Per episode, the mean last-layer hidden state over its agent tokens (RepExp's representation).

    One forward of prompt + completion per episode, right-padded in batches of ``batch_size``. The
    model is left in the mode it is in (TRL reads ``model.training``), so dropout, if any, applies.
    """
    device = next(model.parameters()).device
    vectors: list[list[float]] = []
    for start in range(0, len(prompt_ids), batch_size):
        rows = [list(p) + list(c) for p, c in zip(prompt_ids[start:start + batch_size],
                                                   completion_ids[start:start + batch_size])]
        marks = [[0] * len(p) + list(m) for p, m in zip(prompt_ids[start:start + batch_size],
                                                        agent_masks[start:start + batch_size])]
        ids, attention, agent = pad_batch(rows, marks=marks, device=device)
        agent = agent.float()
        hidden = model(input_ids=ids, attention_mask=attention, output_hidden_states=True).hidden_states[-1]
        mean = (hidden.float() * agent[..., None]).sum(1) / agent.sum(1, keepdim=True).clamp(min=1.0)
        vectors += mean.cpu().tolist()
    return vectors


def episode_agent(config: GRPOTrainingConfig, trainer: Any, model: Any, tokenizer: Any) -> Any:
    """Who plays the training episodes: TRL's vLLM (``use_vllm``: token ids in, ids and log-probs out, through
    ``trainer.vllm_generation``) or the trainer's own model with KV caches kept across turns."""
    args = trainer.args
    if getattr(trainer, "use_vllm", False):
        from interplay.agents.vllm import TRLVLLMGenerator, VLLMAgent

        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return VLLMAgent(tokenizer=tokenizer, generator=TRLVLLMGenerator(trainer, pad_prompt=[pad]),
                         temperature=args.temperature, top_p=args.top_p, top_k=args.top_k or 0,
                         max_new_tokens=config.max_new_tokens, chat_template_kwargs=config.chat_template_kwargs,
                         stop_ids=generation_stop_ids(model.generation_config))
    from interplay.agents.hf import HFAgent

    return HFAgent(model, tokenizer, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k or 0,
                   max_new_tokens=config.max_new_tokens, **agent_kwargs(config))


def make_rollout_func(config: GRPOTrainingConfig) -> Any:
    """``rollout_func(prompts, trainer)`` for ``GRPOTrainer``: one episode per prompt, seed from the prompt."""
    wants_hidden = config.exploration is not None and RepExpBonus.name in config.exploration.methods

    def rollout_func(prompts: list[Any], trainer: GRPOTrainer) -> dict[str, list]:
        specs = []
        for prompt in prompts:
            env_id, seed = parse_task_prompt(prompt)
            if env_id != config.env:
                raise ValueError(f"prompt names {env_id!r} but this run trains on {config.env!r}.")
            specs.append(EnvSpec(env_id, dict(config.env_kwargs), seed))
        model, tokenizer = trainer.accelerator.unwrap_model(trainer.model), trainer.processing_class
        agent = episode_agent(config, trainer, model, tokenizer)
        played = rollout(specs, agent, max_turns=config.max_turns, env_workers=config.env_workers)
        out = episode_fields(played, tokenizer.eos_token_id, config.discount, config.credit)
        if wants_hidden:
            out["hidden"] = episode_hidden(model, out["prompt_ids"], out["completion_ids"], out["env_mask"])
        if config.critique_weight > 0:
            # Zero-padded for the eos that episode_fields may append.
            out["critique_mask"] = [critique_mask(t, agent.encoder) + [0] * (len(ids) - len(t.completion_ids))
                                    for t, ids in zip(played, out["completion_ids"])]
        return out

    return rollout_func


@dataclass
class AdvantageTerms:
    """What ``EpisodeReward`` adds to (or puts in place of) GRPO's episode advantages ``A_i``, per episode in the
    order of its call: token j of episode i, in turn t = ``turn_index[i][j]``, gets
    ``keep_episode · A_i + bonus_i + turns[i][t]`` (``apply_advantage_terms``).

    ``bonus``: the outcome-based exploration bonuses (Song et al.'s ``Â_i + c·b_i``), None without them.
    ``turns``: per episode per turn the turn-level credit (``interplay.training.credit``): GiGPO's
    ``omega · A^S`` (``keep_episode`` True) or ReBN's normalized returns (``keep_episode`` False); None with
    episode credit, and the advantages stay one per episode."""

    bonus: list[float] | None = None
    turns: list[list[float]] | None = None
    keep_episode: bool = True


def apply_advantage_terms(advantages: torch.Tensor, terms: AdvantageTerms,
                          turn_index: Sequence[Sequence[int]] | None = None, width: int | None = None) -> torch.Tensor:
    """GRPO's episode advantages ``[batch]`` with ``terms`` applied: ``[batch]`` without turn terms, else
    ``[batch, width]`` per completion token (its turn's value, through ``turn_index``; 0 past an episode's
    tokens, which are padding)."""
    base = advantages if terms.keep_episode else torch.zeros_like(advantages)
    if terms.bonus is not None:
        base = base + torch.tensor(terms.bonus, dtype=advantages.dtype, device=advantages.device)
    if terms.turns is None:
        return base
    if turn_index is None or width is None:
        raise ValueError("turn-level advantages need each episode's token->turn map (turn_index) and the width.")
    base = base.cpu()
    out = torch.zeros(len(terms.turns), width, dtype=advantages.dtype)
    for i, (values, index) in enumerate(zip(terms.turns, turn_index)):
        index = list(index)[:width]
        if index:
            out[i, :len(index)] = torch.tensor(values, dtype=advantages.dtype)[torch.tensor(index)] + base[i]
    return out.to(advantages.device)


class EpisodeReward:
    """The reward function TRL calls: episode rewards grouped by task, shaped by the exploration
    shapers (if any), and logged; with a turn-level ``credit`` also the per-turn advantages
    (``interplay.training.credit``). The single place to change what GRPO optimizes.

    ``credit``, ``turn_discount``, ``anchor_weight``: as in ``GRPOTrainingConfig``; ``scale_steps``: whether
    GiGPO's step-level advantages are divided by their step group's std (TRL's ``scale_rewards`` != "none")."""

    __name__ = "episode_reward"  # TRL names reward columns after it

    def __init__(self, exploration: ExplorationConfig | None = None, credit: str = "episode",
                 turn_discount: float = 0.95, anchor_weight: float = 1.0, scale_steps: bool = True) -> None:
        if credit not in CREDITS:
            raise ValueError(f"credit must be one of {', '.join(CREDITS)}, got {credit!r}.")
        self.shapers = build_shapers(exploration) if exploration is not None else []
        self.credit, self.turn_discount, self.anchor_weight = credit, turn_discount, anchor_weight
        self.scale_steps = scale_steps
        # What the last call adds to GRPO's advantages (outcome-based bonuses, turn-level credit); None when
        # nothing. CritiqueGRPOTrainer takes it.
        self.advantage_terms: AdvantageTerms | None = None

    def take_advantage_terms(self) -> AdvantageTerms | None:
        """What the last call adds to GRPO's advantages, per episode in its order (then forgotten)."""
        terms, self.advantage_terms = self.advantage_terms, None
        return terms

    def turn_credit(self, task: list[str], turn_rewards: list[list[float]] | None,
                    anchors: list[list[str]] | None) -> tuple[list[list[float]] | None, dict[str, float]]:
        """Per episode per turn the turn-level credit of ``self.credit`` (None for episode credit), and metrics."""
        if self.credit == "episode":
            return None, {}
        if turn_rewards is None or (self.credit == "anchor" and anchors is None):
            raise ValueError(f"credit={self.credit!r} needs the rollout's per-turn fields (turn_rewards"
                             f"{', anchors' if self.credit == 'anchor' else ''}): build the rollout with "
                             "make_rollout_func(config) of a config with the same credit.")
        if self.credit == "return":
            values = rebn_advantages(turn_rewards, self.turn_discount)
            return [v.tolist() for v in values], {}
        steps = anchor_step_advantages(turn_rewards, anchors, task, self.turn_discount, scale=self.scale_steps)
        sizes = [len(members) for members in step_groups(task, anchors).values()]
        turns = max(sum(sizes), 1)
        metrics = {"credit/step_group_size": float(np.mean(sizes)) if sizes else 0.0,
                   # turns whose step group holds another turn: the only ones with a step-level advantage
                   "credit/frac_turns_grouped": sum(n for n in sizes if n > 1) / turns}
        return [(self.anchor_weight * v).tolist() for v in steps], metrics

    @property
    def stateful(self) -> bool:
        """Whether a shaper remembers something across steps (``outcome_count``'s counts) that a resume needs."""
        return any(shaper.state_dict() for shaper in self.shapers)

    def state_dict(self) -> dict[str, Any]:
        """Each shaper's state by name (JSON-serializable), for ``RewardStateCheckpoints``."""
        return {"shapers": {shaper.name: shaper.state_dict() for shaper in self.shapers}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved, names = state["shapers"], [shaper.name for shaper in self.shapers]
        if sorted(saved) != sorted(names):
            raise ValueError(f"the saved reward state is of the shapers {sorted(saved)}, this run has {sorted(names)}: "
                             "resume with the exploration config the checkpoint was trained with.")
        for shaper in self.shapers:
            shaper.load_state_dict(saved[shaper.name])

    def __call__(self, prompts: list[Any], completions: list[Any], reward: list[float], success: list[bool],
                 outcome: list[str], turns: list[int], invalid_actions: list[int], task: list[str],
                 trainer_state: Any = None, log_metric: Any = None, hidden: list[list[float]] | None = None,
                 turn_rewards: list[list[float]] | None = None, anchors: list[list[str]] | None = None,
                 **kwargs: Any) -> list[float]:
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(task):
            groups.setdefault(key, []).append(i)
        step = trainer_state.global_step if trainer_state is not None else 0
        raw = np.asarray(reward, dtype=np.float64)
        shaped = raw.copy()
        advantage = np.zeros(len(raw))
        # Per episode, what each shaper changed: every bonus by name, the transforms (PKPO) together.
        transforms = "+".join(s.name for s in self.shapers if s.kind == "transform")
        changes = {name: np.zeros(len(raw)) for name in [transforms, *(s.name for s in self.shapers
                                                                      if s.kind == "bonus")] if name}
        for key, rows in groups.items():
            if self.shapers:
                info = GroupInfo(task_key=key, outcomes=[outcome[i] for i in rows],
                                 successes=[success[i] for i in rows], step=step,
                                 hidden=None if hidden is None else [hidden[i] for i in rows])
                shaped[rows], components = apply_shapers(raw[rows], info, self.shapers, return_components=True)
                if transforms:
                    changes[transforms][rows] = components.pop("transformed") - raw[rows]
                advantage[rows] = components.pop("advantage")
                for name, change in components.items():
                    if name != "transformed":
                        changes[name][rows] = change
        wants_advantage = any(getattr(s, "target", "reward") == "advantage" for s in self.shapers)
        bonus = advantage.tolist() if wants_advantage else None
        turn_values, credit_metrics = self.turn_credit(task, turn_rewards, anchors)
        self.advantage_terms = None if bonus is None and turn_values is None else AdvantageTerms(
            bonus=bonus, turns=turn_values, keep_episode=self.credit != "return")
        if log_metric is not None:
            for name, value in {**self.metrics(shaped, success, outcome, turns, invalid_actions, groups, raw),
                                **credit_metrics}.items():
                log_metric(name, value)
            for name, change in changes.items():
                log_metric(f"explore/{name}", float(change.mean()))
        return shaped.tolist()

    @staticmethod
    def metrics(rewards: np.ndarray, success: list[bool], outcome: list[str], turns: list[int],
                invalid_actions: list[int], groups: dict[str, list[int]],
                raw: np.ndarray | None = None) -> dict[str, float]:
        """Per-step episode metrics; ``rewards`` as GRPO gets them (shaped), ``raw`` the environment's own
        (default: ``rewards``)."""
        raw = rewards if raw is None else raw
        return {
            "episode/success_rate": float(np.mean(success)),
            "episode/mean_turns": float(np.mean(turns)),
            "episode/invalid_rate": sum(invalid_actions) / max(sum(turns), 1),
            # Groups where every episode got the same reward give GRPO no signal at all.
            "episode/frac_groups_equal_reward": float(np.mean([np.ptp(rewards[rows]) == 0 for rows in groups.values()])),
            "episode/distinct_outcomes_per_group": float(np.mean([len({outcome[i] for i in rows})
                                                                   for rows in groups.values()])),
            # The manipulation check of a GRPO run: groups where the environment's own reward differs at all.
            "episode/frac_groups_reward_spread": float(np.mean([np.ptp(raw[rows]) > 0 for rows in groups.values()])),
        }


def fused_lm_head_default(device: torch.device | str) -> bool:
    """Whether ``CritiqueGRPOTrainer`` uses TRL's fused LM head by default on ``device``: where TRL has a Triton
    kernel for it (CUDA, XPU), which scores only the completion tokens without materializing their logits; not
    elsewhere (CPU, MPS), where TRL's torch fallback projects every position of the batch through the vocabulary."""
    return torch.device(device).type in ("cuda", "xpu")


def completion_logps(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int,
                     temperature: float = 1.0, batch_size: int | None = None, compute_entropy: bool = False,
                     entropy_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (and entropies) of the last ``logits_to_keep`` tokens of each row, from the model's
    own logits at those positions only (``logits_to_keep``), scaled by 1/``temperature``: what TRL's
    ``GRPOTrainer._get_per_token_logps_and_entropies`` returns, 0 where the token is padding. The entropies
    (of the tempered distribution) carry gradients only with ``entropy_grad``; rows go through the model
    ``batch_size`` at a time (None: all at once)."""
    batch_size = batch_size or input_ids.size(0)
    targets = input_ids[:, -logits_to_keep:]
    valid = attention_mask[:, -logits_to_keep:] != 0
    all_logps, all_entropies = [], []
    for start in range(0, input_ids.size(0), batch_size):
        rows = slice(start, start + batch_size)
        logits = model(input_ids=input_ids[rows], attention_mask=attention_mask[rows], use_cache=False,
                       logits_to_keep=logits_to_keep + 1).logits[:, :-1]
        if temperature != 1.0:
            logits = logits / temperature
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        all_logps.append(logprobs.gather(-1, targets[rows].unsqueeze(-1)).squeeze(-1).masked_fill(~valid[rows], 0.0))
        if compute_entropy:
            with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
                entropy = -(logprobs.exp() * logprobs).sum(-1)
            all_entropies.append(entropy.masked_fill(~valid[rows], 0.0))
        del logits, logprobs
    return torch.cat(all_logps), torch.cat(all_entropies) if compute_entropy else None


class CritiqueGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` + ``critique_weight`` × NLL of the teacher's feedback tokens (``critique_mask``).

    The rollout's ``critique_mask`` travels with the batch (padded like ``completion_ids``); the NLL
    reuses the per-token log-probs of the policy-loss forward (no second forward; TRL scales logits by
    1/temperature there, so at temperature 1 it is the plain NLL). Like TRL's entropy bonus it is a mean
    over the marked tokens of a micro-batch, divided by the gradient-accumulation steps. With weight 0
    (or no feedback tokens) the loss is GRPOTrainer's, unchanged.

    ``fused_lm_head``: whether the per-token log-probs come from TRL's fused LM head (True) or from the model's
    own logits over the completion positions (False, ``completion_logps``); None (default): fused only on a GPU
    (``fused_lm_head_default``). TRL patches the fused head on in any case; on a CPU it has no Triton kernel and
    projects every position of the batch, prompts and padding included, through the whole vocabulary in
    tile-sized torch operations, which made a step on SmolLM2-135M about twice as slow as it needs to be
    (benchmarks/RESULTS.md). The logits path holds the completion logits (rows × completion width × vocab
    floats) for the backward pass, as a plain forward with labels does; the fused head saves that memory.
    """

    def __init__(self, *args: Any, critique_weight: float = 0.0, fused_lm_head: bool | None = None,
                 **kwargs: Any) -> None:
        check_trl()
        with quiet_rollout_func_notice():
            super().__init__(*args, **kwargs)
        self.critique_weight = float(critique_weight)
        self.fused_lm_head = fused_lm_head_default(self.accelerator.device) if fused_lm_head is None else bool(
            fused_lm_head)
        self._critique_masks: list[list[int]] | None = None
        self._turn_index: list[list[int]] | None = None
        self._policy_logps: torch.Tensor | None = None

    def _generate(self, prompts: list) -> tuple:
        result = super()._generate(prompts)
        # The rollout's extra fields: take critique_mask and turn_index (per token) out before they reach the
        # reward function.
        self._critique_masks = result[GENERATE_EXTRA_FIELDS].pop("critique_mask", None)
        self._turn_index = result[GENERATE_EXTRA_FIELDS].pop("turn_index", None)
        return result

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._turn_index = None
        output = super()._generate_and_score_completions(inputs)
        # What the reward function adds to GRPO's normalized advantages (this process's episodes, in the order
        # it saw them, which is the order of this process's advantages): outcome-based exploration bonuses, and
        # turn-level credit, which makes them per token ([batch, completion length]: TRL's loss takes that
        # shape, trl_internals "per-token advantages").
        for func in self.reward_funcs:
            terms = getattr(func, "take_advantage_terms", lambda: None)()
            if terms is not None:
                output["advantages"] = apply_advantage_terms(output["advantages"], terms, self._turn_index,
                                                             output["completion_ids"].size(1))
        self._turn_index = None
        if self._critique_masks is not None:
            masks = torch.zeros_like(output["completion_mask"])
            for i, row in enumerate(self._critique_masks):
                masks[i, : len(row)] = torch.tensor(row[: masks.size(1)])
            output["critique_mask"] = masks * output["completion_mask"]
            self._critique_masks = None
        return output

    def _get_per_token_logps_and_entropies(self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                                           logits_to_keep: int, batch_size: int | None = None,
                                           compute_entropy: bool = False, compute_aux_loss: bool = False,
                                           **kwargs: Any) -> tuple:
        if self.fused_lm_head or compute_aux_loss or any(value is not None for value in kwargs.values()):
            # TRL's own path: the fused head, and what only it handles (images, MoE load-balancing loss).
            result = super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **kwargs)
        else:
            args = self.args
            entropy_grad = bool(args.entropy_coef) or bool(args.use_adaptive_entropy)  # TRL's entropy bonus
            with self.accelerator.autocast():
                logps, entropies = completion_logps(model, input_ids, attention_mask, logits_to_keep,
                                                    temperature=args.temperature, batch_size=batch_size,
                                                    compute_entropy=compute_entropy, entropy_grad=entropy_grad)
            result = (logps, entropies, None)
        if torch.is_grad_enabled():  # the policy-loss forward (old/ref log-probs run without grad)
            self._policy_logps = result[0]
        return result

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> torch.Tensor:
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mask = inputs.get("critique_mask")
        if self.critique_weight == 0.0 or mask is None or self._policy_logps is None:
            return loss
        mask = mask.to(self._policy_logps.dtype)
        nll = -(self._policy_logps * mask).sum() / mask.sum().clamp(min=1.0)
        self._policy_logps = None
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["critique/nll"].append(self.accelerator.gather(nll.detach()).mean().item())
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        return loss + self.critique_weight * nll / accumulation


#: The file, in each TRL checkpoint, with one process's reward-shaper state (``rank``: its process index).
REWARD_STATE_FILE = "interplay_reward_state-{rank}.json"


class RewardStateCheckpoints(TrainerCallback):
    """Writes ``reward.state_dict()`` into every checkpoint the trainer saves (``REWARD_STATE_FILE``), so that a
    resumed run continues the shapers' history (outcome counts) instead of restarting it; ``restore_reward_state``
    reads it back. One file per process: each process shapes the groups it plays with shapers of its own."""

    def __init__(self, reward: EpisodeReward) -> None:
        self.reward = reward

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / REWARD_STATE_FILE.format(rank=args.process_index)).write_text(json.dumps(self.reward.state_dict()))


def restore_reward_state(trainer: GRPOTrainer, checkpoint: str | Path) -> None:
    """Load the reward-shaper state saved with ``checkpoint`` (``RewardStateCheckpoints``) into the trainer's
    ``EpisodeReward``; a checkpoint without it is refused when a shaper has state to lose."""
    [reward] = trainer.reward_funcs
    rank = trainer.args.process_index
    saved = Path(checkpoint) / REWARD_STATE_FILE.format(rank=rank)
    if saved.exists():
        reward.load_state_dict(json.loads(saved.read_text()))
    elif reward.stateful:
        raise ValueError(f"{checkpoint} holds no reward-shaper state for process {rank} ({saved.name}): it was saved "
                         "by an older interplay or by a run with fewer processes, and resuming from it would restart "
                         "the exploration shapers' history (outcome counts). Resume from a checkpoint of this run "
                         "with the same number of processes, or start afresh.")


@dataclass
class GRPOResult:
    output_dir: str
    heldout: list[dict[str, Any]]  # held-out scores: {"step", "heldout/success_rate", ...}
    log_history: list[dict[str, Any]]
    seconds: float


def parameter_sharding(args: Any, accelerator: Any = None) -> str | None:
    """``"FSDP"`` or ``"DeepSpeed ZeRO-3"`` when ``args`` (a TrainingArguments), the ``accelerate launch``
    environment or a built ``accelerator`` shard the model's parameters across processes; None when every
    process holds whole parameters (one process, DDP, DeepSpeed ZeRO-1/2)."""
    import os

    def on(name: str) -> bool:
        return os.environ.get(name, "").lower() in ("1", "true", "yes")

    state = getattr(accelerator, "state", None)
    if getattr(args, "fsdp", None) or getattr(args, "fsdp_plugin_args", None) or on("ACCELERATE_USE_FSDP") or (
            getattr(state, "fsdp_plugin", None) is not None):
        return "FSDP"
    plugins = [getattr(args, "deepspeed_plugin", None), getattr(state, "deepspeed_plugin", None)]
    if any(getattr(p, "zero_stage", None) == 3 for p in plugins if p is not None) or (
            on("ACCELERATE_USE_DEEPSPEED") and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"):
        return "DeepSpeed ZeRO-3"
    return None


def check_multiprocess(args: Any, accelerator: Any = None) -> None:
    """Refuse, before training, a setup interplay's multi-turn GRPO cannot run correctly on several processes.

    - Sharded parameters (FSDP, DeepSpeed ZeRO-3): the rollout samples with
      ``trainer.accelerator.unwrap_model(trainer.model)`` and KV caches kept across turns, outside the
      wrapper's forward (so do the held-out evaluation and RepExp's ``episode_hidden``, with vLLM too), so it
      needs every parameter whole on each process.
    - Split groups: each process generates ``per_device_train_batch_size × steps_per_generation`` episodes
      per generation batch, consecutive groups of ``num_generations`` (TRL's ``RepeatSampler``). TRL itself
      only requires the *global* generation batch to hold whole groups (it gathers rewards before
      normalizing), but ``EpisodeReward`` and the exploration shapers run per process on the groups they
      see, so the local batch must hold whole groups too.
    """
    import math

    sharding = parameter_sharding(args, accelerator)
    if sharding is not None:
        raise ValueError(f"{sharding} shards the model's parameters across processes, which interplay's multi-turn "
                         "GRPO does not support: it runs the trainer's model outside the wrapper's forward (the "
                         "rollout samples with trainer.accelerator.unwrap_model(trainer.model) and KV caches kept "
                         "across turns; the held-out evaluation and RepExp's hidden states too), which needs whole "
                         "parameters on each process. Use plain data parallelism (`accelerate launch --multi_gpu --num_processes N`, "
                         "DDP) or DeepSpeed ZeRO stage 1 or 2 (optimizer state and gradients sharded, parameters "
                         "whole), with a model that fits on one device.")
    world, group = args.world_size, args.num_generations
    per_device, steps = args.per_device_train_batch_size, args.steps_per_generation or 1
    if world > 1 and (per_device * steps) % group:
        unit = group // math.gcd(group, steps)
        raise ValueError(f"each of the {world} processes would play per_device_train_batch_size × steps_per_generation "
                         f"= {per_device} × {steps} = {per_device * steps} episodes per generation batch, not a multiple "
                         f"of num_generations ({group}): a GRPO group would be split across processes and the reward "
                         "shaping (EpisodeReward, exploration shapers), which runs per process, would see parts of "
                         f"groups. Use e.g. per_device_train_batch_size={-(-per_device // unit) * unit}.")


def vllm_reply_args(config: GRPOTrainingConfig, args: GRPOConfig, tokenizer: Any, model: Any = None) -> None:
    """With ``use_vllm``, TRL's vLLM samples every reply of an episode: set ``args`` so that it stops where
    the chat template ends a turn (``generation_kwargs["stop_token_ids"]``) and after ``max_new_tokens``
    (``max_completion_length``, which TRL's vLLM uses per call, so per reply)."""
    if config.thinking_budget is not None:
        raise ValueError("thinking_budget is not supported with use_vllm=True (vLLM samples whole replies); "
                         "leave it None or train with use_vllm=False.")
    stops = ChatEncoder(tokenizer, config.chat_template_kwargs,
                        stop_ids=generation_stop_ids(getattr(model, "generation_config", None))).stop_ids
    kwargs = dict(args.generation_kwargs or {})
    kwargs["stop_token_ids"] = sorted(set(kwargs.get("stop_token_ids") or ()) | stops)
    args.generation_kwargs = kwargs
    args.max_completion_length = config.max_new_tokens


def build_grpo_trainer(config: GRPOTrainingConfig, args: GRPOConfig, callbacks: Sequence[TrainerCallback] = ()
                       ) -> tuple[CritiqueGRPOTrainer, HeldOutSuccessCallback]:
    """A ``GRPOTrainer`` wired for multi-turn episodes (plus the held-out success callback it logs with); it
    saves the reward shapers' state with each checkpoint (``RewardStateCheckpoints``)."""
    check_trl()
    check_launch(args)
    check_multiprocess(args)
    model, tokenizer, peft_config, adapters = start_model(config)
    if args.use_vllm:
        vllm_reply_args(config, args, tokenizer, model)
    tasks = grpo_task_count(config.tasks, args.max_steps, args.per_device_train_batch_size, args.num_generations,
                            args.gradient_accumulation_steps, num_processes=args.world_size)
    heldout = HeldOutSuccessCallback(config.env, config.env_kwargs, tokenizer, config.eval_episodes, config.eval_every,
                                     config.max_turns, config.max_new_tokens, agent_kwargs(config))
    reward = EpisodeReward(config.exploration, credit=config.credit, turn_discount=config.turn_discount,
                           anchor_weight=config.anchor_weight, scale_steps=args.scale_rewards != "none")
    trainer = CritiqueGRPOTrainer(model=model, reward_funcs=reward, args=args,
                                  train_dataset=prompt_dataset(config, tasks), processing_class=tokenizer,
                                  rollout_func=make_rollout_func(config),
                                  callbacks=[heldout, RewardStateCheckpoints(reward), *([adapters] if adapters else []),
                                             *callbacks],
                                  critique_weight=config.critique_weight, peft_config=peft_config,
                                  fused_lm_head=config.fused_lm_head)
    check_multiprocess(args, trainer.accelerator)  # what accelerate itself set up (a launch config, say)
    heldout.trainer = trainer
    return trainer, heldout


def train_grpo(config: GRPOTrainingConfig, args: GRPOConfig, resume: str | bool | None = None,
               callbacks: Sequence[TrainerCallback] = (), console: TrainerCallback | None = None) -> GRPOResult:
    """Train with multi-turn GRPO; save model + tokenizer to ``args.output_dir`` (``interplay.models.load``).

    ``resume``: a checkpoint directory, or True for the latest in ``args.output_dir``; the model, optimizer and
    reward-shaper state continue from it. ``console``: a callback shown in place of the trainer's own terminal
    output (``interplay.training.common.use_console``).
    """
    from transformers.trainer_utils import get_last_checkpoint

    started = time.perf_counter()
    trainer, heldout = build_grpo_trainer(config, args, callbacks)
    use_console(trainer, console)
    checkpoint = get_last_checkpoint(args.output_dir) if resume is True else resume
    if checkpoint:  # resume=True without a checkpoint: train() itself says there is none
        restore_reward_state(trainer, checkpoint)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(args.output_dir)
    adapters = next((c for c in trainer.callback_handler.callbacks if isinstance(c, AdapterBase)), None)
    if adapters is not None and trainer.is_world_process_zero():
        adapters.write(args.output_dir)
    return GRPOResult(args.output_dir, heldout.results, list(trainer.state.log_history), time.perf_counter() - started)
