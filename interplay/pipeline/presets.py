"""The pipeline's presets: the configs a run's stages train with and the evaluation's size, and the overrides
and seeds a run applies to them (``with_overrides``, ``seeded_configs``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from interplay.experiments.jobs import trl_args
from interplay.training.config import GRPOTrainingConfig, ImitationConfig, LoraSettings
from interplay.training.exploration import ExplorationConfig
from interplay.training.grpo_tasks import grpo_task_count


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
            # The exploration stage runs the method the study found best (interplay.study.exploration, 3 seeds:
            # the only one whose pass@64 gain over GRPO was reproduced) at its paper's settings: the batch
            # penalty on outcomes repeated within a group (Song, Kempe & Munos 2025), c = 0.1 on the advantages,
            # the library's defaults. It needs no revisits, and each training task is seen once here.
            exploration=ExplorationConfig(methods=["batch_diversity"], weights={"batch_diversity": 0.1}),
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


def get_preset(name: str) -> Preset:
    """The preset called ``name``; a clear error listing the presets otherwise."""
    if name not in PRESETS:
        listed = "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())
        raise ValueError(f"unknown preset {name!r}; choose one of: {listed}.")
    return PRESETS[name]



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


def seeded_configs(preset: Preset) -> tuple[ImitationConfig, GRPOTrainingConfig, dict[str, Any], dict[str, Any]]:
    """The SFT and GRPO configs and TRL kwargs of a run with ``preset.seed``.

    Seed S shifts both stages' training seeds by S times the span they use together (so seeds train on
    disjoint blocks of tasks; seed 0 uses the preset's own), and sets TRL's ``seed`` and ``data_seed`` to S.
    """
    from interplay.seeds import EVAL_SEED_START

    full = trl_args("grpo", **preset.grpo_args)  # the defaults fill in what the preset leaves out
    tasks = grpo_task_count(preset.grpo.tasks, full["max_steps"], full["per_device_train_batch_size"],
                            full["num_generations"], full["gradient_accumulation_steps"])
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


