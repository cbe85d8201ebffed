"""GRPO's ``rollout_func``: plays whole episodes with the trainer's model and packs them the way TRL reads them.

``make_rollout_func(config)`` gives ``rollout_func(prompts, trainer)``: one episode per prompt (a task key,
``interplay.training.grpo_tasks``), played with the trainer's live model (an ``HFAgent`` over it, no copy,
KV-cached turns, never ``model.eval()``) or, with ``use_vllm``, through TRL's own vLLM generation (a
``VLLMAgent``: each turn's token ids in, sampled ids and log-probs out). It returns, per episode:

- ``prompt_ids``, ``completion_ids`` (agent replies and environment turns concatenated, ending in eos),
  ``logprobs`` (sampled; 0.0 on environment tokens) and ``env_mask`` (1 agent, 0 environment: TRL
  multiplies it into the loss mask);
- for the reward function (``interplay.training.grpo_reward``): ``reward`` (``sum_t discount^t r_t``),
  ``success``, ``outcome``, ``turns``, ``invalid_actions`` and ``task`` (env id + seed);
- with a turn-level ``credit``: ``turn_rewards``, ``anchors`` (the observation each turn replied to) and
  ``turn_index`` (per completion token, its turn);
- with a ``repexp`` shaper: ``hidden``, the mean last-layer hidden state over the agent tokens;
- with ``critique_weight`` > 0: ``critique_mask`` (1 on the environment tokens that spell a teacher's
  feedback, ``info["teacher_feedback"]``; the chat-template tokens around it are 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from interplay.agents.chat import ChatEncoder, generation_stop_ids
from interplay.rollout import EnvSpec, Trajectory, rollout
from interplay.scoring import teacher_forced
from interplay.seeds import task_key
from interplay.training.config import GRPOTrainingConfig
from interplay.training.exploration import RepExpBonus, build_shapers
from interplay.training.grpo_tasks import parse_task_prompt

if TYPE_CHECKING:
    from trl import GRPOTrainer


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


def episode_agent(config: GRPOTrainingConfig, trainer: Any, model: Any, tokenizer: Any) -> Any:
    """Who plays the training episodes: TRL's vLLM (``use_vllm``: token ids in, ids and log-probs out, through
    ``trainer.vllm_generation``) or the trainer's own model with KV caches kept across turns."""
    args = trainer.args
    if args.use_vllm:
        from interplay.agents.vllm import TRLVLLMGenerator, VLLMAgent

        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return VLLMAgent(tokenizer=tokenizer, generator=TRLVLLMGenerator(trainer, pad_prompt=[pad]),
                         temperature=args.temperature, top_p=args.top_p, top_k=args.top_k or 0,
                         max_new_tokens=config.max_new_tokens, chat_template_kwargs=config.chat_template_kwargs,
                         stop_ids=generation_stop_ids(model.generation_config))
    from interplay.agents.hf import HFAgent

    return HFAgent(model, tokenizer, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k or 0,
                   max_new_tokens=config.max_new_tokens, **config.agent_kwargs())


def representation_model(config: GRPOTrainingConfig) -> str | None:
    """Whose hidden states RepExp needs: "start" (a frozen copy of the starting model), "policy", or None
    (no RepExp shaper)."""
    if config.exploration is None:
        return None
    shapers = [s for s in build_shapers(config.exploration) if isinstance(s, RepExpBonus)]
    return shapers[0].representation if shapers else None


def frozen_start(config: GRPOTrainingConfig, policy: Any) -> Any:
    """The model GRPO starts from (``config.model``, an adapter merged), frozen, on the policy's device and dtype:
    loaded again rather than copied, so it stays the start when a run resumes from a checkpoint."""
    from interplay.models import load

    parameter = next(policy.parameters())
    model, _ = load(config.model)
    return model.to(device=parameter.device, dtype=parameter.dtype).eval().requires_grad_(False)


def make_rollout_func(config: GRPOTrainingConfig) -> Any:
    """``rollout_func(prompts, trainer)`` for ``GRPOTrainer``: one episode per prompt, seed from the prompt."""
    representation = representation_model(config)
    frozen: list[Any] = []  # the starting model, loaded at the first rollout that needs it

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
        if representation is not None:
            # RepExp's representation: the mean last-layer hidden state over each episode's agent tokens, read
            # from a frozen copy of the starting model unless the policy's own is asked for.
            if representation == "start" and not frozen:
                frozen.append(frozen_start(config, model))
            reader = frozen[0] if representation == "start" else model
            out["hidden"] = teacher_forced(reader, out["prompt_ids"], out["completion_ids"], out["env_mask"],
                                           hidden=True).hidden.tolist()
        if config.critique_weight > 0:
            # Zero-padded for the eos that episode_fields may append.
            out["critique_mask"] = [critique_mask(t, agent.encoder) + [0] * (len(ids) - len(t.completion_ids))
                                    for t, ids in zip(played, out["completion_ids"])]
        return out

    return rollout_func
