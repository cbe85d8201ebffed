"""Imitation: supervised fine-tuning on expert play with TRL's ``SFTTrainer`` (offline or DAgger).

Offline (behaviour cloning): play ``episodes`` expert episodes on fresh training seeds
(``interplay.seeds``) with ``ExpertAgent`` and feed their exact token ids to ``SFTTrainer`` as a
pre-tokenized dataset: ``input_ids`` = prompt + completion, ``labels`` = the ids on the expert's reply
tokens and their end token, -100 elsewhere (so the loss is on agent tokens only), length-bucketed batches
(``train_sampling_strategy="group_by_length"``: batches of similar lengths waste little compute on padding).

DAgger (Ross, Gordon & Bagnell 2011, "A Reduction of Imitation Learning ... to No-Regret Online
Learning"): after the offline phase, each round plays the current learner on fresh training seeds,
labels every state it visited with the environment's ``expert_action()`` there, aggregates
(state, expert reply) rows with all data so far and trains ``dagger_steps`` more steps. A row is
the learner's own token history up to that turn (no loss) followed by the expert's reply (loss).

Usage::

    result = train_imitation(ImitationConfig(env="interplay/Maze-v0", model="tiny"),
                             SFTConfig(output_dir="runs/sft", **SFT_DEFAULTS))
    model, tokenizer = interplay.models.load("runs/sft")
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from interplay.agents.base import Agent, ExpertAgent, Reply, Session
from interplay.agents.chat import ChatEncoder, Message
from interplay.rollout import EnvSpec, Trajectory, rollout
from interplay.seeds import train_seeds
from interplay.training.common import (
    HeldOutSuccessCallback,
    check_launch,
    start_model,
    use_console,
    with_bf16_where_supported,
)
from interplay.training.config import ImitationConfig

#: The SFT hyperparameters measured to learn with the tiny model on a CPU (benchmarks/RESULTS.md); see
#: ``sft_defaults``.
SFT_DEFAULTS: dict[str, Any] = {
    "learning_rate": 2e-3,
    "adam_beta1": 0.9,
    "adam_beta2": 0.98,
    "weight_decay": 0.01,
    "warmup_steps": 30,
    "lr_scheduler_type": "constant_with_warmup",
    "per_device_train_batch_size": 64,
    "max_grad_norm": 1.0,
    "max_steps": 150,
    "train_sampling_strategy": "group_by_length",
    "logging_steps": 10,
    "save_strategy": "steps",
    "save_steps": 50,
    "save_total_limit": 2,
    "report_to": "none",
    "max_length": None,
    "dataset_num_proc": None,
    "gradient_checkpointing": False,  # TRL defaults to True: slower steps, to save memory a small model does not need
}


def sft_defaults(**overrides: Any) -> dict[str, Any]:
    """``SFT_DEFAULTS`` for TRL's ``SFTConfig``, bf16 where a GPU supports it."""
    return with_bf16_where_supported(SFT_DEFAULTS, **overrides)


def _row(input_ids: list[int], agent_mask: list[int]) -> dict[str, list[int]]:
    # Labels -100 off the agent's tokens: what SFTTrainer builds from `assistant_masks`, done here so the
    # dataset is ready as is and DAgger rounds can swap it into a live trainer.
    return {"input_ids": input_ids, "labels": [i if bit else -100 for i, bit in zip(input_ids, agent_mask)]}


def sequence_rows(trajectories: Sequence[Trajectory]) -> list[dict[str, list[int]]]:
    """Pre-tokenized SFT rows: the episode's exact ids, loss on the agent's tokens (+ their end token) only."""
    rows = []
    for t in trajectories:
        if not t.completion_ids:
            raise ValueError(f"trajectory of {t.env_id} (seed {t.seed}) has no token ids: roll out with tokenizer=.")
        rows.append(_row(t.prompt_ids + t.completion_ids, [0] * len(t.prompt_ids) + list(t.agent_mask)))
    return rows


def expert_dataset(config: ImitationConfig, tokenizer: Any, seed_start: int | None = None,
                   progress: bool = False) -> list[Trajectory]:
    """``config.episodes`` expert episodes on consecutive training seeds (cycling over the first ``config.tasks``
    of them where set), with ``tokenizer``'s ids."""
    start = config.seed_start if seed_start is None else seed_start
    spec = EnvSpec(config.env, dict(config.env_kwargs))
    seeds = train_seeds(config.tasks or config.episodes, start)
    seeds = [seeds[i % len(seeds)] for i in range(config.episodes)]
    trajectories = rollout(spec, ExpertAgent(), seeds=seeds, max_turns=config.max_turns,
                           tokenizer=ChatEncoder(tokenizer, config.chat_template_kwargs), progress=progress,
                           env_workers=config.env_workers)
    if not any(t.success for t in trajectories):
        raise ValueError(f"the expert of {config.env} never succeeded in {len(trajectories)} episodes: "
                         "check env_kwargs / max_turns.")
    return trajectories


class _LabelingSession(Session):
    """The learner acts; the expert's reply at every visited state is recorded per row."""

    def __init__(self, inner: Session, labels: dict[int, list[str | None]]) -> None:
        super().__init__(len(inner.live))
        self.inner, self.labels = inner, labels

    def act(self, new_messages: dict[int, list[Message]],
            expert_actions: dict[int, str | None] | None = None) -> dict[int, Reply]:
        for row in new_messages:
            self.labels.setdefault(row, []).append((expert_actions or {}).get(row))
        return self.inner.act(new_messages)

    def drop(self, rows: Any) -> None:
        rows = list(rows)
        super().drop(rows)
        self.inner.drop(rows)

    def close(self) -> None:
        self.inner.close()


class ExpertLabeler(Agent):
    """Wraps a model agent for DAgger: the learner plays, and in a rollout (``start``: one session per batch of
    episodes) ``labels[row][turn]`` records the expert's reply at each state the learner visited."""

    wants_expert_actions = True

    def __init__(self, learner: Any) -> None:
        self.learner, self.name = learner, learner.name
        self.tokenizer, self.encoder = learner.tokenizer, learner.encoder  # rollout records the learner's ids
        self.labels: dict[int, list[str | None]] = {}

    def act(self, histories: list[list[Message]], expert_actions: list[str | None] | None = None) -> list[Reply]:
        """The learner's replies. Labels belong to episodes, which only a session follows: nothing is recorded here."""
        return self.learner.act(histories)

    def start(self, n: int) -> Session:
        self.labels = {}
        return _LabelingSession(self.learner.start(n), self.labels)

    def sampling_params(self) -> dict[str, Any]:
        return self.learner.sampling_params()


def dagger_rows(trajectories: Sequence[Trajectory], labels: dict[int, list[str | None]],
                encoder: ChatEncoder) -> list[dict[str, list[int]]]:
    """One row per visited state: the learner's ids up to that turn (no loss) + the expert's reply
    (``encoder``: the learner's, so the reply ends with its end-of-turn id)."""
    rows = []
    for index, t in enumerate(trajectories):
        starts = [start for start, _, by_agent in t.spans() if by_agent]
        for start, label in zip(starts, labels.get(index, [])):
            if label is None:
                continue
            reply = encoder.reply_ids(label)
            prefix = t.prompt_ids + t.completion_ids[:start]
            rows.append(_row(prefix + reply, [0] * len(prefix) + [1] * len(reply)))
    return rows


@dataclass
class ImitationResult:
    output_dir: str
    heldout: list[dict[str, Any]]  # held-out scores: {"step", "round", "heldout/success_rate", ...}
    log_history: list[dict[str, Any]]  # the trainer's log entries, every phase
    dataset_rows: int
    seconds: float


def train_imitation(config: ImitationConfig, args: SFTConfig, resume: str | bool | None = None,
                    callbacks: Sequence[TrainerCallback] = (), progress: bool = True,
                    console: TrainerCallback | None = None) -> ImitationResult:
    """Collect expert data, train with ``SFTTrainer`` (then DAgger rounds when ``mode="dagger"``), save
    model + tokenizer to ``args.output_dir`` (loadable with ``interplay.models.load``).

    ``progress``: progress bars over the episodes played (expert data, DAgger rounds). ``console``: a callback
    shown in place of the trainer's own terminal output (``interplay.training.common.use_console``).
    """
    from datasets import Dataset

    started = time.perf_counter()
    check_launch(args)
    model, tokenizer, peft_config, adapters = start_model(config)
    rows = sequence_rows(expert_dataset(config, tokenizer, progress=progress))
    heldout = HeldOutSuccessCallback(config.env, config.env_kwargs, tokenizer, config.eval_episodes,
                                     config.eval_every, config.max_turns, config.max_new_tokens, config.agent_kwargs())
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         callbacks=[heldout, *([adapters] if adapters else []), *callbacks], peft_config=peft_config)
    use_console(trainer, console)
    heldout.trainer = trainer
    trainer.train(resume_from_checkpoint=resume)
    history = list(trainer.state.log_history)
    if config.mode == "dagger":
        history += _dagger(config, trainer, rows, heldout, progress)
    trainer.save_model(args.output_dir)
    if adapters is not None and trainer.is_world_process_zero():
        adapters.write(args.output_dir)
    return ImitationResult(args.output_dir, heldout.results, history, trainer.train_dataset.num_rows,
                           time.perf_counter() - started)


def _dagger(config: ImitationConfig, trainer: SFTTrainer, rows: list[dict[str, list[int]]],
            heldout: HeldOutSuccessCallback, progress: bool) -> list[dict[str, Any]]:
    """DAgger rounds on a trained ``trainer``: the optimizer and its state carry over between rounds."""
    from datasets import Dataset

    from interplay.agents.hf import HFAgent

    history = []
    # Each round is a fresh `train()` (new scheduler): no second warmup on an already trained model.
    trainer.args.max_steps, trainer.args.warmup_steps = config.dagger_steps, 0
    spec = EnvSpec(config.env, dict(config.env_kwargs))
    next_seed = config.seed_start + config.episodes
    for round_ in range(1, config.dagger_rounds + 1):
        learner = HFAgent(trainer.model, trainer.processing_class, temperature=config.dagger_temperature,
                          max_new_tokens=config.max_new_tokens, **config.agent_kwargs())
        labeler = ExpertLabeler(learner)
        played = rollout(spec, labeler, seeds=train_seeds(config.dagger_episodes, next_seed),
                         max_turns=config.max_turns, progress=progress, env_workers=config.env_workers)
        next_seed += config.dagger_episodes
        rows = rows + dagger_rows(played, labeler.labels, learner.encoder)
        trainer.train_dataset = Dataset.from_list(rows)
        first = len(heldout.results)
        trainer.train()
        for result in heldout.results[first:]:
            result["round"] = round_
        success = sum(t.success for t in played) / len(played)
        history += [{**entry, "dagger_round": round_} for entry in trainer.state.log_history]
        history.append({"dagger_round": round_, "dagger/learner_success_rate": success, "dagger/rows": len(rows)})
    return history
