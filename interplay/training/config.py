"""interplay's side of the training configs (TRL's SFTConfig / GRPOConfig hold the optimizer side).

Kept free of torch/TRL imports so the command line can build its flags from them quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interplay.seeds import TRAIN_SEED_START, check_train_seeds
from interplay.training.credit import CREDITS
from interplay.training.exploration import ExplorationConfig

#: Projections ``LoraSettings.target_modules`` may name in Llama-, Qwen- and Gemma-style models.
LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraSettings:
    """A LoRA adapter to train instead of all the weights (``r`` > 0), given to TRL as its ``peft_config``.

    Starting from a model that is itself an adapter directory (an SFT run's LoRA output, say), a LoRA run
    trains that adapter further (its own rank, scale and modules; settings that disagree are refused), and a
    run with ``r`` = 0 merges it into its base and trains all the weights. Needs ``pip install 'interplay[lora]'``.
    """

    r: int = field(default=0, metadata={"help": "LoRA rank; 0 (default) trains all the weights instead"})
    alpha: float | None = field(default=None, metadata={
        "help": "LoRA scale numerator: the update is alpha/r x B A (default: 2r, a scale of 2 at any rank)"})
    target_modules: str | list[str] = field(default="all-linear", metadata={
        "help": "modules that get an adapter: 'all-linear' (default: every linear layer but the output head) or "
                f"comma-separated names, e.g. '{','.join(LLAMA_PROJECTIONS[:4])}'"})
    dropout: float = field(default=0.0, metadata={
        "help": "dropout on the adapter's input while training (default 0; GRPO's rollouts would sample with it)"})

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str) and self.target_modules != "all-linear":
            # peft reads a string as a regex over full module paths; names are what users mean.
            self.target_modules = [name.strip() for name in self.target_modules.split(",") if name.strip()]
        if not isinstance(self.r, int) or self.r < 0:
            raise ValueError(f"lora r must be an integer >= 0 (0: no LoRA), got {self.r!r}.")
        if self.alpha is not None and not self.alpha > 0:
            raise ValueError(f"lora alpha must be > 0 (or None: 2 x r), got {self.alpha!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora dropout must be in [0, 1), got {self.dropout!r}.")
        if not self.target_modules:
            raise ValueError("lora target_modules is empty: give 'all-linear' or module names, e.g. 'q_proj,v_proj'.")

    @property
    def enabled(self) -> bool:
        return self.r > 0

    @property
    def scale_alpha(self) -> float:
        """``alpha``, or its default 2 x r."""
        return float(self.alpha) if self.alpha is not None else 2.0 * self.r

    @classmethod
    def of(cls, value: LoraSettings | dict[str, Any] | int | None) -> LoraSettings:
        """A ``LoraSettings`` from what a config field may hold: itself, a dict of its fields (YAML/JSON),
        a rank, or None (off)."""
        if isinstance(value, LoraSettings):
            return value
        if value is None:
            return cls()
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(r=value)
        if isinstance(value, dict):
            unknown = set(value) - {"r", "alpha", "target_modules", "dropout"}
            if unknown:
                raise ValueError(f"lora: unknown fields {sorted(unknown)}; accepted: r, alpha, target_modules, dropout.")
            return cls(**value)
        raise TypeError(f"lora must be LoraSettings, a dict of its fields, a rank or None, got {value!r:.80}.")


@dataclass
class ImitationConfig:
    """interplay's side of an imitation run (TRL's ``SFTConfig`` holds the optimizer side).

    Args:
        env, env_kwargs: the task (its environment must have an ``expert_action``). The id and kwargs
            say everything about it, its turn limit included (default ``interplay/Maze-4x4-v0``: a 4x4
            maze in 12 moves, the task GRPO's default trains on too).
        model: "tiny", a catalogue name ("smollm2-135m"), a checkpoint directory or an HF id to start from.
        episodes: expert episodes for the offline dataset, one fresh training seed each.
        mode: "offline" (behaviour cloning) or "dagger" (then ``dagger_rounds`` rounds follow).
        dagger_rounds, dagger_episodes, dagger_steps: rounds; learner episodes per round; SFT steps
            on the aggregated data after each round.
        dagger_temperature: sampling temperature of the learner's DAgger rollouts.
        max_turns: a turn limit imposed from outside the task, on every episode played (expert data,
            DAgger, held-out scores): the ``interplay.envs.core.TurnLimit`` wrapper, recorded in each
            trajectory's manifest and stated to the agent where it is tighter than the environment's
            own limit. None (default): the environment's own limit.
        seed_start: first training seed (episodes use consecutive seeds after it).
        env_workers: N > 0 plays the training episodes' environments in N local ``interplay serve``
            processes (``rollout(env_workers=N)``: CPU-heavy environments on several cores); 0 (default): in
            this process.
        eval_episodes, eval_every: held-out tasks (EVAL seeds, greedy) scored every ``eval_every``
            optimizer steps and at the end (0 disables the periodic ones).
        max_new_tokens: per reply, when the learner plays (DAgger, evaluation).
        chat_template_kwargs: passed to the model's chat template, e.g. ``{"enable_thinking": false}``
            (Qwen3), for the expert data and whenever the learner plays.
        thinking_budget: reasoning models: thinking tokens per reply before the closing marker is
            inserted when the learner plays (None: no limit).
        lora: a LoRA adapter to train instead of all the weights (``LoraSettings``; a dict of its fields in
            YAML, ``--lora-r`` etc. on the command line); the output directory then holds the adapter.
    """

    env: str = "interplay/Maze-4x4-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    model: str = "tiny"
    episodes: int = 6400
    mode: str = "offline"
    dagger_rounds: int = 2
    dagger_episodes: int = 512
    dagger_steps: int = 20
    dagger_temperature: float = 1.0
    max_turns: int | None = None
    seed_start: int = TRAIN_SEED_START
    env_workers: int = 0
    eval_episodes: int = 100
    eval_every: int = 0
    max_new_tokens: int = 16
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    thinking_budget: int | None = None
    lora: LoraSettings = field(default_factory=LoraSettings)

    def __post_init__(self) -> None:
        self.lora = LoraSettings.of(self.lora)
        if self.mode not in ("offline", "dagger"):
            raise ValueError(f"mode must be 'offline' or 'dagger', got {self.mode!r}.")
        for name in ("episodes", "dagger_episodes", "eval_episodes", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}.")
        for name in ("dagger_rounds", "dagger_steps", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}.")
        if not isinstance(self.env_kwargs, dict):
            raise TypeError(f"env_kwargs must be a dict of constructor kwargs, got {self.env_kwargs!r:.80}.")
        check_train_seeds(self.seed_start, self.episodes + self.dagger_rounds * self.dagger_episodes, "episodes")



@dataclass
class GRPOTrainingConfig:
    """interplay's side of a GRPO run (TRL's ``GRPOConfig`` holds the optimizer and sampling side).

    Args:
        env, env_kwargs: the task. The id and kwargs say everything about it, its turn limit included
            (default ``interplay/Maze-4x4-v0``: a 4x4 maze in 12 moves, the limit measured for GRPO).
        model: "tiny", a catalogue name ("smollm2-135m"), a checkpoint directory (e.g. an SFT output) or an HF
            id to start from.
        tasks: distinct training seeds in the prompt dataset (None: one fresh task per group for
            ``max_steps`` steps, so no task repeats).
        seed_start: first training seed.
        max_turns: a turn limit imposed from outside the task, on the training episodes and the held-out
            scores logged during training: the ``interplay.envs.core.TurnLimit`` wrapper, recorded in each
            trajectory's manifest and stated to the agent where it is tighter than the environment's own
            limit. None (default): the environment's own limit.
        max_new_tokens: per reply (``GRPOConfig.max_completion_length`` is not used by the rollout).
        env_workers: N > 0 plays the training episodes' environments in N local ``interplay serve``
            processes (``rollout(env_workers=N)``: CPU-heavy environments on several cores); 0 (default): in
            this process.
        discount: per-turn discount of the episode reward, ``R = sum_t discount^t r_t``.
        credit: which advantage each turn gets (``interplay.training.credit``): ``"episode"`` (default: GRPO's
            episode advantage on every token), ``"return"`` (ReBN: per-turn discounted return-to-go normalized
            over the batch) or ``"anchor"`` (GiGPO: episode advantage + ``anchor_weight`` × the step-level
            advantage among the group's turns from an identical observation).
        turn_discount: gamma of the per-turn returns ``G_t = sum_{k>=t} gamma^(k-t) r_k`` that ``"return"``
            and ``"anchor"`` credit with (default 0.95, GiGPO's); ``discount`` still makes the episode reward.
        anchor_weight: omega, the weight of the step-level advantage in ``"anchor"`` credit (default 1, GiGPO's).
        exploration: reward shapers applied per group (``interplay.training.exploration``): an
            ``ExplorationConfig``, a dict of its fields (YAML/JSON), or the short form of
            ``ExplorationConfig.from_spec``, e.g. ``"outcome_count:0.1,pkpo:k=4"``.
        critique_weight: weight of the auxiliary critique-prediction loss: NLL of the teacher's
            feedback tokens in feedback environments (``interplay.training.grpo``); 0 disables it.
        eval_episodes, eval_every: held-out tasks (EVAL seeds, greedy) scored every ``eval_every`` steps
            and at the end (0 disables the periodic ones).
        chat_template_kwargs: passed to the model's chat template, e.g. ``{"enable_thinking": false}`` (Qwen3).
        thinking_budget: reasoning models: thinking tokens per reply before the closing marker is
            inserted (None: no limit).
        lora: a LoRA adapter to train instead of all the weights (``LoraSettings``); the rollouts sample
            with it on, and the output directory and checkpoints hold the adapter.
        fused_lm_head: per-token log-probs through TRL's fused LM head (True: less memory) or the model's own
            logits over the completion positions (False: faster without a GPU); None (default): fused on a
            GPU only (``interplay.training.grpo.CritiqueGRPOTrainer``).
    """

    env: str = "interplay/Maze-4x4-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    model: str = "tiny"
    tasks: int | None = None
    seed_start: int = TRAIN_SEED_START
    max_turns: int | None = None
    max_new_tokens: int = 16
    env_workers: int = 0
    discount: float = 1.0
    credit: str = field(default="episode", metadata={
        "help": f"turn-level credit: {', '.join(CREDITS)} (default: episode; see interplay.training.credit)"})
    turn_discount: float = 0.95
    anchor_weight: float = 1.0
    exploration: ExplorationConfig | None = None
    eval_episodes: int = 100
    eval_every: int = 0
    critique_weight: float = 0.0
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    thinking_budget: int | None = None
    lora: LoraSettings = field(default_factory=LoraSettings)
    fused_lm_head: bool | None = None

    def __post_init__(self) -> None:
        self.lora = LoraSettings.of(self.lora)
        if not 0.0 < self.discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {self.discount!r}.")
        if self.tasks is not None and self.tasks < 1:
            raise ValueError(f"tasks must be a positive integer or None, got {self.tasks!r}.")
        if self.max_new_tokens < 1 or self.eval_episodes < 1 or self.eval_every < 0:
            raise ValueError("max_new_tokens and eval_episodes must be positive and eval_every >= 0, got "
                             f"{self.max_new_tokens}, {self.eval_episodes}, {self.eval_every}.")
        if not isinstance(self.env_kwargs, dict):
            raise TypeError(f"env_kwargs must be a dict of constructor kwargs, got {self.env_kwargs!r:.80}.")
        if isinstance(self.exploration, dict):  # from YAML / JSON
            self.exploration = ExplorationConfig(**self.exploration)
        elif isinstance(self.exploration, str):  # the command line's short form
            self.exploration = ExplorationConfig.from_spec(self.exploration)
        if self.credit not in CREDITS:
            raise ValueError(f"credit must be one of {', '.join(CREDITS)}, got {self.credit!r}.")
        if not 0.0 < self.turn_discount <= 1.0:
            raise ValueError(f"turn_discount must be in (0, 1], got {self.turn_discount!r}.")
        if not self.anchor_weight >= 0.0:
            raise ValueError(f"anchor_weight must be >= 0, got {self.anchor_weight!r}.")
        if self.credit == "return" and self.exploration is not None:
            raise ValueError("credit='return' (ReBN) replaces the episode advantages with normalized per-turn returns, "
                             "so the exploration shapers, which act on episode rewards and advantages, would have no "
                             "effect: use credit='episode' or 'anchor' with exploration, or drop exploration.")
        if not self.critique_weight >= 0.0:
            raise ValueError(f"critique_weight must be >= 0 (0 disables the critique loss), got {self.critique_weight!r}.")


def launched_processes() -> int:
    """Processes this run was launched on: ``WORLD_SIZE`` as ``accelerate launch`` (and torchrun) set it, else 1."""
    import os

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
