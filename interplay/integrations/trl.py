"""Any interplay environment as a TRL ``environment_factory``: TRL runs the episode as a tool-calling loop.

``GRPOTrainer(environment_factory=...)`` is TRL's own way to train on a multi-turn environment: TRL
generates (with transformers or vLLM, on one GPU or many), parses the model's tool calls, calls the
environment's methods and feeds their results back, until the model answers without a tool call.
``environment_factory(env_id, **env_kwargs)`` returns such an environment class for any registered id::

    from trl import GRPOConfig, GRPOTrainer
    from interplay.integrations.trl import environment_factory, episode_metrics, task_dataset

    Maze = environment_factory("interplay/Maze-v0", size=4)  # the reward: Maze.get_reward, the env's own
    trainer = GRPOTrainer(model="Qwen/Qwen3-0.6B", reward_funcs=[episode_metrics], environment_factory=Maze,
                          train_dataset=task_dataset(Maze, 512), args=GRPOConfig(max_tool_calling_iterations=16))

The class keeps TRL 1.x's contract (``trl/trainer/grpo_trainer.py``; experimental upstream):

- TRL calls the class with no arguments (once at start to read its tools, then as many instances as a
  batch has rollouts) and reuses instances across batches; each holds one interplay environment.
- Before each rollout TRL calls ``reset(**row)`` with every column of the dataset row. The row's
  ``seed`` is the task (same seed, same episode); a row without one is an error that says how to build
  the dataset. ``reset`` returns the first observation, which TRL appends to the last message of the
  row's conversational prompt; when that prompt has no system message the environment's instructions
  come first.
- The one public method besides ``reset``/``get_reward`` is the tool: ``move`` (Maze), ``guess``
  (CodeBreaker), ``answer`` (math and reasoning-gym feedback tasks), ``act`` (TextArena games and any
  other environment; an environment class may set ``tool_name``), with one argument ``reply: str``: the
  agent's whole reply for the turn, as ``env.step`` takes it. Its docstring carries the environment's
  instructions; TRL renders its schema into the prompt. The tool returns the environment's next
  observation, with a last line saying so when the episode ends; calls after the end change nothing and
  say that the episode is over.
- ``get_reward()`` (unless ``env_reward=False``) is the episode's summed environment reward; TRL adds it
  as a reward source (weight 1, logged under the class name) next to ``reward_funcs``.
- Reward functions get ``environments=`` (one instance per completion); each exposes ``success``,
  ``outcome``, ``turns``, ``reward``, ``invalid_actions``, ``tool_calls``, ``finished``, ``seed``,
  ``history`` (reply, observation, reward per step) and ``env`` (the Gymnasium environment).
  ``success_reward`` is the 0/1 reward of success; ``episode_metrics`` only logs (success rate, turns, ...).

Settings that matter in ``GRPOConfig``: ``max_tool_calling_iterations`` (cap the turns; None: until the
model stops calling or ``max_completion_length`` tokens, which count the tool responses too), and for
Qwen3-style templates ``chat_template_kwargs={"enable_thinking": False}`` for short turns. The model's
chat template must support tool calls and be one TRL can parse responses for (TRL raises otherwise).

Compared with ``interplay.training.grpo`` (interplay's own ``rollout_func``): there each turn is a user
message and interplay plays the episode with the trainer's model and its KV cache; here TRL plays it
as tool calls and brings its generation backends. Seeds: ``task_dataset`` draws training seeds
(``interplay.seeds``), so evaluation on ``eval_seeds`` stays held out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from interplay.registry import check_env_id, describe, make
from interplay.seeds import TRAIN_SEED_START, train_seeds

#: Tool names by environment class (the first match along the class's MRO); ``tool_name`` on the
#: environment class wins, ``DEFAULT_TOOL_NAME`` is the fallback.
TOOL_NAMES: dict[str, str] = {
    "MazeEnv": "move",
    "CodeBreakerEnv": "guess",
    "FeedbackEnv": "answer",
    "TextArenaEnv": "act",
}
DEFAULT_TOOL_NAME = "act"
_RESERVED = ("reset", "get_reward")


def _tool_name_for(env: Any) -> str:
    declared = getattr(env, "tool_name", None)
    if isinstance(declared, str) and declared:
        return declared
    for cls in type(env).__mro__:
        if cls.__name__ in TOOL_NAMES:
            return TOOL_NAMES[cls.__name__]
    return DEFAULT_TOOL_NAME


def _check_tool_name(name: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_") or name in _RESERVED:
        raise ValueError(f"tool_name must be a Python identifier that does not start with '_' and is not "
                         f"{' or '.join(_RESERVED)} (TRL's reserved names), got {name!r}.")
    return name


def _class_name(env_id: str) -> str:
    name = re.sub(r"\W+", "_", env_id.rsplit("/", 1)[-1]).strip("_")
    return name if name and name[0].isalpha() else f"Env_{name}"


def _as_seed(seed: Any, cls_name: str) -> int:
    if isinstance(seed, bool) or not hasattr(seed, "__index__"):
        if isinstance(seed, str) and seed.strip().lstrip("-").isdigit():
            return int(seed)
        raise ValueError(f"{cls_name}.reset(): the row's 'seed' must be an integer, got {seed!r:.80}.")
    return int(seed.__index__())


def _has_system_message(prompt: Any) -> bool:
    return isinstance(prompt, (list, tuple)) and any(
        isinstance(m, dict) and m.get("role") == "system" for m in prompt)


class InterplayToolEnv:
    """Base of the classes ``environment_factory`` returns (see the module docstring).

    Only ``reset`` (and the tool and ``get_reward`` a factory adds) are public methods: TRL turns every
    other public method into a tool. State is in attributes, which TRL leaves alone.
    """

    env_id: ClassVar[str] = ""
    env_kwargs: ClassVar[dict[str, Any]] = {}
    tool_name: ClassVar[str] = DEFAULT_TOOL_NAME
    #: The environment's system prompt and how to use the tool: the system message of ``task_dataset``.
    instructions: ClassVar[str] = ""

    def __init__(self) -> None:
        if not type(self).env_id:
            raise TypeError("InterplayToolEnv is a base class: use interplay.integrations.trl.environment_factory("
                            "env_id) to get the class for an environment.")
        self.env = make(self.env_id, **self.env_kwargs)
        self.seed: int | None = None
        self._clear()

    def _clear(self) -> None:
        self.observation = ""  # the first observation of the episode
        self.history: list[dict[str, Any]] = []  # per step: reply, observation, reward
        self.info: dict[str, Any] = {}  # the last info dict of the environment
        self.reward = 0.0
        self.turns = 0
        self.invalid_actions = 0
        self.tool_calls = 0  # every call of the tool, calls after the end included
        self.finished = False  # the episode ended: terminated or truncated
        self.terminated = self.truncated = False
        self.success = False

    def reset(self, seed: Any = None, prompt: Any = None, **row: Any) -> str:
        """Start the episode of the dataset row's ``seed``; return the first observation (see the module docstring)."""
        name = type(self).__name__
        if seed is None:
            columns = ", ".join(sorted(["prompt", *row] if prompt is not None else row)) or "none"
            raise ValueError(
                f"{name}.reset() needs the task's seed in the dataset row (a 'seed' column), got columns: "
                f"{columns}. Build the dataset with interplay.integrations.trl.task_dataset({self.env_id!r}, n), "
                "or add a 'seed' column of integers (training seeds: interplay.seeds.train_seeds(n)).")
        self.seed = _as_seed(seed, name)
        self._clear()
        observation, info = self.env.reset(seed=self.seed)
        self.observation, self.info = observation, dict(info)
        if _has_system_message(prompt) or not self.instructions:
            return observation
        return f"{self.instructions}\n\n{observation}"

    @property
    def outcome(self) -> str | None:
        """The end state (``info["outcome"]``); for an episode the model left unfinished, its current state."""
        if self.finished:
            return str(self.info.get("outcome", ""))
        if self.seed is None:
            return None
        try:
            return str(self.env.unwrapped.outcome())
        except Exception:  # an environment may not name a state before its first step
            return ""

    def _status(self) -> str:
        if self.success:
            return "solved"
        return "not solved, out of turns" if self.truncated else "not solved"

    def _act(self, reply: Any) -> str:
        if self.seed is None:
            raise RuntimeError(f"{type(self).__name__}.{self.tool_name}() called before reset(); call "
                               "reset(seed=...) first (TRL does before each rollout).")
        self.tool_calls += 1
        if self.finished:
            return (f"The episode is already over ({self._status()}); {self.tool_name} does nothing now. "
                    "Do not call it again.")
        if not isinstance(reply, str):
            reply = json.dumps(reply) if isinstance(reply, (dict, list)) else str(reply)
        observation, reward, terminated, truncated, info = self.env.step(reply)
        self.info = dict(info)
        self.reward += float(reward)
        self.turns = int(info.get("turn", self.turns + 1))
        self.invalid_actions += bool(info.get("invalid_action", False))
        self.history.append({"reply": reply, "observation": observation, "reward": float(reward)})
        if terminated or truncated:
            self.finished, self.terminated, self.truncated = True, bool(terminated), bool(truncated)
            self.success = bool(info.get("success", False))
            return f"{observation}\n\nThe episode is over ({self._status()})."
        return observation

    def __repr__(self) -> str:
        state = ("finished, " + self._status()) if self.finished else "playing"
        return f"<{type(self).__name__} seed={self.seed} turns={self.turns} {state}>"


def _tool_docstring(env_id: str, system_prompt: str) -> str:
    what = system_prompt.strip() or describe(env_id) or f"The {env_id} environment."
    return (
        f"Take your turn in {env_id}: send your reply to the environment and get its answer.\n\n"
        f"{what}\n\n"
        "Args:\n"
        "    reply: Your whole reply for this turn, written as the instructions ask.\n\n"
        "Returns:\n"
        "    The environment's answer: what you observe next, or how the episode ended.\n"
    )


def environment_factory(
    env_id: str, *, tool_name: str | None = None, env_reward: bool = True, **env_kwargs: Any
) -> type[InterplayToolEnv]:
    """The class to pass as TRL's ``GRPOTrainer(environment_factory=...)`` for environment ``env_id``.

    Args:
        env_id: a registered id (``interplay list``), e.g. ``"interplay/Maze-v0"``.
        tool_name: the tool's name; default by environment (``move``, ``guess``, ``answer``, ``act``).
        env_reward: give the class ``get_reward()`` (the summed environment reward), which TRL adds as a
            reward source; False leaves the rewards to ``reward_funcs`` alone.
        **env_kwargs: constructor kwargs of the environment (``size=4``, ``max_turns=10``, ...).

    Raises an error that lists close ids for an unknown id, and the environment's own error for bad
    kwargs (an environment is built here once to check them and read its instructions).
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a registered environment id (str), got {env_id!r:.80}.")
    check_env_id(env_id)
    probe = make(env_id, **env_kwargs)
    try:
        unwrapped = probe.unwrapped
        name = _check_tool_name(tool_name if tool_name is not None else _tool_name_for(unwrapped))
        system_prompt = str(getattr(unwrapped, "system_prompt", "") or "")
    finally:
        probe.close()
    hint = (f"Send each reply by calling the {name} tool; its response is the environment's answer. "
            "When the episode is over, answer without calling a tool.")
    instructions = f"{system_prompt.strip()}\n\n{hint}" if system_prompt.strip() else hint

    def tool(self, reply: str) -> str:  # no annotation on self: TRL's schema would include it
        return self._act(reply)

    cls_name = _class_name(env_id)
    tool.__name__ = name
    tool.__qualname__ = f"{cls_name}.{name}"
    tool.__doc__ = _tool_docstring(env_id, system_prompt)
    namespace: dict[str, Any] = {
        "env_id": env_id,
        "env_kwargs": dict(env_kwargs),
        "tool_name": name,
        "instructions": instructions,
        name: tool,
        "__module__": __name__,
        "__qualname__": cls_name,
        "__doc__": f"{env_id} for TRL's GRPOTrainer(environment_factory=...): tool {name}(reply), "
                   f"reset(seed=...){', get_reward()' if env_reward else ''}. See interplay.integrations.trl.",
    }
    if env_reward:
        def get_reward(self) -> float:
            """The episode's summed environment reward (0.0 before the first step)."""
            return float(self.reward)

        get_reward.__qualname__ = f"{cls_name}.get_reward"
        namespace["get_reward"] = get_reward
    return type(cls_name, (InterplayToolEnv,), namespace)


def task_dataset(
    env: str | type[InterplayToolEnv],
    n: int | None = None,
    *,
    seeds: Sequence[int] | None = None,
    seed_start: int = TRAIN_SEED_START,
    environment: str | None = None,
) -> Any:
    """A ``datasets.Dataset`` of tasks for ``environment_factory``: one row per seed.

    Each row: ``prompt`` (a system message with the environment's instructions and an empty user message,
    which TRL fills with the first observation from ``reset``) and ``seed``. Seeds: ``seeds`` as given, or
    ``n`` consecutive training seeds from ``seed_start`` (refused where they would reach the held-out
    seeds of ``interplay.seeds``). ``environment``: adds an ``environment`` column with this name, for
    TRL's ``environment_factory={name: cls, ...}`` (several environments in one run).
    """
    from datasets import Dataset

    cls = environment_factory(env) if isinstance(env, str) else env
    if not (isinstance(cls, type) and issubclass(cls, InterplayToolEnv) and cls.env_id):
        raise TypeError(f"env must be an environment id or a class from environment_factory(), got {env!r:.80}.")
    if (seeds is None) == (n is None):
        raise ValueError("give either n (that many training seeds from seed_start) or seeds, not both.")
    if seeds is None:
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}.")
        seeds = train_seeds(n, seed_start)
    seeds = [_as_seed(s, "task_dataset") for s in seeds]
    prompt = [{"role": "system", "content": cls.instructions}, {"role": "user", "content": ""}]
    columns: dict[str, list] = {"prompt": [prompt] * len(seeds), "seed": seeds}
    if environment is not None:
        columns["environment"] = [environment] * len(seeds)
    return Dataset.from_dict(columns)


def success_reward(environments: Sequence[InterplayToolEnv], **kwargs: Any) -> list[float]:
    """A TRL reward function: 1.0 for each rollout whose episode was solved, else 0.0."""
    return [float(env.success) for env in environments]


def episode_metrics(environments: Sequence[InterplayToolEnv], log_metric: Any = None, **kwargs: Any) -> list[None]:
    """A TRL "reward function" that only logs: the batch's success rate, turns, invalid replies, tool calls and
    finished episodes (``episode/...``, through TRL's ``log_metric``). It scores nothing (None: TRL leaves it
    out of the reward), so add it to ``reward_funcs`` next to the real rewards."""
    n = max(len(environments), 1)
    if log_metric is not None:
        for name, value in (("success", sum(e.success for e in environments)),
                            ("turns", sum(e.turns for e in environments)),
                            ("invalid_actions", sum(e.invalid_actions for e in environments)),
                            ("tool_calls", sum(e.tool_calls for e in environments)),
                            ("finished", sum(e.finished for e in environments))):
            log_metric(f"episode/{name}", float(value) / n)
    return [None] * len(environments)


__all__ = ["DEFAULT_TOOL_NAME", "TOOL_NAMES", "InterplayToolEnv", "environment_factory", "episode_metrics",
           "success_reward", "task_dataset"]
