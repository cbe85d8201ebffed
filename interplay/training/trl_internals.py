"""Every place where interplay depends on TRL beyond its documented, stable API, and the check that guards them.

``MultiTurnGRPOTrainer`` (``interplay.training.grpo_trainer``) overrides private methods of ``GRPOTrainer`` and reads
its private state; the rollout uses ``rollout_func``, which TRL marks experimental. None of this is covered
by TRL's compatibility promises, so interplay states the TRL versions it was tested with
(``TESTED_TRL``) and ``check_trl`` refuses any other when a GRPO trainer is built, with a message that
says what to install. Widening the range means running the GRPO tests against the new TRL and
checking each entry of ``INTERNALS`` below.

``INTERNALS``: what is used, where, and what interplay assumes of it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: TRL versions interplay's GRPO trainer was tested with: at least the first, below the second.
TESTED_TRL = ("1.16.0", "1.17.0")

#: Index of ``extra_fields`` (the rollout_func's keys beyond prompt_ids/completion_ids/logprobs) in the
#: tuple returned by ``GRPOTrainer._generate``.
GENERATE_EXTRA_FIELDS = 5

INTERNALS: dict[str, str] = {
    "GRPOTrainer._generate": "overridden by MultiTurnGRPOTrainer (and timed by benchmarks/train_step.py); returns a "
                             "tuple whose item GENERATE_EXTRA_FIELDS is the dict of extra rollout_func fields "
                             "(critique_mask is popped from it)",
    "GRPOTrainer._generate_and_score_completions": "overridden by MultiTurnGRPOTrainer; returns a dict with "
                                                   "'completion_mask' [batch, length], to which critique_mask is added",
    "GRPOTrainer._get_per_token_logps_and_entropies": "overridden by MultiTurnGRPOTrainer; item 0 of its result is "
                                                      "the per-token log-probs, computed with grad for the policy loss; "
                                                      "its signature (model, input_ids, attention_mask, "
                                                      "logits_to_keep, batch_size, compute_entropy, "
                                                      "compute_aux_loss, then the multimodal inputs, all None for "
                                                      "text) and result (log-probs and entropies [rows, "
                                                      "logits_to_keep] of the last logits_to_keep tokens, 0 on "
                                                      "padding, logits / temperature; aux loss or None) are "
                                                      "reproduced by completion_logps where the fused LM head is "
                                                      "not used",
    "GRPOTrainer fused LM head": "GRPOTrainer.__init__ patches model.forward with trl's add_fused_lm_head "
                                 "unconditionally and its _get_per_token_logps_and_entropies calls the model with "
                                 "fused_lm_head=True; without that flag the patched forward is the model's own. On "
                                 "devices without TRL's Triton kernel (CPU, MPS) the head's torch fallback scores "
                                 "every position of the batch, so MultiTurnGRPOTrainer (fused_lm_head=False, the "
                                 "default there: fused_lm_head_default) calls the model without the flag, with "
                                 "logits_to_keep, and leaves the patch in place (generation does not use it)",
    "GRPOConfig.entropy_coef, GRPOConfig.use_adaptive_entropy": "the entropy bonus; completion_logps keeps the "
                                                                "entropies' gradient only when it is on, as TRL "
                                                                "needs it only then",
    "GRPOTrainer._compute_loss per-token advantages": "with a turn-level credit (GRPOTrainingConfig.credit) "
                                                      "MultiTurnGRPOTrainer replaces the batch's 'advantages' "
                                                      "[batch] by [batch, completion length], each token its "
                                                      "turn's advantage: _compute_loss unsqueezes only a 1-D "
                                                      "tensor and multiplies the advantages elementwise with the "
                                                      "per-token (or [batch, 1] sequence-level) ratios in every "
                                                      "loss_type, and shuffle_sequence_dict / split_tensor_dict "
                                                      "split it by rows; get_off_policy_mask and vespo's "
                                                      "get_gamma_weights then read the advantage's sign per "
                                                      "token instead of per sequence",
    "GRPOTrainer._metrics": "MultiTurnGRPOTrainer appends critique/nll to _metrics[mode], a dict of lists",
    "GRPOTrainer.current_gradient_accumulation_steps": "MultiTurnGRPOTrainer divides its loss term by it, as TRL "
                                                       "does its own",
    "GRPOTrainer.vllm_generation": "with GRPOConfig.use_vllm, grpo_rollout.episode_agent and agents/vllm.py's "
                                   "TRLVLLMGenerator sample through TRL's vLLM generation "
                                   "(generate(prompts, images, num_generations))",
    "GRPOTrainer(rollout_func=...)": "experimental in TRL: rollout_func(prompts, trainer) returns prompt_ids, "
                                     "completion_ids, logprobs, env_mask (read into the loss mask) and extra "
                                     "fields, which reach the reward functions as keyword arguments",
    "rollout_func notice": "GRPOTrainer warns (UserWarning) when given a rollout_func; quiet_rollout_func_notice "
                           "filters that one warning while the trainer is built",
}

#: The start of the UserWarning ``GRPOTrainer.__init__`` issues when given a ``rollout_func``.
ROLLOUT_FUNC_NOTICE = "You are using 'rollout_func', which is an experimental feature"

_PRIVATE = ("_generate", "_generate_and_score_completions", "_get_per_token_logps_and_entropies")


def check_trl(version: str | None = None, trainer_class: type | None = None) -> None:
    """Raise ``RuntimeError`` unless TRL's version (``version``; default: the installed one) is in
    ``TESTED_TRL`` and ``GRPOTrainer`` (or ``trainer_class``) has the private methods interplay overrides."""
    from packaging.version import Version

    if version is None:
        import trl

        version = trl.__version__
    low, high = TESTED_TRL
    if not Version(low) <= Version(version) < Version(high):
        raise RuntimeError(
            f"interplay's GRPO trainer relies on TRL internals (interplay.training.trl_internals.INTERNALS) and was "
            f"tested with TRL >= {low}, < {high}; TRL {version} is installed. Install a tested version, e.g. "
            f"`pip install 'trl>={low},<{high}'`.")
    if trainer_class is None:
        from trl import GRPOTrainer as trainer_class
    missing = [name for name in _PRIVATE if not callable(getattr(trainer_class, name, None))]
    if missing:
        raise RuntimeError(f"TRL {version}'s {trainer_class.__name__} lacks {', '.join(missing)}, which interplay's "
                           f"GRPO trainer overrides; install TRL >= {low}, < {high}.")


@contextmanager
def quiet_rollout_func_notice() -> Iterator[None]:
    """Within the block, ``GRPOTrainer``'s warning that ``rollout_func`` is experimental is not shown (interplay
    uses it knowingly and checks the TRL version instead); every other warning is. The process's warning
    filters and environment are left as they were."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=ROLLOUT_FUNC_NOTICE, category=UserWarning)
        yield
