"""GRPO step time with and without LoRA on one model: the same episodes' shape, batch and optimizer.

Each run builds a fresh trainer (``build_grpo_trainer``) and trains ``--steps`` + 1 steps; the first is a
warm-up. Printed per run: the median wall seconds per optimizer step (and this process's CPU seconds, less
sensitive to other load on a shared machine), the part spent in TRL's ``_generate``
(interplay's rollout: the episodes, sampled with the adapter on where there is one) and the rest (log-probs,
loss, backward, optimizer), and the trainable parameters.

    python benchmarks/lora_step.py --model smollm2-135m --env interplay/MathFeedback-v0 \\
        --env-kwargs '{"difficulty": 1}' --batch 8 --group 4 --max-new-tokens 64 --max-turns 4 --lora-r 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from train_step import StepClock, record_generation  # noqa: E402
from trl import GRPOConfig  # noqa: E402

from interplay.training.config import LoraSettings  # noqa: E402
from interplay.training.grpo import GRPOTrainingConfig, build_grpo_trainer, grpo_defaults  # noqa: E402


def run(args: argparse.Namespace, lora: LoraSettings) -> dict[str, float]:
    common = grpo_defaults(max_steps=args.steps + 1, per_device_train_batch_size=args.batch, num_generations=args.group,
                           save_strategy="no", logging_steps=1, disable_tqdm=True, report_to="none")
    with tempfile.TemporaryDirectory() as out:
        config = GRPOTrainingConfig(env=args.env, env_kwargs=json.loads(args.env_kwargs), model=args.model,
                                    max_turns=args.max_turns, max_new_tokens=args.max_new_tokens, eval_episodes=1,
                                    lora=lora)
        trainer, _ = build_grpo_trainer(config, GRPOConfig(output_dir=out, **common))
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        clock = StepClock()
        trainer.add_callback(clock)
        records = record_generation(trainer)
        trainer.train()
    step, cpu = statistics.median(clock.wall[1:]), statistics.median(clock.cpu[1:])
    generate = statistics.median(r["seconds"] for r in records[1:])
    sampled = statistics.mean(n for r in records[1:] for n in r["sampled"])
    return {"step": step, "cpu": cpu, "generate": generate, "rest": step - generate, "trainable": trainable, "sampled": sampled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--env", default="interplay/MathFeedback-v0")
    parser.add_argument("--env-kwargs", default='{"difficulty": 1}')
    parser.add_argument("--steps", type=int, default=1, help="measured steps (one more runs first as warm-up)")
    parser.add_argument("--batch", type=int, default=8, help="episodes per step")
    parser.add_argument("--group", type=int, default=4, help="num_generations")
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--only", choices=["full", "lora"], default=None, help="run one of the two")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    runs = {"full": LoraSettings(), "lora": LoraSettings(r=args.lora_r)}
    for name, lora in runs.items():
        if args.only in (None, name):
            torch.manual_seed(0)
            result = run(args, lora)
            print(f"{name} (lora r={lora.r}): {result['step']:.1f} s/step (cpu {result['cpu']:.1f} s) = generation {result['generate']:.1f} s + "
                  f"rest {result['rest']:.1f} s; {result['sampled']:.0f} sampled tokens per episode; "
                  f"{result['trainable']:,} trainable parameters", flush=True)


if __name__ == "__main__":
    main()
