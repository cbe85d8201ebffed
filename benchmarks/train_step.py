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

``--plain`` (the real-model mode, e.g. ``--model smollm2-135m --plain``): the multi-turn GRPO step against a plain
forward+backward of the same model (``model(input_ids, labels=input_ids).loss.backward()``, the model's own LM head
and loss) over tensors of the same shape: the GRPO batch × the padded width of its generation batches. Its defaults
are the issue's settings: MathFeedback-v0 at difficulty 1, 8 episodes per step in groups of 4, 64 new tokens per
reply, at most 4 turns, 1 measured step after the warm-up. The last line is
``grpo_step_over_forward_backward=<ratio>`` of median wall seconds (target <= 2; the GRPO step includes playing the
episodes, which the plain pass does not).
"""

from __future__ import annotations

import argparse
import json
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
        started, cpu = time.perf_counter(), time.process_time()
        result = generate(prompts)
        prompt_ids, completion_ids, mask = result[0], result[1], result[2]
        sampled = [sum(m) for m in mask] if mask is not None else [len(c) for c in completion_ids]
        records.append({"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "prompt": [len(p) for p in prompt_ids],
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
        "generate_cpu": statistics.median(r["cpu"] for r in measured),
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


def forward_backward(model_name: str, batch: int, width: int, repeats: int) -> dict[str, float]:
    """Median wall and CPU seconds of a plain training forward+backward of a fresh copy of the model over
    ``batch`` × ``width`` random token ids (after one warm-up pass)."""
    model, _ = models.load(model_name)
    model.train()
    ids = torch.randint(0, model.config.vocab_size, (batch, width), generator=torch.Generator().manual_seed(0))
    wall, cpu = [], []
    for _ in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        started = time.perf_counter(), time.process_time()
        model(input_ids=ids, labels=ids).loss.backward()
        wall.append(time.perf_counter() - started[0])
        cpu.append(time.process_time() - started[1])
    return {"step": statistics.median(wall[1:]), "cpu": statistics.median(cpu[1:])}


def plain(args: argparse.Namespace, common: dict, out: str) -> None:
    """The real-model mode (``--plain``): the GRPO step against a plain forward+backward of the same shape."""
    config = GRPOTrainingConfig(env=args.env, env_kwargs=args.env_kwargs, model=args.model, max_turns=args.max_turns,
                                max_new_tokens=args.max_new_tokens, eval_episodes=1, fused_lm_head=args.fused_lm_head)
    trainer, _ = build_grpo_trainer(config, GRPOConfig(output_dir=out, **common))
    fused = trainer.fused_lm_head
    grpo = measure(trainer)
    del trainer
    width = round(grpo["width"])
    fb = forward_backward(args.model, args.batch, width, args.steps)
    print(f"{args.model}, {torch.get_num_threads()} thread(s); GRPO on {args.env} {json.dumps(args.env_kwargs)}: "
          f"{args.batch} episodes per step (groups of {args.group}), <= {args.max_turns} turns, <= "
          f"{args.max_new_tokens} new tokens per reply; median of {args.steps} step(s) after a warm-up; "
          f"log-probs from {'TRL fused LM head' if fused else 'the model logits'}")
    print(f"GRPO step: {grpo['sequences']} sequences, mean total {grpo['total']:.1f} tokens, padded width {width} "
          f"({args.batch * width} tokens); {grpo['step']:.2f} s/step (cpu {grpo['cpu']:.2f}), of which generation "
          f"{grpo['generate']:.2f} s (cpu {grpo['generate_cpu']:.2f}), rest {grpo['step'] - grpo['generate']:.2f} s (cpu "
          f"{grpo['cpu'] - grpo['generate_cpu']:.2f})")
    print(f"plain forward+backward, {args.batch} x {width}: {fb['step']:.2f} s (cpu {fb['cpu']:.2f})")
    # CPU seconds (one thread) hold up better than wall seconds on a machine shared with other work.
    print(f"cpu_rest_over_forward_backward={(grpo['cpu'] - grpo['generate_cpu']) / fb['cpu']:.3f}")
    print(f"cpu_grpo_step_over_forward_backward={grpo['cpu'] / fb['cpu']:.3f}")
    print(f"rest_over_forward_backward={(grpo['step'] - grpo['generate']) / fb['step']:.3f}")
    print(f"grpo_step_over_forward_backward={grpo['step'] / fb['step']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny", help="'tiny', a catalogue name (smollm2-135m) or a checkpoint")
    parser.add_argument("--plain", action="store_true",
                        help="compare with a plain forward+backward of the same shape (the real-model mode)")
    parser.add_argument("--fused-lm-head", type=json.loads, default=None,
                        help="GRPOTrainingConfig.fused_lm_head: true, false (default: null, fused on a GPU only)")
    parser.add_argument("--env", default=None, help="default: interplay/Maze-v0 (interplay/MathFeedback-v0 with --plain)")
    parser.add_argument("--env-kwargs", type=json.loads, default=None, help="JSON (default with --plain: difficulty 1)")
    parser.add_argument("--steps", type=int, default=None, help="measured steps (one more runs as warm-up); default 5 "
                                                                "(1 with --plain)")
    parser.add_argument("--batch", type=int, default=None, help="episodes (completions) per step; default 32 (8)")
    parser.add_argument("--group", type=int, default=None, help="num_generations; default 8 (4)")
    parser.add_argument("--max-turns", type=int, default=None, help="default 6 (4)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default 4 (64)")
    args = parser.parse_args()
    defaults = ({"env": "interplay/MathFeedback-v0", "env_kwargs": {"difficulty": 1}, "steps": 1, "batch": 8, "group": 4,
                 "max_turns": 4, "max_new_tokens": 64} if args.plain else
                {"env": "interplay/Maze-v0", "env_kwargs": {}, "steps": 5, "batch": 32, "group": 8, "max_turns": 6,
                 "max_new_tokens": 4})
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    torch.set_num_threads(1)

    common = grpo_defaults(max_steps=args.steps + 1, per_device_train_batch_size=args.batch,
                           num_generations=args.group, save_strategy="no", logging_steps=1, disable_tqdm=True)
    if args.plain:
        with tempfile.TemporaryDirectory() as out:
            plain(args, common, out)
        return
    with tempfile.TemporaryDirectory() as out:
        config = GRPOTrainingConfig(env=args.env, env_kwargs=args.env_kwargs, model=args.model,
                                    max_turns=args.max_turns, max_new_tokens=args.max_new_tokens, eval_episodes=1)
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
