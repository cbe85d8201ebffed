"""GRPO's prompt dataset: one row per training task, and how many tasks a run draws.

A row's prompt is a task key, ``"<env id> seed=<seed>"`` (``interplay.seeds.task_key``); TRL repeats each
prompt ``num_generations`` times, so the G episodes of a group reset with the same seed. Kept free of
torch and TRL imports: the pipeline sizes its seed blocks with ``grpo_task_count`` before any training.
"""

from __future__ import annotations

import os
from typing import Any

from interplay.seeds import parse_task_key, task_key, train_seeds


def parse_task_prompt(prompt: Any) -> tuple[str, int]:
    """``(env_id, seed)`` of a prompt-dataset row: a ``task_key`` without kwargs (they are the config's)."""
    parsed = parse_task_key(prompt)
    if parsed is None or parsed[2]:
        raise ValueError("GRPO prompts must be task keys like 'interplay/Maze-v0 seed=12' (interplay.seeds.task_key), "
                         f"got {prompt!r:.100}; build the dataset with interplay.training.grpo_tasks.prompt_dataset.")
    return parsed[0], parsed[1]


def prompt_dataset(env: str, n: int, seed_start: int) -> Any:
    """A ``datasets.Dataset`` of ``n`` task prompts of ``env`` on consecutive training seeds from ``seed_start``."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [task_key(env, s) for s in train_seeds(n, seed_start)]})


def launched_processes() -> int:
    """Processes this run was launched on: ``WORLD_SIZE`` as ``accelerate launch`` (and torchrun) set it, else 1."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))


def grpo_task_count(tasks: int | None, max_steps: int, per_device_train_batch_size: int, num_generations: int = 8,
                    gradient_accumulation_steps: int = 1, num_processes: int | None = None) -> int:
    """Training tasks (consecutive training seeds from ``GRPOTrainingConfig.seed_start``) a GRPO run draws.

    ``tasks`` when set; else one task per group of every step: ``max(1, max_steps) × max(1, per_device_train_batch_size
    × gradient_accumulation_steps × num_processes // num_generations)``, ``num_processes`` the data-parallel
    processes (``accelerate``'s ``num_processes``, the trainer's ``args.world_size``; default: as launched,
    ``launched_processes``). The trainer builds its prompt dataset with it and the pipeline sizes seed blocks
    with it, so that blocks of different seeds stay disjoint however many processes train.
    """
    if tasks:
        return int(tasks)
    processes = launched_processes() if num_processes is None else num_processes
    if processes < 1:
        raise ValueError(f"num_processes must be at least 1, got {processes!r}.")
    groups = per_device_train_batch_size * gradient_accumulation_steps * processes // num_generations
    return max(1, max_steps) * max(1, groups)
