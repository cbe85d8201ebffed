"""The GRPO trainer: TRL's ``GRPOTrainer`` with interplay's advantage terms and critique loss.

The only module that touches TRL internals (each listed, with the tested TRL versions, in
``interplay.training.trl_internals``; building the trainer with another TRL fails with a clear message).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from trl import GRPOTrainer

from interplay.training.grpo_reward import AdvantageTerms, EpisodeReward
from interplay.training.trl_internals import GENERATE_EXTRA_FIELDS, check_trl, quiet_rollout_func_notice


def apply_advantage_terms(advantages: torch.Tensor, terms: AdvantageTerms,
                          turn_index: Sequence[Sequence[int]] | None = None, width: int | None = None) -> torch.Tensor:
    """GRPO's episode advantages ``[batch]`` with ``terms`` applied: ``[batch]`` without turn terms, else
    ``[batch, width]`` per completion token (its turn's value, through ``turn_index``; 0 past an episode's
    tokens, which are padding)."""
    base = advantages if terms.keep_episode else torch.zeros_like(advantages)
    if terms.bonus is not None:
        base = base + torch.tensor(terms.bonus, dtype=advantages.dtype, device=advantages.device)
    if terms.turns is None:
        return base
    if turn_index is None or width is None:
        raise ValueError("turn-level advantages need each episode's token->turn map (turn_index) and the width.")
    base = base.cpu()
    out = torch.zeros(len(terms.turns), width, dtype=advantages.dtype)
    for i, (values, index) in enumerate(zip(terms.turns, turn_index)):
        index = list(index)[:width]
        if index:
            out[i, :len(index)] = torch.tensor(values, dtype=advantages.dtype)[torch.tensor(index)] + base[i]
    return out.to(advantages.device)


def fused_lm_head_default(device: torch.device | str) -> bool:
    """Whether ``MultiTurnGRPOTrainer`` uses TRL's fused LM head by default on ``device``: where TRL has a Triton
    kernel for it (CUDA, XPU), which scores only the completion tokens without materializing their logits; not
    elsewhere (CPU, MPS), where TRL's torch fallback projects every position of the batch through the vocabulary."""
    return torch.device(device).type in ("cuda", "xpu")


def completion_logps(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int,
                     temperature: float = 1.0, batch_size: int | None = None, compute_entropy: bool = False,
                     entropy_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (and entropies) of the last ``logits_to_keep`` tokens of each row, from the model's
    own logits at those positions only (``logits_to_keep``), scaled by 1/``temperature``: what TRL's
    ``GRPOTrainer._get_per_token_logps_and_entropies`` returns, 0 where the token is padding. The entropies
    (of the tempered distribution) carry gradients only with ``entropy_grad``; rows go through the model
    ``batch_size`` at a time (None: all at once)."""
    batch_size = batch_size or input_ids.size(0)
    targets = input_ids[:, -logits_to_keep:]
    valid = attention_mask[:, -logits_to_keep:] != 0
    all_logps, all_entropies = [], []
    for start in range(0, input_ids.size(0), batch_size):
        rows = slice(start, start + batch_size)
        logits = model(input_ids=input_ids[rows], attention_mask=attention_mask[rows], use_cache=False,
                       logits_to_keep=logits_to_keep + 1).logits[:, :-1]
        if temperature != 1.0:
            logits = logits / temperature
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        all_logps.append(logprobs.gather(-1, targets[rows].unsqueeze(-1)).squeeze(-1).masked_fill(~valid[rows], 0.0))
        if compute_entropy:
            with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
                entropy = -(logprobs.exp() * logprobs).sum(-1)
            all_entropies.append(entropy.masked_fill(~valid[rows], 0.0))
        del logits, logprobs
    return torch.cat(all_logps), torch.cat(all_entropies) if compute_entropy else None


class MultiTurnGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` for whole episodes: advantage terms from ``episode_reward``, and the critique loss.

    ``episode_reward`` (an ``EpisodeReward``) is TRL's one reward function; what it adds to GRPO's normalized
    advantages (``take_advantage_terms``: exploration bonuses, turn-level credit) is applied to them here, per
    token with a turn-level credit (``apply_advantage_terms``).

    ``critique_weight`` × the NLL of the teacher's feedback tokens (``critique_mask``) is added to the loss. The
    rollout's ``critique_mask`` travels with the batch (padded like ``completion_ids``); the NLL
    reuses the per-token log-probs of the policy-loss forward (no second forward; TRL scales logits by
    1/temperature there, so at temperature 1 it is the plain NLL). Like TRL's entropy bonus it is a mean
    over the marked tokens of a micro-batch, divided by the gradient-accumulation steps. With weight 0
    (or no feedback tokens) the loss is GRPOTrainer's, unchanged.

    ``fused_lm_head``: whether the per-token log-probs come from TRL's fused LM head (True) or from the model's
    own logits over the completion positions (False, ``completion_logps``); None (default): fused only on a GPU
    (``fused_lm_head_default``). TRL patches the fused head on in any case; on a CPU it has no Triton kernel and
    projects every position of the batch, prompts and padding included, through the whole vocabulary in
    tile-sized torch operations, which makes a step slower than it needs to be (benchmarks/RESULTS.md). The logits path holds the completion logits (rows × completion width × vocab
    floats) for the backward pass, as a plain forward with labels does; the fused head saves that memory.
    """

    def __init__(self, *args: Any, episode_reward: EpisodeReward, critique_weight: float = 0.0,
                 fused_lm_head: bool | None = None, **kwargs: Any) -> None:
        check_trl()
        with quiet_rollout_func_notice():
            super().__init__(*args, reward_funcs=episode_reward, **kwargs)
        self.episode_reward = episode_reward
        self.critique_weight = float(critique_weight)
        self.fused_lm_head = fused_lm_head_default(self.accelerator.device) if fused_lm_head is None else bool(
            fused_lm_head)
        self._critique_masks: list[list[int]] | None = None
        self._turn_index: list[list[int]] | None = None
        self._policy_logps: torch.Tensor | None = None

    def _generate(self, prompts: list) -> tuple:
        result = super()._generate(prompts)
        # The rollout's extra fields: take critique_mask and turn_index (per token) out before they reach the
        # reward function.
        self._critique_masks = result[GENERATE_EXTRA_FIELDS].pop("critique_mask", None)
        self._turn_index = result[GENERATE_EXTRA_FIELDS].pop("turn_index", None)
        return result

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._turn_index = None
        output = super()._generate_and_score_completions(inputs)
        # What the reward function adds to GRPO's normalized advantages (this process's episodes, in the order
        # it saw them, which is the order of this process's advantages): outcome-based exploration bonuses, and
        # turn-level credit, which makes them per token ([batch, completion length]: TRL's loss takes that
        # shape, trl_internals "per-token advantages").
        terms = self.episode_reward.take_advantage_terms()
        if terms is not None:
            output["advantages"] = apply_advantage_terms(output["advantages"], terms, self._turn_index,
                                                         output["completion_ids"].size(1))
        self._turn_index = None
        if self._critique_masks is not None:
            masks = torch.zeros_like(output["completion_mask"])
            for i, row in enumerate(self._critique_masks):
                masks[i, : len(row)] = torch.tensor(row[: masks.size(1)])
            output["critique_mask"] = masks * output["completion_mask"]
            self._critique_masks = None
        return output

    def _get_per_token_logps_and_entropies(self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                                           logits_to_keep: int, batch_size: int | None = None,
                                           compute_entropy: bool = False, compute_aux_loss: bool = False,
                                           **kwargs: Any) -> tuple:
        if self.fused_lm_head or compute_aux_loss or any(value is not None for value in kwargs.values()):
            # TRL's own path: the fused head, and what only it handles (images, MoE load-balancing loss).
            result = super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **kwargs)
        else:
            args = self.args
            entropy_grad = bool(args.entropy_coef) or bool(args.use_adaptive_entropy)  # TRL's entropy bonus
            with self.accelerator.autocast():
                logps, entropies = completion_logps(model, input_ids, attention_mask, logits_to_keep,
                                                    temperature=args.temperature, batch_size=batch_size,
                                                    compute_entropy=compute_entropy, entropy_grad=entropy_grad)
            result = (logps, entropies, None)
        if torch.is_grad_enabled():  # the policy-loss forward (old/ref log-probs run without grad)
            self._policy_logps = result[0]
        return result

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> torch.Tensor:
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mask = inputs.get("critique_mask")
        if self.critique_weight == 0.0 or mask is None or self._policy_logps is None:
            return loss
        mask = mask.to(self._policy_logps.dtype)
        nll = -(self._policy_logps * mask).sum() / mask.sum().clamp(min=1.0)
        self._policy_logps = None
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["critique/nll"].append(self.accelerator.gather(nll.detach()).mean().item())
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        return loss + self.critique_weight * nll / accumulation
