"""The pipeline's stages as cached jobs (``interplay.experiments.jobs``): each trains from the previous
checkpoint (the RL stages from the SFT one) and evaluates on the held-out tasks.

A stage is the job ``stages/<stage>/`` of a run's directory: ``result.json`` + ``DONE``, ``train_log.jsonl``
(every log entry of its trainer), ``messages.log`` and ``episodes.jsonl`` (its evaluation episodes); its model
is ``checkpoints/<stage>/``. A finished stage is read back; an interrupted training resumes from its last
TRL checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interplay.experiments.jobs import Jobs, summary, train
from interplay.pipeline.presets import Preset, seeded_configs

STAGES = ("untrained", "sft", "grpo", "grpo_explore")


def evaluate_checkpoint(preset: Preset, model: str, trajectories: list[Any] | None = None,
                        progress: bool = True) -> dict[str, Any]:
    """Sampled evaluation (``k`` samples per held-out task) + coverage profile of one checkpoint, plus
    ``per_task_successes`` (for paired comparisons) and the report's summary keys. The episodes played
    are appended to ``trajectories`` when it is given."""
    from interplay.agents import HFAgent
    from interplay.evaluation import evaluate
    from interplay.rollout import Trajectory

    started = time.perf_counter()
    agent = HFAgent(model, temperature=1.0, max_new_tokens=preset.sft.max_new_tokens, seed=preset.seed)
    played: list[Trajectory] = []
    result = evaluate(preset.env, agent, preset.eval_tasks, preset.k, env_kwargs=dict(preset.sft.env_kwargs),
                      max_turns=preset.sft.max_turns, coverage=True, trajectories=played, progress=progress)
    per_task: dict[int, list[bool]] = {}
    for t in played:
        per_task.setdefault(t.seed, []).append(bool(t.success))
    if trajectories is not None:
        trajectories.extend(played)
    return {
        "pass_at_1": result["pass_at_k"]["1"],
        "pass_at_1_ci95": result["pass_at_k_ci95"]["1"],
        "pass_at_k": result["pass_at_k"][str(preset.k)],
        "pass_at_k_ci95": result["pass_at_k_ci95"][str(preset.k)],
        "k": preset.k,
        "coverage": result["coverage"],
        "mean_turns": result["mean_turns"],
        "success_by_turn": result["success_by_turn"],
        "eval_s": time.perf_counter() - started,
        "per_task_successes": [per_task[seed] for seed in sorted(per_task)],
        "turn_limit": turn_limits(played),
        "eval": result,
    }


def turn_limits(trajectories: list[Any]) -> dict[str, Any]:
    """The turn limits episodes were held to, read from their manifests: ``min`` and ``max`` over the
    episodes (equal for a fixed limit; a maze's default limit varies by task), and the wrappers applied."""
    limits = [t.manifest["turn_limit"] for t in trajectories]
    wrappers = {json.dumps(w, sort_keys=True) for t in trajectories for w in t.manifest["wrappers"]}
    return {"min": min(limits, default=None), "max": max(limits, default=None),
            "wrappers": [json.loads(w) for w in sorted(wrappers)]}


def task_report(preset: Preset, stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The task every stage played, as report.json writes it: the id with its registered kwargs and the
    preset's, the turn limit imposed from outside (``max_turns``; None: the environment's own), and per stage
    the limits its evaluation episodes were held to (``turn_limits``, read from their manifests)."""
    import gymnasium as gym

    return {"env": preset.env, "registered_kwargs": dict(gym.spec(preset.env).kwargs),
            "env_kwargs": dict(preset.sft.env_kwargs), "max_turns": preset.sft.max_turns,
            "turn_limits": {name: s.get("turn_limit") for name, s in stages.items()}}


def task_line(task: dict[str, Any]) -> str:
    """report.md's sentence on the task and the turn limits its episodes were held to."""
    kwargs = {**task["registered_kwargs"], **task["env_kwargs"]}
    limits = [lim for lim in task["turn_limits"].values() if lim and lim["min"] is not None]
    low, high = min((lim["min"] for lim in limits), default=None), max((lim["max"] for lim in limits), default=None)
    source = ("the environment's own limit" if task["max_turns"] is None else
              f"a TurnLimit of {task['max_turns']} on top of the environment's own")
    if low is None:  # results without manifests' limits (written before they were recorded)
        return f"Task `{task['env']}` with kwargs `{json.dumps(kwargs)}`; turn limit: {source}."
    held = f"{low}" if low == high else f"{low} to {high} (by task)"
    return (f"Task `{task['env']}` with kwargs `{json.dumps(kwargs)}`; every evaluation episode was held to "
            f"{held} turns ({source}), and training played the same task.")


def _what(preset: Preset, stage: str) -> str:
    """The stage in words, for its first log line."""
    return {"untrained": "evaluating the starting model",
            "sft": f"imitation: SFT on {preset.sft.episodes} expert episodes, {preset.sft_args['max_steps']} steps",
            "grpo": f"GRPO from the SFT checkpoint, {preset.grpo_args['max_steps']} steps x "
                    f"{preset.grpo_args['per_device_train_batch_size']} episodes",
            "grpo_explore": f"GRPO + {'+'.join(preset.exploration.methods)} from the SFT checkpoint, "
                            f"same budget"}[stage]


def _train(preset: Preset, stage: str, start: str, output_dir: Path, progress: bool, console: Any) -> dict[str, Any]:
    """Train a stage from ``start`` into ``output_dir``. Both RL stages: the same config, tasks and budget; only
    the exploration shaper differs."""
    sft, grpo, sft_args, grpo_args = seeded_configs(preset)
    if stage == "sft":
        kind, config = "sft", dataclasses.replace(sft, model=start)
        kwargs = {"save_total_limit": 1, "logging_steps": max(1, min(10, sft_args["max_steps"] // 10)), **sft_args}
    else:
        kind, config = "grpo", dataclasses.replace(grpo, model=start,
                                                   exploration=preset.exploration if stage == "grpo_explore" else None)
        kwargs = {"save_total_limit": 1, **grpo_args}
    result = train(kind, config, output_dir, {**kwargs, "disable_tqdm": not progress}, console=console, resume=True)
    return {**summary(result), "config": dataclasses.asdict(config)}


def run_stage(preset: Preset, stage: str, out: Path, model: str, progress: bool = True,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run one stage (train if it trains, then evaluate), or read its result back if it is done.

    The terminal gets ``log`` lines and, with ``progress``, a training bar with the live figures
    (``TrainingConsole``) and the evaluation's bar. The trainer's log entries go to
    ``stages/<stage>/train_log.jsonl``; library warnings and messages to ``stages/<stage>/messages.log``.
    """
    from interplay.training.common import TrainingConsole

    jobs, out = Jobs(Path(out) / "stages"), Path(out)
    label = f"[{STAGES.index(stage) + 1}/{len(STAGES)}] {stage}"
    if jobs.done(stage):
        result = jobs.result(stage)
        log(f"{label}: done before, skipped (pass@1 {result['pass_at_1']:.3f})")
        return result
    checkpoint = out / "checkpoints" / stage
    start = model if stage in ("untrained", "sft") else str(out / "checkpoints" / "sft")
    log(f"{label}: {_what(preset, stage)}")

    def compute(folder: Path) -> dict[str, Any]:
        started = time.perf_counter()
        trained: dict[str, Any] = {"train_s": 0.0, "log_history": [], "heldout": []}
        if stage != "untrained":
            console = TrainingConsole(folder / "train_log.jsonl", label, bar=progress)
            trained = _train(preset, stage, start, checkpoint, progress, console)
        played: list[Any] = []
        model_dir = start if stage == "untrained" else str(checkpoint)
        evaluated = evaluate_checkpoint(preset, model_dir, trajectories=played, progress=progress)
        _save_episodes(out, stage, preset, played)
        for stale in checkpoint.glob("checkpoint-*"):  # the final model is saved; resume points are not needed
            shutil.rmtree(stale, ignore_errors=True)
        return {"stage": stage, "model": model_dir, **evaluated, **trained, "wall_s": time.perf_counter() - started}

    result = jobs.run(stage, compute)
    log(f"{label}: finished in {result['wall_s']:.0f} s: pass@1 {result['pass_at_1']:.3f}, "
        f"pass@{preset.k} {result['pass_at_k']:.3f}, mean turns {result['mean_turns']:.2f}")
    return result


def _save_episodes(out: Path, stage: str, preset: Preset, played: list[Any]) -> None:
    """A stage's evaluation episodes: ``stages/<stage>/episodes.jsonl`` and the page ``<stage>_episodes.html``."""
    from interplay.rollout import save_trajectories
    from interplay.viewer import write_html

    save_trajectories(out / "stages" / stage / "episodes.jsonl", played)
    write_html(out / f"{stage}_episodes.html", played, title=f"{stage}: evaluation episodes on {preset.env}")
