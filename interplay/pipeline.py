"""The imitation → RL → exploration pipeline: one command that tells the whole story on one environment.

Stages, each from the previous checkpoint, all evaluated on the same held-out tasks (EVAL seeds):

1. ``untrained``: the starting model as it is.
2. ``sft``: imitation, SFT on expert episodes (``interplay.training.imitation``).
3. ``grpo``: multi-turn GRPO from the SFT checkpoint (``interplay.training.grpo``).
4. ``grpo_explore``: GRPO + an exploration shaper, from the SAME SFT checkpoint, at the SAME budget
   (steps, episodes per step, learning rate, training tasks), so the two RL stages differ only by it.

Each checkpoint plays every held-out task ``k`` times (sampling at temperature 1): pass@1 and the
unbiased pass@k with 95% intervals across tasks, success by turn (by attempt in feedback games), mean
turns, and the coverage profile Pcov(N) against the expert (``interplay.evaluation.evaluate``).
Stage-to-stage differences get paired intervals (``interplay.metrics.compare_pass_at_k``).
Every stage plays one task (the preset's env id and kwargs, its turn limit included); report.json's
``task`` names it and the turn limits the episodes were held to, read from their manifests.

The output directory holds ``report.md``, ``report.json``, PNG plots, and per stage
``<name>_episodes.html`` (its evaluation episodes, ``interplay.viewer``), ``stages/<name>/``
(``result.json``, ``episodes.jsonl`` + a ``DONE`` marker; ``train_log.jsonl``, every log entry of the
stage's trainer; ``messages.log``, the libraries' warnings and messages) and ``checkpoints/<name>/``.
The terminal gets a line per stage event and progress bars only. A rerun skips finished stages and
resumes an interrupted training from its last saved TRL checkpoint.

Seeds and studies: ``Preset.seed`` drives everything random in a run (``seeded_configs``), and
``with_overrides`` replaces the seed, steps, learning rates and exploration of a preset (the CLI's
``--seed``, ``--sft-steps``, ``--grpo-steps``, ``--sft-lr``, ``--grpo-lr``, ``--exploration``).
``run_seeds`` (``--seeds N``) makes N independent runs in ``seed_<S>/`` sub-directories and writes a
report with every figure's mean and 95% interval over seeds beside each seed's intervals over tasks.

Usage::

    result = run_pipeline("codebreaker", "runs/demo")      # or: interplay pipeline --preset codebreaker --out DIR
    print(result["report_md"])
    run_seeds(with_overrides(get_preset("maze"), grpo_steps=40), "runs/maze-seeds", seeds=3)
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interplay.training.config import GRPOTrainingConfig, ImitationConfig, LoraSettings
from interplay.training.exploration import ExplorationConfig
from interplay.training.grpo_tasks import grpo_task_count

STAGES = ("untrained", "sft", "grpo", "grpo_explore")
DONE = "DONE"
#: Pcov(N) columns of the report table (the JSON has the whole grid).
REPORT_COVERAGE_N = ("2", "16", "256", "65536")


@dataclass(frozen=True)
class Preset:
    """Everything one pipeline run depends on: the configs its stages run with, and the evaluation's size.

    Args:
        name, description: how the preset is listed.
        sft: the imitation stage's config. Its ``env`` and ``env_kwargs`` are the task every stage trains on
            and is evaluated on (the environment needs an expert, for SFT and coverage); its ``model`` is the
            starting model (``--model`` overrides it).
        sft_args: TRL ``SFTConfig`` kwargs on top of the SFT defaults (``max_steps`` and
            ``per_device_train_batch_size`` required; ``output_dir`` is the pipeline's).
        grpo: the config of both RL stages. ``env``, ``env_kwargs``, ``max_new_tokens`` and ``max_turns``
            must equal ``sft``'s, and ``seed_start`` must be past SFT's training seeds (both checked); its
            ``model`` is not used (the RL stages start from the SFT checkpoint), nor its ``exploration``.
            LoRA (``lora`` of both configs): a LoRA SFT stage saves an adapter; RL stages with LoRA too
            continue training that adapter (same rank and alpha, checked), RL stages without merge it into
            the base and train all the weights (``interplay.training.common.start_model``).
        grpo_args: TRL ``GRPOConfig`` kwargs on top of the GRPO defaults (``max_steps`` and
            ``per_device_train_batch_size`` required), the same budget for both RL stages.
        exploration: what ``grpo_explore`` adds to ``grpo``; nothing else differs between the RL stages.
        eval_tasks, k: held-out tasks and samples per task (pass@k up to k). Evaluation plays the task with
            ``sft``'s ``max_new_tokens`` and ``max_turns`` (None: the environment's own turn limit).
        notes: where the numbers come from.
        seed: drives everything random in a run (``seeded_configs``): TRL's ``seed`` and ``data_seed`` of both
            trainers (model-side randomness, data order, GRPO's sampling through torch's global generator), the
            block of training tasks (SFT's expert episodes and GRPO's prompts shift by ``seed`` times the span
            they use, so seeds train on disjoint tasks) and the sampling generator of the evaluation agents.
            The held-out tasks and the starting model stay the same, so seeds compare on the same tasks.
            Set it with ``with_overrides``; ``sft_args``/``grpo_args`` must not hold ``seed``/``data_seed``.
    """

    name: str
    description: str
    sft: ImitationConfig
    sft_args: dict[str, Any]
    grpo: GRPOTrainingConfig
    grpo_args: dict[str, Any]
    exploration: ExplorationConfig = field(default_factory=lambda: ExplorationConfig(methods=["outcome_count"]))
    eval_tasks: int = 100
    k: int = 8
    notes: str = ""
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"preset {self.name!r}: seed must be an integer >= 0, got {self.seed!r}.")
        for stage, args in (("sft", self.sft_args), ("grpo", self.grpo_args)):
            fixed = sorted({"seed", "data_seed"} & set(args))
            if fixed:
                raise ValueError(f"preset {self.name!r}: {stage}_args must not set {fixed}; the preset's seed "
                                 "(--seed) sets them.")
        # One task for every stage and for evaluation, or the stages' numbers do not compare.
        differ = [name for name in ("env", "env_kwargs", "max_new_tokens", "max_turns")
                  if getattr(self.sft, name) != getattr(self.grpo, name)]
        if differ:
            raise ValueError(f"preset {self.name!r}: sft and grpo must play the same task, but their "
                             f"{', '.join(differ)} differ.")
        sft_lora, grpo_lora = self.sft.lora, self.grpo.lora
        if sft_lora.enabled and grpo_lora.enabled and (sft_lora.r, sft_lora.scale_alpha) != (grpo_lora.r,
                                                                                              grpo_lora.scale_alpha):
            raise ValueError(f"preset {self.name!r}: the RL stages continue the SFT stage's LoRA adapter, so their "
                             f"lora r and alpha must be SFT's ({sft_lora.r}, {sft_lora.scale_alpha:g}); got "
                             f"{grpo_lora.r}, {grpo_lora.scale_alpha:g}. (grpo lora r=0: merge it, train all weights.)")
        for stage, args in (("sft", self.sft_args), ("grpo", self.grpo_args)):
            missing = {"max_steps", "per_device_train_batch_size"} - set(args)
            if missing:
                raise ValueError(f"preset {self.name!r}: {stage}_args needs {sorted(missing)}.")
        used = self.sft.episodes + (self.sft.dagger_rounds * self.sft.dagger_episodes if self.sft.mode == "dagger" else 0)
        if self.grpo.seed_start < self.sft.seed_start + used:
            raise ValueError(f"preset {self.name!r}: grpo.seed_start {self.grpo.seed_start} reuses SFT's training "
                             f"seeds; use {self.sft.seed_start + used} or more.")

    @property
    def env(self) -> str:
        """The task's environment id (``sft.env``, which every stage plays)."""
        return self.sft.env

    @property
    def model(self) -> str:
        """The starting model (``sft.model``)."""
        return self.sft.model


CODEBREAKER = "interplay/CodeBreaker-v0"
SMOLLM2_MATH_KWARGS = {"difficulty": 1, "expert_shows_solution": True}
# No system prompt or "(n attempts left)" notes: ~3x shorter sequences, and SFT learns the hints in ~100 steps
# instead of plateauing for 300 (measured with the tiny model).
CODEBREAKER_KWARGS = {"instructions": False}

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="codebreaker",
            description="CodeBreaker-v0 (3-digit code, digit-wise hints, 4 attempts), tiny model, imitation stopped "
                        "early; ~4 min on 2 CPU cores",
            # SFT stops at 100 of the 150 steps that saturate it (pass@8 100%, coverage 0 at every N): the stages
            # then differ in pass@k and coverage, and RL has room (measured, README "Tutorial").
            sft=ImitationConfig(env=CODEBREAKER, env_kwargs=dict(CODEBREAKER_KWARGS), max_new_tokens=5,
                                eval_episodes=40, episodes=150 * 64),
            sft_args={"max_steps": 100, "per_device_train_batch_size": 64, "learning_rate": 2e-3,
                      "warmup_steps": 30, "save_steps": 50},
            grpo=GRPOTrainingConfig(env=CODEBREAKER, env_kwargs=dict(CODEBREAKER_KWARGS), max_new_tokens=5,
                                    eval_episodes=40, seed_start=150 * 64),
            grpo_args={"max_steps": 30, "per_device_train_batch_size": 64, "num_generations": 8,
                       "learning_rate": 3e-4, "save_steps": 50},
            exploration=ExplorationConfig(methods=["outcome_count"], weights={"outcome_count": 0.1}),
            eval_tasks=200, k=8,
            notes="make demo: the README tutorial's table, regenerated by tools/readme_figures.py from its report",
        ),
        Preset(
            name="maze",
            description="Maze-4x4-v0 (4x4, compact observation, 12 moves), tiny model, ~11 min on 2 CPU cores",
            # The task's id says everything, the 12-turn limit measured for GRPO included: every stage and
            # the evaluation play it, and its observation states it.
            sft=ImitationConfig(env="interplay/Maze-4x4-v0", max_new_tokens=3, eval_episodes=40, episodes=150 * 64),
            sft_args={"max_steps": 150, "per_device_train_batch_size": 64, "learning_rate": 2e-3,
                      "warmup_steps": 30, "save_steps": 50},
            grpo=GRPOTrainingConfig(env="interplay/Maze-4x4-v0", max_new_tokens=3, eval_episodes=40,
                                    seed_start=150 * 64),
            grpo_args={"max_steps": 20, "per_device_train_batch_size": 64, "num_generations": 8,
                       "learning_rate": 3e-4, "save_steps": 50},
            exploration=ExplorationConfig(methods=["outcome_count"], weights={"outcome_count": 0.1}),
            eval_tasks=100, k=8,
            notes="CLI defaults measured on Maze-v0 4x4 (GRPO capped at 12 turns): SFT 150 steps 56% greedy in "
                  "~250 s; GRPO 20 steps 67% in ~100 s",
        ),
        Preset(
            name="smollm2-math",
            description="MathFeedback-v0 difficulty 1 (3 attempts with a teacher's feedback), SmolLM2-135M-Instruct "
                        "with a LoRA adapter (r 16, every linear layer); 45-50 min on 2 CPU cores",
            # The real model solves about a fifth of these untrained (interplay bench), so every stage has room.
            # The expert writes its one-line working before the boxed answer: something for SFT to imitate.
            sft=ImitationConfig(env="interplay/MathFeedback-v0", env_kwargs=dict(SMOLLM2_MATH_KWARGS),
                                model="smollm2-135m", max_new_tokens=48, eval_episodes=8, episodes=32 * 16,
                                lora=LoraSettings(r=16)),
            sft_args={"max_steps": 32, "per_device_train_batch_size": 16, "learning_rate": 2e-4,
                      "warmup_steps": 4, "save_steps": 16},
            grpo=GRPOTrainingConfig(env="interplay/MathFeedback-v0", env_kwargs=dict(SMOLLM2_MATH_KWARGS),
                                    max_new_tokens=48, eval_episodes=8, seed_start=32 * 16, lora=LoraSettings(r=16)),
            grpo_args={"max_steps": 8, "per_device_train_batch_size": 16, "num_generations": 4,
                       "learning_rate": 1e-4, "save_steps": 4},
            exploration=ExplorationConfig(methods=["outcome_count"], weights={"outcome_count": 0.1}),
            eval_tasks=64, k=4,
            notes="the README's real-model table, regenerated by tools/readme_figures.py from its report",
        ),
        Preset(
            name="tiny-test",
            description="the smallest end-to-end run (CodeBreaker, a few steps each): for the test suite",
            sft=ImitationConfig(env=CODEBREAKER, env_kwargs=dict(CODEBREAKER_KWARGS), max_new_tokens=4,
                                eval_episodes=2, episodes=3 * 8),
            sft_args={"max_steps": 3, "per_device_train_batch_size": 8, "learning_rate": 2e-3, "warmup_steps": 0,
                      "save_steps": 1},
            grpo=GRPOTrainingConfig(env=CODEBREAKER, env_kwargs=dict(CODEBREAKER_KWARGS), max_new_tokens=4,
                                    eval_episodes=2, seed_start=3 * 8),
            grpo_args={"max_steps": 2, "per_device_train_batch_size": 8, "num_generations": 4,
                       "learning_rate": 3e-4, "save_steps": 1},
            exploration=ExplorationConfig(methods=["outcome_count"]),
            eval_tasks=6, k=4,
            notes="checks the machinery, not learning",
        ),
        Preset(
            name="gpu",
            description="Qwen/Qwen2.5-0.5B-Instruct on MathFeedback-v0, bf16, one GPU (not run on CPU machines)",
            sft=ImitationConfig(env="interplay/MathFeedback-v0", model="Qwen/Qwen2.5-0.5B-Instruct",
                                max_new_tokens=256, eval_episodes=100, episodes=300 * 16),
            sft_args={"max_steps": 300, "per_device_train_batch_size": 16, "learning_rate": 1e-5,
                      "warmup_steps": 20, "save_steps": 50, "bf16": True},
            grpo=GRPOTrainingConfig(env="interplay/MathFeedback-v0", max_new_tokens=256, eval_episodes=100,
                                    seed_start=300 * 16),
            grpo_args={"max_steps": 200, "per_device_train_batch_size": 64, "num_generations": 8,
                       "learning_rate": 1e-6, "save_steps": 50, "bf16": True},
            exploration=ExplorationConfig(methods=["pkpo"], params={"pkpo": {"k": 4}}),
            eval_tasks=500, k=16,
            notes="documented, not measured here: a downloaded HF model needs the hub (or a local copy)",
        ),
    )
}


#: What ``with_overrides`` accepts, and the flag of ``interplay pipeline`` for each.
OVERRIDES = {"seed": "--seed", "sft_steps": "--sft-steps", "grpo_steps": "--grpo-steps", "sft_lr": "--sft-lr",
             "grpo_lr": "--grpo-lr", "exploration": "--exploration"}


def with_overrides(preset: Preset, **overrides: Any) -> Preset:
    """``preset`` with some settings replaced (``dataclasses.replace``), validated with clear errors.

    ``seed`` (int >= 0), ``sft_steps`` / ``grpo_steps`` (optimizer steps, ints >= 1; SFT keeps its expert
    episodes, both RL stages get the new budget), ``sft_lr`` / ``grpo_lr`` (learning rates, > 0),
    ``exploration`` (what ``grpo_explore`` adds: an ``ExplorationConfig`` or its short form, e.g.
    ``"outcome_count:0.1"``). None leaves a setting as the preset has it. The description records what
    changed, and report.json's ``preset_config`` holds the configs the run used.
    """
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ValueError(f"unknown override(s) {unknown}; choose from {sorted(OVERRIDES)}.")
    given = {name: value for name, value in overrides.items() if value is not None}
    if not given:
        return preset

    def bad(name: str, wanted: str) -> ValueError:
        return ValueError(f"{OVERRIDES[name]} must be {wanted}, got {given[name]!r}.")

    changes: dict[str, Any] = {}
    sft_args, grpo_args = dict(preset.sft_args), dict(preset.grpo_args)
    for name, value in given.items():
        if name in ("seed", "sft_steps", "grpo_steps"):
            low = 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise bad(name, f"an integer >= {low}")
        elif name in ("sft_lr", "grpo_lr"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise bad(name, "a positive number")
    if "seed" in given:
        changes["seed"] = given["seed"]
    if "sft_steps" in given:
        sft_args["max_steps"] = given["sft_steps"]
    if "grpo_steps" in given:
        grpo_args["max_steps"] = given["grpo_steps"]
    if "sft_lr" in given:
        sft_args["learning_rate"] = float(given["sft_lr"])
    if "grpo_lr" in given:
        grpo_args["learning_rate"] = float(given["grpo_lr"])
    if "exploration" in given:
        exploration = given["exploration"]
        if isinstance(exploration, str):
            try:
                exploration = ExplorationConfig.from_spec(exploration)
            except (ValueError, KeyError) as error:
                raise ValueError(f"--exploration {given['exploration']!r}: {error}") from None
        if not isinstance(exploration, ExplorationConfig) or not exploration.methods:
            raise bad("exploration", "at least one method, e.g. 'outcome_count:0.1'")
        changes["exploration"] = exploration
    changed = ", ".join(f"{name}={value}" if not isinstance(value, ExplorationConfig) else f"{name}={given[name]}"
                        for name, value in given.items() if name != "seed")
    description = f"{preset.description}; overrides: {changed}" if changed else preset.description
    return dataclasses.replace(preset, sft_args=sft_args, grpo_args=grpo_args, description=description, **changes)


def _grpo_tasks(preset: Preset, num_processes: int | None = None) -> int:
    """Training tasks the RL stages draw, counted as ``train_grpo`` counts them (``grpo_task_count``): on
    ``num_processes`` processes, by default as many as this run was launched on."""
    args = preset.grpo_args
    return grpo_task_count(preset.grpo.tasks, args["max_steps"], args["per_device_train_batch_size"],
                           args.get("num_generations", 8), args.get("gradient_accumulation_steps", 1), num_processes)


def seeded_configs(preset: Preset) -> tuple[ImitationConfig, GRPOTrainingConfig, dict[str, Any], dict[str, Any]]:
    """The SFT and GRPO configs and TRL kwargs of a run with ``preset.seed``.

    Seed S shifts both stages' training seeds by S times the span they use together (so seeds train on
    disjoint blocks of tasks; seed 0 uses the preset's own), and sets TRL's ``seed`` and ``data_seed`` to S.
    """
    from interplay.seeds import EVAL_SEED_START

    tasks = _grpo_tasks(preset)
    span = preset.grpo.seed_start + tasks - preset.sft.seed_start
    offset = preset.seed * span
    if preset.grpo.seed_start + offset + tasks > EVAL_SEED_START:
        raise ValueError(f"preset {preset.name!r}: seed {preset.seed} would train on tasks past the training seed "
                         f"range (each seed uses {span} training tasks, below {EVAL_SEED_START}); use a seed below "
                         f"{(EVAL_SEED_START - preset.sft.seed_start) // span}.")
    sft = dataclasses.replace(preset.sft, seed_start=preset.sft.seed_start + offset)
    grpo = dataclasses.replace(preset.grpo, seed_start=preset.grpo.seed_start + offset)
    seeds = {"seed": preset.seed, "data_seed": preset.seed}
    return sft, grpo, {**preset.sft_args, **seeds}, {**preset.grpo_args, **seeds}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a clear error listing the presets otherwise."""
    if name not in PRESETS:
        listed = "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())
        raise ValueError(f"unknown preset {name!r}; choose one of: {listed}.")
    return PRESETS[name]


# ---------------------------------------------------------------------------------------------- stages
def stage_done(out: Path, stage: str) -> bool:
    return (out / "stages" / stage / DONE).exists()


def _load_stage(out: Path, stage: str) -> dict[str, Any]:
    return json.loads((out / "stages" / stage / "result.json").read_text())


def _finish_stage(out: Path, stage: str, result: dict[str, Any]) -> dict[str, Any]:
    folder = out / "stages" / stage
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    (folder / DONE).write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))  # written last: the stage is complete
    return result


def _latest_checkpoint(output_dir: Path) -> str | None:
    """The last TRL checkpoint of an interrupted training, which ``train(resume_from_checkpoint=)`` takes."""
    checkpoints = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


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


def _sft(preset: Preset, model: str, output_dir: Path, progress: bool, console: Any) -> dict[str, Any]:
    from trl import SFTConfig

    from interplay.training.imitation import sft_defaults, train_imitation

    sft, _, sft_args, _ = seeded_configs(preset)
    config = dataclasses.replace(sft, model=model)
    args = SFTConfig(output_dir=str(output_dir), **sft_defaults(**{
        "save_total_limit": 1, "logging_steps": max(1, min(10, sft_args["max_steps"] // 10)),
        **sft_args, "disable_tqdm": not progress}))
    # The console's bar is the stage's: no second bar over the expert episodes.
    result = train_imitation(config, args, resume=_latest_checkpoint(output_dir), progress=False, console=console)
    return {"train_s": result.seconds, "log_history": result.log_history, "heldout": result.heldout,
            "config": dataclasses.asdict(config)}


def _grpo(preset: Preset, model: str, output_dir: Path, progress: bool, explore: bool,
          console: Any) -> dict[str, Any]:
    from trl import GRPOConfig

    from interplay.training.grpo import grpo_defaults, train_grpo

    # Both RL stages: the same config, tasks and budget; only the exploration shaper differs.
    _, grpo, _, grpo_args = seeded_configs(preset)
    config = dataclasses.replace(grpo, model=model, exploration=preset.exploration if explore else None)
    args = GRPOConfig(output_dir=str(output_dir), **grpo_defaults(**{
        "save_total_limit": 1, **grpo_args, "disable_tqdm": not progress}))
    result = train_grpo(config, args, resume=_latest_checkpoint(output_dir), console=console)
    return {"train_s": result.seconds, "log_history": result.log_history, "heldout": result.heldout,
            "config": dataclasses.asdict(config)}


def run_stage(preset: Preset, stage: str, out: Path, model: str, progress: bool = True,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run one stage (train if it trains, then evaluate), or read its result back if it is done.

    The terminal gets ``log`` lines and, with ``progress``, a training bar with the live figures
    (``TrainingConsole``) and the evaluation's bar. The trainer's log entries go to
    ``stages/<stage>/train_log.jsonl``; library warnings and messages to ``stages/<stage>/messages.log``.
    """
    from interplay.training.common import TrainingConsole, library_output_to

    index = STAGES.index(stage) + 1
    if stage_done(out, stage):
        result = _load_stage(out, stage)
        log(f"[{index}/{len(STAGES)}] {stage}: done before, skipped (pass@1 {result['pass_at_1']:.3f})")
        return result
    checkpoint = out / "checkpoints" / stage
    start = {"untrained": model, "sft": model, "grpo": str(out / "checkpoints" / "sft"),
             "grpo_explore": str(out / "checkpoints" / "sft")}[stage]
    what = {"untrained": "evaluating the starting model",
            "sft": f"imitation: SFT on {preset.sft.episodes} expert episodes, {preset.sft_args['max_steps']} steps",
            "grpo": f"GRPO from the SFT checkpoint, {preset.grpo_args['max_steps']} steps x "
                    f"{preset.grpo_args['per_device_train_batch_size']} episodes",
            "grpo_explore": f"GRPO + {'+'.join(preset.exploration.methods)} from the SFT checkpoint, "
                            f"same budget"}[stage]
    log(f"[{index}/{len(STAGES)}] {stage}: {what}")
    started = time.perf_counter()
    folder = out / "stages" / stage
    console = TrainingConsole(folder / "train_log.jsonl", f"[{index}/{len(STAGES)}] {stage}", bar=progress)
    trained: dict[str, Any] = {"train_s": 0.0, "log_history": [], "heldout": []}
    played: list[Any] = []
    with library_output_to(folder / "messages.log"):
        if stage == "sft":
            trained = _sft(preset, start, checkpoint, progress, console)
        elif stage in ("grpo", "grpo_explore"):
            trained = _grpo(preset, start, checkpoint, progress, stage == "grpo_explore", console)
        evaluated = evaluate_checkpoint(preset, str(checkpoint) if stage != "untrained" else start,
                                        trajectories=played, progress=progress)
        _save_episodes(out, stage, preset, played)
    if stage != "untrained":
        for stale in checkpoint.glob("checkpoint-*"):  # the final model is saved; resume points are not needed
            shutil.rmtree(stale, ignore_errors=True)
    result = {"stage": stage, "model": start if stage == "untrained" else str(checkpoint), **evaluated, **trained,
              "wall_s": time.perf_counter() - started}
    log(f"[{index}/{len(STAGES)}] {stage}: finished in {result['wall_s']:.0f} s: pass@1 {result['pass_at_1']:.3f}, "
        f"pass@{preset.k} {result['pass_at_k']:.3f}, mean turns {result['mean_turns']:.2f}")
    return _finish_stage(out, stage, result)


def _save_episodes(out: Path, stage: str, preset: Preset, played: list[Any]) -> None:
    """A stage's evaluation episodes: ``stages/<stage>/episodes.jsonl`` and the page ``<stage>_episodes.html``."""
    from interplay.rollout import save_trajectories
    from interplay.viewer import write_html

    save_trajectories(out / "stages" / stage / "episodes.jsonl", played)
    write_html(out / f"{stage}_episodes.html", played, title=f"{stage}: evaluation episodes on {preset.env}")


# ---------------------------------------------------------------------------------------------- report
def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _with_ci(value: float, ci: list[float | None] | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return _pct(value)
    return f"{_pct(value)} [{_pct(ci[0])}, {_pct(ci[1])}]"


def comparisons(stages: dict[str, dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Paired differences (B − A, same tasks) of pass@1 and pass@k with 95% intervals across tasks."""
    from interplay.metrics import compare_pass_at_k

    rows = []
    for a, b in (("untrained", "sft"), ("sft", "grpo"), ("sft", "grpo_explore"), ("grpo", "grpo_explore")):
        if a not in stages or b not in stages:
            continue
        row: dict[str, Any] = {"a": a, "b": b}
        for kk in (1, k):
            diff = compare_pass_at_k(stages[a]["per_task_successes"], stages[b]["per_task_successes"], kk)
            row[f"pass_at_{kk}"] = {"diff": diff.mean, "ci95": [diff.low, diff.high]}
        rows.append(row)
    return rows


def render_report(env: str, preset: Preset, model: str, stages: dict[str, dict[str, Any]]) -> str:
    """``report.md``: the results table, paired comparisons, success by attempt, timings, plots."""
    sections = (_report_header(env, preset, model, stages), _results_table(stages, preset.k),
                _comparisons_table(stages, preset.k), _success_by_attempt_table(stages), _wall_time_table(stages),
                _plots_section(stages))
    return "\n".join(line for section in sections for line in section)


def _report_header(env: str, preset: Preset, model: str, stages: dict[str, dict[str, Any]]) -> list[str]:
    first = stages[STAGES[0]]["eval"]
    return [
        f"# interplay pipeline report: {env}",
        "",
        f"Preset `{preset.name}` ({preset.description}); model `{model}`; seed {preset.seed}. Every checkpoint played the same "
        f"{first['n_tasks']} held-out tasks (seeds from {min(first['seeds'])}) {preset.k} times each, sampling at "
        "temperature 1. Numbers are percentages; brackets are 95% intervals across tasks.",
        "",
        task_line(task_report(preset, stages)),
        "",
    ]


def _results_table(stages: dict[str, dict[str, Any]], k: int) -> list[str]:
    """Per stage: pass@1, pass@k, the coverage profile at ``REPORT_COVERAGE_N``, mean turns, wall time."""
    lines = [
        "## Results",
        "",
        f"| stage | pass@1 | pass@{k} | " + " | ".join(f"Pcov({n})" for n in REPORT_COVERAGE_N)
        + " | mean turns | wall s |",
        "|---|---|---|" + "---|" * len(REPORT_COVERAGE_N) + "---|---|",
    ]
    for name, s in stages.items():
        cov = " | ".join(_pct(s["coverage"].get(n)) for n in REPORT_COVERAGE_N)
        lines.append(f"| {name} | {_with_ci(s['pass_at_1'], s['pass_at_1_ci95'])} | "
                     f"{_with_ci(s['pass_at_k'], s['pass_at_k_ci95'])} | {cov} | {s['mean_turns']:.2f} | "
                     f"{s['wall_s']:.0f} |")
    return lines + [
        "",
        "pass@1: chance that one sampled episode solves a task. pass@k: chance that at least one of k does "
        "(unbiased estimator). Pcov(N): share of the expert's episodes that the model finds at least N times "
        "less likely than the expert does (lower is better: the model covers the expert's behaviour).",
        "",
    ]


def _comparisons_table(stages: dict[str, dict[str, Any]], k: int) -> list[str]:
    """Paired differences of pass@1 and pass@k between stages (``comparisons``), ``*`` where significant."""
    lines = [
        "## Paired differences (same tasks)",
        "",
        f"| comparison | Δ pass@1 | Δ pass@{k} |",
        "|---|---|---|",
    ]
    for row in comparisons(stages, k):
        cells = []
        for kk in (1, k):
            d = row[f"pass_at_{kk}"]
            verdict = "" if d["ci95"][0] <= 0 <= d["ci95"][1] else " *"
            cells.append(f"{100 * d['diff']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]{verdict}")
        lines.append(f"| {row['b']} − {row['a']} | {cells[0]} | {cells[1]} |")
    return lines + ["", "`*`: the interval excludes 0. Otherwise the difference is within noise at this task count.",
                    ""]


def _success_by_attempt_table(stages: dict[str, dict[str, Any]]) -> list[str]:
    """Per stage, the share of episodes solved within t turns, for every t any stage reached."""
    turns = sorted({int(t) for s in stages.values() for t in s["success_by_turn"]})
    lines = [
        "## Success by attempt",
        "",
        "Share of episodes solved within t turns (in a feedback game: within t attempts).",
        "",
        "| stage | " + " | ".join(f"t≤{t}" for t in turns) + " |",
        "|---|" + "---|" * len(turns),
    ]
    for name, s in stages.items():
        by_turn = s["success_by_turn"]
        # Past a stage's longest episode its success stays what it was at the last turn it reached.
        cells = [_pct(by_turn.get(str(t), by_turn[max(by_turn, key=int)])) for t in turns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _wall_time_table(stages: dict[str, dict[str, Any]]) -> list[str]:
    """Seconds per stage: training, evaluation, total; and the whole run."""
    lines = [
        "## Wall time",
        "",
        "| stage | train s | eval s | total s |",
        "|---|---|---|---|",
    ]
    for name, s in stages.items():
        lines.append(f"| {name} | {s['train_s']:.0f} | {s['eval_s']:.0f} | {s['wall_s']:.0f} |")
    lines.append(f"| all | | | {sum(s['wall_s'] for s in stages.values()):.0f} |")
    return lines + [""]


def _plots_section(stages: dict[str, dict[str, Any]]) -> list[str]:
    """Links to the plots ``write_report`` draws and to each stage's page of evaluation episodes."""
    return [
        "## Plots",
        "",
        "![pass@k](pass_at_k.png) ![coverage](coverage.png) ![success by turn](success_by_turn.png)",
        "",
        "Training curves: " + ", ".join(f"[{n}](training_{n}.png)" for n in STAGES[1:] if n in stages),
        "",
        "Evaluation episodes, one page per stage (open in a browser): "
        + ", ".join(f"[{n}]({n}_episodes.html)" for n in stages),
        "",
    ]


def write_report(out: Path, preset: Preset, model: str, stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``report.md``, ``report.json`` and the PNG plots in ``out``; returns report.json's content."""
    from interplay.plots import plot_all, plot_training_curves

    report = {"env": preset.env, "preset": preset.name, "model": model, "k": preset.k, "seed": preset.seed,
              "task": task_report(preset, stages), "preset_config": dataclasses.asdict(preset), "stages": stages,
              "comparisons": comparisons(stages, preset.k)}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    plot_all({name: s["eval"] for name, s in stages.items()}, out)
    for name in STAGES[1:]:
        history = [e for e in stages[name]["log_history"] if "step" in e]
        if history:
            plot_training_curves(history, out / f"training_{name}.png")
    (out / "report.md").write_text(render_report(preset.env, preset, model, stages))
    return report


def _check_out_dir(out: Path, preset: Preset, model: str) -> None:
    """A rerun must be the same run: refuse to mix stages of different presets/models in one directory."""
    manifest = out / "pipeline.json"
    wanted = {"preset": dataclasses.asdict(preset), "model": model}
    if manifest.exists():
        found = json.loads(manifest.read_text())
        if found != json.loads(json.dumps(wanted)):
            raise ValueError(f"{out} holds a pipeline run of preset {found['preset']['name']!r} with model "
                             f"{found['model']!r} and seed {found['preset'].get('seed', 0)}, not {preset.name!r} with "
                             f"{model!r} and seed {preset.seed} (or its settings differ): pass another --out, or "
                             "delete the directory to start over.")
        return
    out.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(wanted, indent=1))


def run_pipeline(preset: str | Preset, out: str | Path, model: str | None = None, progress: bool = True,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) every stage of ``preset`` into ``out`` and write the report there.

    Returns report.json's content plus ``report_md`` (the path of report.md) and ``wall_s`` (this call).
    """
    started = time.perf_counter()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    model = model or preset.model
    out = Path(out)
    seeded_configs(preset)  # the seed's training tasks fit: fail before anything is written
    _check_out_dir(out, preset, model)
    log(f"interplay pipeline: preset {preset.name!r} on {preset.env} with model {model!r} -> {out} "
        f"(full logs: {out / 'stages'}/<stage>/)")
    stages = {stage: run_stage(preset, stage, out, model, progress=progress, log=log) for stage in STAGES}
    report = write_report(out, preset, model, stages)
    return {**report, "report_md": str(out / "report.md"), "wall_s": time.perf_counter() - started}


# ---------------------------------------------------------------------------------------------- seeds
def _seed_interval(values: list[float]) -> dict[str, Any]:
    """Mean over seeds with a 95% Student-t interval over seeds (None with one seed)."""
    from interplay.metrics import mean_interval

    iv = mean_interval(values, method="t")
    ci = [iv.low, iv.high] if len(values) > 1 and all(v == v for v in (iv.low, iv.high)) else None
    return {"mean": iv.mean, "ci95_over_seeds": ci, "values": list(values)}


def aggregate_seeds(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Figures of several runs (report.json contents by seed) with intervals over seeds.

    Per stage: pass@1, pass@k, Pcov(N) and mean turns as ``{"mean", "ci95_over_seeds", "values"}`` (values in
    seed order), and ``per_seed``: each run's pass@1 / pass@k with its interval over tasks. Per comparison
    (B − A): the paired difference's mean over seeds with its interval over seeds, and each seed's difference
    with its interval over tasks.
    """
    seeds = sorted(runs)
    stages: dict[str, Any] = {}
    for stage in STAGES:
        per_run = [runs[seed]["stages"][stage] for seed in seeds]
        grid = [n for n in per_run[0]["coverage"] if all(r["coverage"].get(n) is not None for r in per_run)]
        stages[stage] = {
            "pass_at_1": _seed_interval([r["pass_at_1"] for r in per_run]),
            "pass_at_k": _seed_interval([r["pass_at_k"] for r in per_run]),
            "coverage": {n: _seed_interval([r["coverage"][n] for r in per_run]) for n in grid},
            "mean_turns": _seed_interval([r["mean_turns"] for r in per_run]),
            "per_seed": {str(seed): {"pass_at_1": r["pass_at_1"], "pass_at_1_ci95": r["pass_at_1_ci95"],
                                     "pass_at_k": r["pass_at_k"], "pass_at_k_ci95": r["pass_at_k_ci95"]}
                         for seed, r in zip(seeds, per_run)},
        }
    compared = []
    for i, row in enumerate(runs[seeds[0]]["comparisons"]):
        rows = [runs[seed]["comparisons"][i] for seed in seeds]
        entry: dict[str, Any] = {"a": row["a"], "b": row["b"]}
        for key in (k for k in row if k.startswith("pass_at_")):
            entry[key] = {**_seed_interval([r[key]["diff"] for r in rows]),
                          "per_seed": {str(seed): r[key] for seed, r in zip(seeds, rows)}}
        compared.append(entry)
    return {"seeds": seeds, "stages": stages, "comparisons": compared}


def _seed_cell(figure: dict[str, Any]) -> str:
    ci = figure["ci95_over_seeds"]
    return _pct(figure["mean"]) if ci is None else f"{_pct(figure['mean'])} [{_pct(ci[0])}, {_pct(ci[1])}]"


def render_seeds_report(preset: Preset, model: str, aggregated: dict[str, Any], k: int) -> str:
    """report.md of a multi-seed run: figures over seeds, each seed's with its task intervals, paired
    differences over seeds, and links to each seed's own report."""
    seeds, stages = aggregated["seeds"], aggregated["stages"]
    lines = [
        f"# interplay pipeline report: {preset.env}, {len(seeds)} seeds",
        "",
        f"Preset `{preset.name}` ({preset.description}); model `{model}`; seeds {seeds[0]}..{seeds[-1]}, each an "
        "independent run (its own training tasks, data order and sampling) evaluated on the same held-out tasks. "
        "Numbers are percentages; brackets in the first tables are 95% intervals over seeds (Student's t), in the "
        "per-seed table 95% intervals over tasks.",
        "",
        "## Results over seeds",
        "",
        f"| stage | pass@1 | pass@{k} | " + " | ".join(f"Pcov({n})" for n in REPORT_COVERAGE_N) + " | mean turns |",
        "|---|---|---|" + "---|" * len(REPORT_COVERAGE_N) + "---|",
    ]
    for name, s in stages.items():
        cov = " | ".join(_pct(s["coverage"][n]["mean"]) if n in s["coverage"] else "–" for n in REPORT_COVERAGE_N)
        lines.append(f"| {name} | {_seed_cell(s['pass_at_1'])} | {_seed_cell(s['pass_at_k'])} | {cov} | "
                     f"{s['mean_turns']['mean']:.2f} |")
    lines += ["", "Pcov and mean turns: means over seeds (report.json has their intervals).", "",
              "## Per seed (intervals over tasks)", "",
              "| stage | " + " | ".join(f"seed {seed} pass@1 | seed {seed} pass@{k}" for seed in seeds) + " |",
              "|---|" + "---|---|" * len(seeds)]
    for name, s in stages.items():
        cells = [f"{_with_ci(r['pass_at_1'], r['pass_at_1_ci95'])} | {_with_ci(r['pass_at_k'], r['pass_at_k_ci95'])}"
                 for r in (s["per_seed"][str(seed)] for seed in seeds)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Paired differences over seeds", "", f"| comparison | Δ pass@1 | Δ pass@{k} |", "|---|---|---|"]
    for row in aggregated["comparisons"]:
        cells = []
        for kk in (1, k):
            d = row[f"pass_at_{kk}"]
            ci = d["ci95_over_seeds"]
            if ci is None:
                cells.append(f"{100 * d['mean']:+.1f}")
            else:
                star = "" if ci[0] <= 0 <= ci[1] else " *"
                cells.append(f"{100 * d['mean']:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]{star}")
        lines.append(f"| {row['b']} − {row['a']} | {cells[0]} | {cells[1]} |")
    lines += ["", "`*`: the interval over seeds excludes 0. Each seed's paired difference over tasks is in "
              "report.json (`comparisons[].pass_at_*.per_seed`) and in its own report.", "",
              "Each seed's report: " + ", ".join(f"[seed {seed}](seed_{seed}/report.md)" for seed in seeds), ""]
    return "\n".join(lines)


def run_seeds(preset: str | Preset, out: str | Path, seeds: int, model: str | None = None, progress: bool = True,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """``seeds`` independent runs of ``preset`` with seeds ``preset.seed`` .. ``preset.seed + seeds - 1``,
    each in ``out/seed_<S>/`` (a full ``run_pipeline`` directory, resumable), then ``out/report.md`` and
    ``out/report.json`` with every figure over seeds (``aggregate_seeds``).

    Returns report.json's content plus ``report_md`` and ``wall_s``.
    """
    started = time.perf_counter()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be an integer >= 1, got {seeds!r}.")
    model = model or preset.model
    out = Path(out)
    variants = [with_overrides(preset, seed=preset.seed + i) for i in range(seeds)]
    for variant in variants:
        seeded_configs(variant)  # every seed's training tasks fit, checked before the first run starts
    runs: dict[int, dict[str, Any]] = {}
    for i, variant in enumerate(variants, start=1):
        log(f"interplay pipeline: seed {variant.seed} ({i}/{seeds})")
        runs[variant.seed] = run_pipeline(variant, out / f"seed_{variant.seed}", model=model, progress=progress,
                                          log=log)
    aggregated = aggregate_seeds(runs)
    report = {"env": preset.env, "preset": preset.name, "model": model, "k": preset.k,
              "preset_config": dataclasses.asdict(preset), **aggregated,
              "runs": {str(seed): f"seed_{seed}/report.json" for seed in runs}}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(render_seeds_report(preset, model, aggregated, preset.k))
    return {**report, "report_md": str(out / "report.md"), "wall_s": time.perf_counter() - started}


__all__ = ["OVERRIDES", "PRESETS", "STAGES", "Preset", "aggregate_seeds", "evaluate_checkpoint", "get_preset",
           "render_report", "render_seeds_report", "run_pipeline", "run_seeds", "run_stage", "seeded_configs",
           "with_overrides", "write_report"]
