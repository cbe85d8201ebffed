"""GRPO step time: interplay's multi-turn episodes vs TRL's own single-turn GRPO on sequences of the same shape.

Both runs train the same model with the same GRPOConfig (batch, group size, optimizer). The multi-turn run plays
whole maze episodes through ``rollout_func``: per sequence, a prompt, then agent replies (sampled) and environment
turns (prefilled, ``env_mask`` 0). The single-turn runs then let TRL generate one completion per prompt for as many
sequences, each completion exactly as many tokens as a multi-turn episode sampled on average (``min_new_tokens`` =
``max_completion_length``), after a prompt as long as

- the padded width of a multi-turn batch minus those sampled tokens (the headline comparison): the trainer's
  tensors have the same shape in both runs, so the forward/backward passes cost the same, and the ratio is what
  the multi-turn path adds: a prefill per turn instead of one, the environments, the rollout's bookkeeping (chat
  deltas, KV-cache rows, trajectories), ``env_mask`` and the episode reward;
- the mean multi-turn context (prompt + environment tokens): the same real tokens per sequence. Multi-turn
  batches are wider than their mean sequence (episodes end at different turns and pad to the longest), so this
  ratio also counts that padding.

Steps are timed by a callback (wall and this process's CPU time; the median of the measured steps, robust to
other load on a shared machine), generation separately (TRL's ``_generate``, the rollout included). The first
step of each run is a warm-up and is not counted. The last line is ``multiturn_over_singleturn=<ratio>`` of
median wall seconds per optimizer step against the same-shape single-turn run (target <= 1.2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from interplay import models  # noqa: E402
from interplay.training.grpo import GRPOTrainingConfig, build_grpo_trainer, grpo_defaults  # noqa: E402


class StepClock(TrainerCallback):
    """Wall and process CPU seconds of every optimizer step."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        self._started = time.perf_counter(), time.process_time()

    def on_step_end(self, args, state, control, **kwargs) -> None:
        self.wall.append(time.perf_counter() - self._started[0])
        self.cpu.append(time.process_time() - self._started[1])


def record_generation(trainer: GRPOTrainer) -> list[dict]:
    """Per generation batch: seconds in TRL's ``_generate`` (the rollout, for the multi-turn run) and its shapes."""
    records: list[dict] = []
    generate = trainer._generate

    def timed(prompts):
        started = time.perf_counter()
        result = generate(prompts)
        prompt_ids, completion_ids, mask = result[0], result[1], result[2]
        sampled = [sum(m) for m in mask] if mask is not None else [len(c) for c in completion_ids]
        records.append({"seconds": time.perf_counter() - started, "prompt": [len(p) for p in prompt_ids],
                        "completion": [len(c) for c in completion_ids], "sampled": sampled})
        return result

    trainer._generate = timed
    return records


def measure(trainer: GRPOTrainer) -> dict[str, float]:
    clock = StepClock()
    trainer.add_callback(clock)
    records = record_generation(trainer)
    trainer.train()
    measured = records[1:]  # drop the warm-up
    flat = {key: [n for r in measured for n in r[key]] for key in ("prompt", "completion", "sampled")}
    context = [p + c - s for p, c, s in zip(flat["prompt"], flat["completion"], flat["sampled"])]
    return {
        "sequences": len(measured[0]["prompt"]),
        "context": statistics.mean(context),  # prompt + environment tokens: prefilled
        "sampled": statistics.mean(flat["sampled"]),
        "total": statistics.mean(p + c for p, c in zip(flat["prompt"], flat["completion"])),
        "width": statistics.mean(max(r["prompt"]) + max(r["completion"]) for r in measured),  # padded
        "step": statistics.median(clock.wall[1:]),
        "cpu": statistics.median(clock.cpu[1:]),
        "generate": statistics.median(r["seconds"] for r in measured),
    }


def filler_prompt(i: int, length: int) -> str:
    text = f"task {i}: you are at 13, the goal is at 22; open: u d. reply u/d/l/r. "
    return (text * (length // len(text) + 1))[:length]


def single_turn(args: argparse.Namespace, common: dict, out: str, prompt_tokens: int, sampled: int) -> dict:
    """TRL's own GRPO on a fresh copy of the model: prompts of ``prompt_tokens`` characters (the tiny model's
    tokenizer has one token per character), completions of exactly ``sampled`` tokens."""
    model, tokenizer = models.load(args.model)
    prompts = Dataset.from_dict({"prompt": [filler_prompt(i, prompt_tokens) for i in range(args.batch * 8)]})
    return measure(GRPOTrainer(
        model=model, processing_class=tokenizer, train_dataset=prompts,
        reward_funcs=lambda completions, **kwargs: [float("u" in c) for c in completions],
        args=GRPOConfig(output_dir=out, max_completion_length=sampled, generation_kwargs={"min_new_tokens": sampled},
                        **common),
    ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny", help="'tiny' or a checkpoint (e.g. an SFT output)")
    parser.add_argument("--env", default="interplay/Maze-v0")
    parser.add_argument("--steps", type=int, default=5, help="measured steps (one more runs as warm-up)")
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
        multi = measure(trainer)

        sampled = max(1, round(multi["sampled"]))
        same_shape = single_turn(args, common, out, round(multi["width"]) - sampled, sampled)
        same_tokens = single_turn(args, common, out, round(multi["context"]), sampled)

    print(f"{args.steps} steps after warm-up; per sequence (mean): context = prompt + environment tokens, sampled "
          "tokens, total; padded width of a batch; median seconds per step (wall, CPU) and in generation")
    for name, run in ((f"multi-turn ({args.env}, <= {args.max_turns} turns)", multi),
                      ("single-turn, same shape (TRL generate)", same_shape),
                      ("single-turn, same real tokens", same_tokens)):
        print(f"{name}: {run['sequences']} sequences, context {run['context']:.1f}, sampled {run['sampled']:.1f}, "
              f"total {run['total']:.1f}, width {run['width']:.1f}; {run['step']:.3f} s/step (cpu "
              f"{run['cpu']:.3f}), generation {run['generate']:.3f} s, rest {run['step'] - run['generate']:.3f} s")
    print(f"multiturn_over_singleturn_same_real_tokens={multi['step'] / same_tokens['step']:.3f}")
    print(f"generation_multi_over_single={multi['generate'] / same_shape['generate']:.3f}")
    rest = (multi["step"] - multi["generate"]) / (same_shape["step"] - same_shape["generate"])
    print(f"rest_multi_over_single={rest:.3f}")
    print(f"cpu_multi_over_single={multi['cpu'] / same_shape['cpu']:.3f}")
    print(f"multiturn_over_singleturn={multi['step'] / same_shape['step']:.3f}")

if __name__ == "__main__":
    main()
