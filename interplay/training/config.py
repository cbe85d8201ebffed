"""interplay's side of the training configs; TRL's ``SFTConfig`` / ``GRPOConfig`` hold the optimizer side.

As in TRL, one dataclass per trainer with ``help`` metadata on every field: ``interplay train <stage>
--help`` prints it next to TRL's own fields, and ``--config`` YAML files set the same fields.
``RunConfig`` holds what imitation and GRPO share. Kept free of torch/TRL imports.
"""

from __future__ import annotations

import json
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


def help_field(text: str, **kwargs: Any) -> Any:
    """A dataclass field with ``text`` as its ``--help`` (``metadata["help"]``, as TRL's configs have it)."""
    return field(metadata={"help": text}, **kwargs)


def _json_object(value: Any, name: str) -> dict[str, Any]:
    """A dict field's value: a dict as is, a JSON object string (a flag, a YAML string) parsed, None as {}."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict (or a JSON object), got {value!r:.80}.")
    return value


@dataclass
class PolicyConfig:
    """What every training run says about the model it trains: where it starts, how it replies, LoRA."""

    model: str = help_field("'tiny', a catalogue name (smollm2-135m), a checkpoint directory (e.g. an SFT output) or "
                       "an HF id to start from", default="tiny")
    seed_start: int = help_field("first training seed; episodes use consecutive seeds after it",
                            default=TRAIN_SEED_START)
    max_new_tokens: int = help_field("tokens per reply when the model plays", default=16)
    chat_template_kwargs: dict[str, Any] = help_field(
        "passed to the model's chat template, e.g. {\"enable_thinking\": false} (Qwen3) (JSON object)",
        default_factory=dict)
    thinking_budget: int | None = help_field("reasoning models: thinking tokens per reply before the closing marker is "
                                        "inserted (default: no limit)", default=None)
    lora: LoraSettings = help_field("a LoRA adapter to train instead of all the weights (LoraSettings; a mapping of its "
                               "fields in YAML, --lora-r etc. as flags); the output then holds the adapter",
                               default_factory=LoraSettings)

    def __post_init__(self) -> None:
        self.lora = LoraSettings.of(self.lora)
        self.chat_template_kwargs = _json_object(self.chat_template_kwargs, "chat_template_kwargs")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be positive, got {self.max_new_tokens}.")

    def agent_kwargs(self) -> dict[str, Any]:
        """The ``HFAgent`` options this run gives its model whenever it plays (its chat template's)."""
        return {"chat_template_kwargs": self.chat_template_kwargs, "thinking_budget": self.thinking_budget}


@dataclass
class RunConfig(PolicyConfig):
    """What an imitation run and a GRPO run share: the task, the turns, the held-out score (and the policy's
    side, ``PolicyConfig``)."""

    env: str = help_field("environment id; the id and env_kwargs say everything about the task, its turn limit "
                     "included (default: a 4x4 maze in 12 moves)", default="interplay/Maze-4x4-v0")
    env_kwargs: dict[str, Any] = help_field("environment constructor kwargs (JSON object)", default_factory=dict)
    max_turns: int | None = help_field(
        "a turn limit imposed from outside the task on every episode played (the TurnLimit wrapper, recorded "
        "in each trajectory's manifest and stated to the agent where tighter than the environment's own); "
        "default: the environment's own limit", default=None)
    env_workers: int = help_field("N > 0 plays the training episodes' environments in N local `interplay serve` "
                             "processes (CPU-heavy environments on several cores); 0: in this process", default=0)
    eval_episodes: int = help_field("held-out tasks (evaluation seeds, greedy) scored during and after training",
                               default=100)
    eval_every: int = help_field("score the held-out tasks every N optimizer steps, and at the end (0: at the end only)",
                            default=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.env_kwargs = _json_object(self.env_kwargs, "env_kwargs")
        if self.eval_episodes < 1 or self.eval_every < 0:
            raise ValueError("eval_episodes must be positive and eval_every >= 0, got "
                             f"{self.eval_episodes}, {self.eval_every}.")


@dataclass
class ImitationConfig(RunConfig):
    """interplay's side of an imitation run (TRL's ``SFTConfig`` holds the optimizer side): expert episodes
    for behaviour cloning, then, with ``mode="dagger"``, DAgger rounds. The environment needs an
    ``expert_action``."""

    episodes: int = help_field("expert episodes for the offline dataset, one fresh training seed each (unless tasks "
                               "is set)", default=6400)
    tasks: int | None = help_field("distinct training tasks the offline episodes cycle over (consecutive seeds from "
                                   "seed_start): a narrower dataset, each task played episodes/tasks times (default: "
                                   "one fresh task per episode)", default=None)
    mode: str = help_field("'offline' (behaviour cloning) or 'dagger' (then dagger_rounds rounds follow)",
                      default="offline")
    dagger_rounds: int = help_field("DAgger rounds after the offline phase", default=2)
    dagger_episodes: int = help_field("learner episodes per DAgger round", default=512)
    dagger_steps: int = help_field("SFT steps on the aggregated data after each DAgger round", default=20)
    dagger_temperature: float = help_field("sampling temperature of the learner's DAgger episodes", default=1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("offline", "dagger"):
            raise ValueError(f"mode must be 'offline' or 'dagger', got {self.mode!r}.")
        for name, value in (("episodes", self.episodes), ("dagger_episodes", self.dagger_episodes)):
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if self.tasks is not None and (isinstance(self.tasks, bool) or not isinstance(self.tasks, int)
                                       or not 1 <= self.tasks <= self.episodes):
            raise ValueError(f"tasks must be None (one fresh task per episode) or an integer from 1 to episodes "
                             f"({self.episodes}), got {self.tasks!r}.")
        for name, value in (("dagger_rounds", self.dagger_rounds), ("dagger_steps", self.dagger_steps)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}.")
        check_train_seeds(self.seed_start, self.episodes + self.dagger_rounds * self.dagger_episodes, "episodes")


@dataclass
class GRPOTrainingConfig(RunConfig):
    """interplay's side of a GRPO run (TRL's ``GRPOConfig`` holds the optimizer and sampling side)."""

    tasks: int | None = help_field("distinct training seeds in the prompt dataset (default: one fresh task per group "
                              "for max_steps steps, so no task repeats)", default=None)
    discount: float = help_field("per-turn discount of the episode reward, R = sum_t discount^t r_t", default=1.0)
    credit: str = help_field(f"which advantage each turn gets: {', '.join(CREDITS)} (episode: GRPO's on every token; "
                        "return: ReBN; anchor: GiGPO; see interplay.training.credit)", default="episode")
    turn_discount: float = help_field("gamma of the per-turn returns that 'return' and 'anchor' credit use (GiGPO's "
                                 "0.95); discount still makes the episode reward", default=0.95)
    anchor_weight: float = help_field("omega, the weight of the step-level advantage in 'anchor' credit (GiGPO's 1)",
                                 default=1.0)
    exploration: ExplorationConfig | None = help_field(
        "reward shapers per GRPO group (interplay.training.exploration): comma-separated name[:weight][:key=value...], "
        "e.g. 'outcome_count:0.1,pkpo:k=4', or a JSON object of ExplorationConfig's fields (default: none)",
        default=None)
    critique_weight: float = help_field("weight of the critique loss: NLL of the teacher's feedback tokens in feedback "
                                   "environments (interplay.training.grpo_trainer); 0 disables it", default=0.0)
    fused_lm_head: bool | None = help_field(
        "per-token log-probs through TRL's fused LM head (true: less memory) or the model's own logits over the "
        "completion positions (false: faster without a GPU); default: fused on a GPU only", default=None)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {self.discount!r}.")
        if self.tasks is not None and self.tasks < 1:
            raise ValueError(f"tasks must be a positive integer or None, got {self.tasks!r}.")
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
