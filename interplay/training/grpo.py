"""Multi-turn GRPO: TRL's ``GRPOTrainer`` with a ``rollout_func`` that plays whole episodes.

GRPO (Shao et al. 2024, "DeepSeekMath"): for G episodes from one initial state, the advantage of
episode i is ``(R_i - mean(R)) / std(R)``; TRL computes it and the clipped policy-gradient loss.
interplay adds the episodes, one module per job:

- ``grpo_tasks``: the prompt dataset, one task key (``"<env id> seed=<seed>"``) per row, and how many
  tasks a run draws; TRL repeats each prompt ``num_generations`` times, so a group shares its seed.
- ``grpo_rollout``: ``rollout_func(prompts, trainer)`` plays those episodes with the trainer's model
  and packs their token ids, log-probs and environment mask the way TRL reads them.
- ``grpo_reward``: ``EpisodeReward``, the reward function: groups, exploration shapers
  (``interplay.training.exploration``), turn-level credit (``interplay.training.credit``), metrics.
- ``grpo_trainer``: ``MultiTurnGRPOTrainer``, the ``GRPOTrainer`` subclass that applies the reward's
  advantage terms and the critique loss (the only module touching TRL internals).
- here: the defaults measured to learn, the multi-process and vLLM set-up, ``build_grpo_trainer`` and
  ``train_grpo``.

One GRPO step, for a reader following it: TRL's ``training_step`` asks for a batch
(``MultiTurnGRPOTrainer._generate_and_score_completions``, ``grpo_trainer``) -> TRL's ``_generate`` calls
``rollout_func`` (``grpo_rollout``: ``interplay.rollout.rollout`` plays the episodes, ``episode_fields`` packs
them) -> TRL calls ``EpisodeReward`` (``grpo_reward``: groups, shapers, credit, metrics) and normalizes the
rewards per group -> ``apply_advantage_terms`` (``grpo_trainer``) adds the reward's advantage terms -> TRL's
clipped loss, plus the critique term in ``MultiTurnGRPOTrainer.compute_loss``.

Multi-GPU: ``accelerate launch --num_processes 4 -m interplay.cli train grpo --env interplay/Maze-v0
--model DIR --output-dir OUT``. Each process plays its share of the episodes with its replica of the
model; keep ``per_device_train_batch_size`` a multiple of ``num_generations`` so a group is never split
across processes (the reward shapers see whole groups; ``check_multiprocess``). Sharded parameters
(FSDP, DeepSpeed ZeRO-3) are refused: the rollout samples from the unwrapped module.

vLLM: with ``use_vllm=True`` each turn of every live episode is sampled by TRL's own vLLM generation
(token ids in, sampled ids and log-probs out; ``vllm_reply_args``); otherwise the trainer's model samples,
with KV caches kept across turns.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback
from trl import GRPOConfig

from interplay.agents.chat import ChatEncoder, generation_stop_ids
from interplay.training.common import (
    AdapterBase,
    HeldOutSuccessCallback,
    check_launch,
    start_model,
    use_console,
    with_bf16_where_supported,
)
from interplay.training.config import GRPOTrainingConfig
from interplay.training.grpo_reward import EpisodeReward, RewardStateCheckpoints, restore_reward_state
from interplay.training.grpo_rollout import make_rollout_func
from interplay.training.grpo_tasks import grpo_task_count, prompt_dataset
from interplay.training.grpo_trainer import MultiTurnGRPOTrainer
from interplay.training.trl_internals import check_trl

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
      wrapper's forward (so do the held-out evaluation and RepExp's hidden states, with vLLM too), so it
      needs every parameter whole on each process.
    - Split groups: each process generates ``per_device_train_batch_size × steps_per_generation`` episodes
      per generation batch, consecutive groups of ``num_generations`` (TRL's ``RepeatSampler``). TRL itself
      only requires the *global* generation batch to hold whole groups (it gathers rewards before
      normalizing), but ``EpisodeReward`` and the exploration shapers run per process on the groups they
      see, so the local batch must hold whole groups too.
    """
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


def vllm_reply_args(config: GRPOTrainingConfig, args: GRPOConfig, tokenizer: Any,
                    generation_config: Any = None) -> GRPOConfig:
    """A copy of ``args`` for ``use_vllm``, where TRL's vLLM samples every reply of an episode: it stops where
    the chat template ends a turn (``generation_kwargs["stop_token_ids"]``, with the model's
    ``generation_config``'s own stop ids) and after ``max_new_tokens`` (``max_completion_length``, which TRL's
    vLLM uses per call, so per reply). ``args`` itself is left as it was."""
    if config.thinking_budget is not None:
        raise ValueError("thinking_budget is not supported with use_vllm=True (vLLM samples whole replies); "
                         "leave it None or train with use_vllm=False.")
    stops = ChatEncoder(tokenizer, config.chat_template_kwargs, stop_ids=generation_stop_ids(generation_config)).stop_ids
    kwargs = dict(args.generation_kwargs or {})
    kwargs["stop_token_ids"] = sorted(set(kwargs.get("stop_token_ids") or ()) | stops)
    replied = copy.copy(args)
    replied.generation_kwargs, replied.max_completion_length = kwargs, config.max_new_tokens
    return replied


def build_grpo_trainer(config: GRPOTrainingConfig, args: GRPOConfig, callbacks: Sequence[TrainerCallback] = ()
                       ) -> tuple[MultiTurnGRPOTrainer, HeldOutSuccessCallback]:
    """A ``GRPOTrainer`` wired for multi-turn episodes (plus the held-out success callback it logs with); it
    saves the reward shapers' state with each checkpoint (``RewardStateCheckpoints``)."""
    check_trl()
    check_launch(args)
    check_multiprocess(args)
    model, tokenizer, peft_config, adapters = start_model(config)
    if args.use_vllm:
        args = vllm_reply_args(config, args, tokenizer, model.generation_config)
    tasks = grpo_task_count(config.tasks, args.max_steps, args.per_device_train_batch_size, args.num_generations,
                            args.gradient_accumulation_steps, num_processes=args.world_size)
    heldout = HeldOutSuccessCallback(config.env, config.env_kwargs, tokenizer, config.eval_episodes, config.eval_every,
                                     config.max_turns, config.max_new_tokens, config.agent_kwargs())
    reward = EpisodeReward(config.exploration, credit=config.credit, turn_discount=config.turn_discount,
                           anchor_weight=config.anchor_weight, scale_steps=args.scale_rewards != "none")
    trainer = MultiTurnGRPOTrainer(model=model, episode_reward=reward, args=args,
                                   train_dataset=prompt_dataset(config.env, tasks, config.seed_start),
                                   processing_class=tokenizer, rollout_func=make_rollout_func(config),
                                   callbacks=[heldout, RewardStateCheckpoints(reward),
                                              *([adapters] if adapters else []), *callbacks],
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
        restore_reward_state(trainer.episode_reward, checkpoint, trainer.args.process_index)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(args.output_dir)
    adapters = next((c for c in trainer.callback_handler.callbacks if isinstance(c, AdapterBase)), None)
    if adapters is not None and trainer.is_world_process_zero():
        adapters.write(args.output_dir)
    return GRPOResult(args.output_dir, heldout.results, list(trainer.state.log_history), time.perf_counter() - started)
