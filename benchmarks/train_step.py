"""GRPO step time: interplay's multi-turn episodes vs TRL's own single-turn GRPO, same sampled tokens.

Both runs train the same model with the same GRPOConfig (batch, group size, optimizer). The
multi-turn run plays whole maze episodes through ``rollout_func`` (environment tokens are in the
sequences but not sampled); the single-turn run lets TRL generate one completion per prompt with
exactly as many new tokens as a multi-turn episode sampled on average (``min_new_tokens`` =
``max_completion_length``). The first step of each run is a warm-up and is not counted.

The last line is ``multiturn_over_singleturn=<ratio>`` of seconds per optimizer step.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from interplay import models  # noqa: E402
from interplay.training.grpo import GRPOTrainingConfig, build_grpo_trainer, grpo_defaults  # noqa: E402


def step_times(log_history: list[dict]) -> list[float]:
    return [entry["step_time"] for entry in log_history if "step_time" in entry][1:]  # drop the warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny", help="'tiny' or a checkpoint (e.g. an SFT output)")
    parser.add_argument("--env", default="interplay/Maze-v0")
    parser.add_argument("--steps", type=int, default=3, help="measured steps (one more runs as warm-up)")
    parser.add_argument("--batch", type=int, default=32, help="episodes (completions) per step")
    parser.add_argument("--group", type=int, default=8, help="num_generations")
    parser.add_argument("--max-turns", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)

    common = grpo_defaults(max_steps=args.steps + 1, per_device_train_batch_size=args.batch,
                           num_generations=args.group, save_strategy="no", logging_steps=1, disable_tqdm=True)
    with tempfile.TemporaryDirectory() as out:
        config = GRPOTrainingConfig(env=args.env, model=args.model, max_turns=args.max_turns,
                                    max_new_tokens=args.max_new_tokens, eval_episodes=1)
        trainer, _ = build_grpo_trainer(config, GRPOConfig(output_dir=out, **common))
        trainer.train()
        multi = step_times(trainer.state.log_history)
        # TRL logs the mean count of policy tokens (env_mask 1) per completion.
        sampled = [e["completions/mean_length"] for e in trainer.state.log_history if "completions/mean_length" in e]
        tokens = max(1, round(sum(sampled) / len(sampled)))

        model, tokenizer = models.load(args.model)
        prompts = Dataset.from_dict({"prompt": [f"task {i}: reply u/d/l/r." for i in range(args.batch * 8)]})
        single = GRPOTrainer(
            model=model, processing_class=tokenizer, train_dataset=prompts,
            reward_funcs=lambda completions, **kwargs: [float("u" in c) for c in completions],
            args=GRPOConfig(output_dir=out, max_completion_length=tokens,
                            generation_kwargs={"min_new_tokens": tokens}, **common),
        )
        single.train()
        one = step_times(single.state.log_history)

    multi_s, single_s = sum(multi) / len(multi), sum(one) / len(one)
    print(f"{args.batch} completions/step, {tokens} sampled tokens per completion, {args.steps} steps after warm-up")
    print(f"multi-turn ({args.env}, <= {args.max_turns} turns): {multi_s:.3f} s/step")
    print(f"single-turn (TRL generate): {single_s:.3f} s/step")
    print(f"multiturn_over_singleturn={multi_s / single_s:.3f}")


if __name__ == "__main__":
    main()
